"""Machine learning with Dask (episode 10): infrastructure a learner need not read.

* ``deadline(client, what)``  a context manager: every Dask computation started inside it, including
  the ones that libraries start for you (``dask_ml``'s ``StandardScaler.fit``, ``Incremental.fit``,
  ``score``), runs on ``client`` with the same deadline and paused-worker watch as
  ``course.clusters.compute``, and ends in ``clusters.ClusterTrouble`` instead of an endless wait.
* ``idle_worker_bytes(client)`` the resident memory of each worker process of ``client``, read from
  the operating system after the workers have imported what the lab's tasks need.
* ``peak_on_worker(client, fn, *args)`` runs ``fn(*args)`` as one task on one worker and returns its peak
  resident memory above the worker's level before it (OS, sampled every 2 ms): what one block costs.
* ``Steps(client)``  ``with steps("what"):`` = ``deadline`` + the step's time + every worker's peak memory.
* ``call_with_deadline(client, fn, what)`` for libraries that wait on the cluster by themselves (joblib's
  Dask backend, ``xgboost.dask``): ``fn()`` in a thread, its tasks cancelled if it passes the deadline.
"""

from __future__ import annotations

import contextlib
import time

from course import clusters


def _watch(futures, client, what: str, timeout: float | None):
    """``clusters.wait_for`` (deadline, paused and killed workers), and the futures cancelled if it gives
    up: they are dask-ml's, not the learner's, so nothing else would cancel them."""
    try:
        return clusters.wait_for(futures, client, what, timeout)
    finally:
        not_done = [f for f in futures if not f.done()]
        if not_done:
            client.cancel(not_done)


@contextlib.contextmanager
def deadline(client, what: str = "the computation", timeout: float | None = None):
    """Run every Dask computation inside the block on ``client``, with a deadline.

    Libraries such as dask-ml call ``dask.compute`` themselves; this routes those calls through a
    scheduler function that submits the graph to ``client`` and waits the way ``clusters.compute`` does.
    """
    import dask
    from dask.core import flatten
    from dask.optimization import cull

    def get(dsk, keys, **kwargs):
        # Only the tasks the keys need travel to the scheduler. Without this, a computation on a few
        # blocks of a big array (dask-ml's partial_fit on X.blocks[...]) would send and unpack the
        # graph of the whole array every time: at workshop size that costs more than the work itself.
        graph = dsk.__dask_graph__() if hasattr(dsk, "__dask_graph__") else dsk
        dsk = cull(dict(graph), list(flatten(keys)))[0]
        futures = client.get(dsk, keys, sync=False)
        flat = list(flatten(futures))
        results = dict(zip([f.key for f in flat], _watch(flat, client, what, timeout)))

        def rebuild(k):
            if isinstance(k, list):
                return [rebuild(x) for x in k]
            return results[k.key]

        return rebuild(futures)

    with dask.config.set(scheduler=get):
        yield


def _import_lab_modules():
    import netCDF4  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import xarray  # noqa: F401

    import dask_ml.wrappers  # noqa: F401
    return True


def idle_worker_bytes(client) -> list[int]:
    """RSS of every worker process, measured by the OS once the workers have imported the lab's libraries."""
    import gc

    import psutil

    client.run(_import_lab_modules)
    client.run(gc.collect)
    time.sleep(0.5)
    return sorted(client.run(lambda: psutil.Process().memory_info().rss).values())


class _ReleasedRunSpecFilter:
    """Drop the scheduler's "Detected different `run_spec`" warning for keys already *released*.

    The lab's features broadcast small NumPy arrays (season, hour, latitude); Dask gives their pieces
    the same keys in every computation but may optimise them differently, and the in-process
    scheduler warns although the old task is gone (dask/dask#9888). Any other case still shows."""

    def filter(self, record) -> bool:
        msg = record.getMessage()
        return not ("Detected different `run_spec`" in msg and "old task state: released" in msg)


def quiet_released_run_spec_warnings() -> None:
    import logging

    logger = logging.getLogger("distributed.scheduler")
    if not any(isinstance(f, _ReleasedRunSpecFilter) for f in logger.filters):
        logger.addFilter(_ReleasedRunSpecFilter())


# --------------------------------------------------------------------------- memory, measured per block


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class _OwnPeak(clusters.ThreadSampler):
    """The peak resident memory of this process while a ``with`` block runs."""

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            self._stop.wait(self.interval)


def _peak_of(fn, *args, interval: float = 0.002) -> int:
    """Runs on a worker: ``fn(*args)`` while a thread samples this process's RSS; the peak above the start."""
    import gc

    gc.collect()
    sampler = _OwnPeak(interval)
    start = sampler.peak = _rss()
    with sampler:
        fn(*args)
    return max(sampler.peak, _rss()) - start


def peak_on_worker(client, fn, *args, what: str = "measuring one block", timeout: float | None = None) -> int:
    """Run ``fn(*args)`` as one task on one worker and return its peak resident memory above the worker's
    memory before the task (bytes, from the operating system, sampled every 2 ms). Dask collections among
    ``args`` arrive as collections: ``fn`` computes them itself (``scheduler="sync"``), so the whole
    pipeline of the piece it is given runs, and is measured, inside that one task."""
    future = client.submit(_peak_of, fn, *args, pure=False)
    try:
        return clusters.wait_for(future, client, what, timeout)
    finally:
        if not future.done():
            future.cancel()


class Steps:
    """Each step of a lab on ``client``: a deadline for every Dask computation inside it (``deadline``),
    its wall time, and the peak resident memory of every worker process while it runs (OS, 50×/s).

    >>> steps = Steps(client)                             # doctest: +SKIP
    >>> with steps("learning the scaling"):
    ...     scaler = DaskScaler().fit(X_train)
    >>> steps.peak["learning the scaling"]               # {worker address: bytes}
    """

    def __init__(self, client):
        self.client = client
        self.peak: dict[str, dict[str, int]] = {}
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, what: str, timeout: float | None = None):
        start = time.perf_counter()
        peak = clusters.PeakMemory(self.client)
        try:
            with deadline(self.client, what, timeout), peak:
                yield
        finally:  # recorded even when the step fails (a deadline passed): its memory is part of the story
            self.peak[what] = dict(peak.peak)
            self.seconds[what] = time.perf_counter() - start

    def highest(self) -> int:
        """The highest peak of any worker in any step so far."""
        return max((b for p in self.peak.values() for b in p.values()), default=0)

    def rows(self, memory_limit: int) -> list[dict]:
        """One row per step, for ``course.table``: time, and the highest worker peak against the limit."""
        return [{"step": what, "time": f"{self.seconds[what]:.0f} s",
                 "highest worker peak": f"{max(p.values()) / 2**20:,.0f} MiB",
                 "of its limit": f"{max(p.values()) / memory_limit:.0%}"} for what, p in self.peak.items()]


def call_with_deadline(client, fn, what: str = "the computation", timeout: float | None = None,
                       poll: float = 0.5):
    """``fn()`` in a thread, with the deadline and paused-worker watch of ``clusters.compute``.

    For libraries that submit to the cluster and wait by themselves, where ``deadline`` cannot reach:
    joblib's Dask backend (``GridSearchCV``). Giving up cancels every task this client has on the
    cluster, so ``fn`` stops too, and raises ``clusters.ClusterTrouble``. joblib's backend setting is
    per thread: enter ``joblib.parallel_backend`` inside ``fn``.
    """
    import concurrent.futures

    from distributed import Future

    limit = clusters.deadline(timeout)
    start = time.monotonic()
    paused_since = None
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    job = pool.submit(fn)
    try:
        while True:
            try:
                return job.result(timeout=poll)
            except concurrent.futures.TimeoutError:
                paused_since = clusters.check_progress(client, what, start, limit, paused_since)
    finally:
        if not job.done():
            keys = list(client.futures)
            if keys:
                client.cancel([Future(k, client) for k in keys], force=True)
            try:
                job.result(timeout=60)
            except Exception:  # the cancelled search fails: that is the point
                pass
        pool.shutdown(wait=False)
