"""Machine learning with Dask (episode 10): infrastructure a learner need not read.

* ``deadline(client, what)``  a context manager: every Dask computation started inside it, including
  the ones that libraries start for you (``dask_ml``'s ``StandardScaler.fit``, ``Incremental.fit``,
  ``score``), runs on ``client`` with the same deadline and paused-worker watch as
  ``course.clusters.compute``, and ends in ``clusters.ClusterTrouble`` instead of an endless wait.
* ``idle_worker_bytes(client)`` the resident memory of each worker process of ``client``, read from
  the operating system after the workers have imported what the lab's tasks need.
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

    def get(dsk, keys, **kwargs):
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
