"""Dask clusters for the labs: a client, computations with a deadline, and the tools of episodes 04–05.

* ``client(...)``         a ``distributed.Client`` on a local cluster bound to 127.0.0.1 (dashboard on a
  free port), or on the cluster named by ``$DASK_SCHEDULER_ADDRESS`` / ``$DASK_SCHEDULER_FILE``.
* ``compute(obj, client)`` computes with a deadline: a paused, killed or stuck cluster ends in a
  ``ClusterTrouble`` error that says what happened and what to try, never in an endless wait.
  ``wait_for(futures, client)`` does the same for futures you submitted yourself.

* ``CommandLineCluster``  starts ``dask scheduler`` and ``dask worker`` as separate processes on
  127.0.0.1, exactly the commands you would type on the machines of a cluster, and stops them cleanly.
* ``listening(pids)``     the (pid, ip, port) every given process listens on (psutil).
* ``ports_closed(ports)`` True when nothing accepts connections on those 127.0.0.1 ports any more.
* ``worker_memory_limit(idle, task_peak, threads, held)`` the one worker-memory rule of episode 04.
* ``WorkerMemorySampler`` the memory of the worker processes, sampled 50 times a second.
* ``screenshots(pages)``  pictures of web pages (the live dashboard) from a headless Chromium.
* ``job_script(kind, ...)`` the batch script dask-jobqueue would submit to SLURM or PBS.

Run as a script it is also a tiny "lab" for the batch-job template ``labs/jobs/run_lab.sbatch``:
``python labs/course/clusters.py hello`` (:func:`hello`) joins the cluster named by
``DASK_SCHEDULER_ADDRESS`` through ``client()``, as every lab does, and computes π on it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import weakref
from concurrent.futures import CancelledError
from pathlib import Path

LOCALHOST = "127.0.0.1"
LABS = Path(__file__).resolve().parents[1]  # labs/: what workers need on their path to `import course`
ROOT = LABS.parent


# --------------------------------------------------------------------------- a client, and a deadline


def client(n_workers: int = 2, threads_per_worker: int = 1, memory_limit="auto", *, local_only: bool = False,
           **cluster_kwargs):
    """A Dask client for a lab.

    By default a ``LocalCluster`` of worker *processes* on this machine, bound to 127.0.0.1 (nobody on
    the network can reach it) with the dashboard on a port the operating system picks. When a batch job
    has started a cluster for us (``$DASK_SCHEDULER_ADDRESS`` or ``$DASK_SCHEDULER_FILE`` is set, see
    ``labs/jobs/run_lab.sbatch``), it connects to that one instead and ignores the sizes given here; pass
    ``local_only=True`` where the lesson needs its own limits (a memory demonstration).
    Closing the client also stops a cluster it started.
    """
    from distributed import Client, LocalCluster

    if not local_only:
        if os.environ.get("DASK_SCHEDULER_ADDRESS"):
            print(f"connecting to the cluster at $DASK_SCHEDULER_ADDRESS instead of starting one")
            return Client(os.environ["DASK_SCHEDULER_ADDRESS"], timeout="60s")
        if os.environ.get("DASK_SCHEDULER_FILE"):
            print("connecting to the cluster in $DASK_SCHEDULER_FILE instead of starting one")
            return Client(scheduler_file=os.environ["DASK_SCHEDULER_FILE"], timeout="60s")
    cluster_kwargs.setdefault("host", LOCALHOST)
    cluster_kwargs.setdefault("dashboard_address", f"{LOCALHOST}:0")
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                           memory_limit=memory_limit, **cluster_kwargs)
    try:
        c = Client(cluster)
    except BaseException:
        cluster.close()
        raise
    # The client owns this cluster: `client.close()` (or leaving `with client(...)`) stops its workers
    # too, as for `Client()` without an address. (Dask marks that case by a client started without one.)
    c._start_arg = None
    return c


class ClusterTrouble(RuntimeError):
    """A computation on a cluster could not finish; the message says what happened and what to try."""


DEFAULT_DEADLINE_S = 600.0  # a safety net, not a tuning: $COURSE_DEADLINE_S overrides it
PAUSED_GRACE_S = 20.0       # how long every worker may stay paused before we call it stuck


def deadline(timeout: float | None = None) -> float:
    """Seconds a computation may take: ``timeout`` if given, else ``$COURSE_DEADLINE_S``, else 600."""
    if timeout is not None:
        return float(timeout)
    return float(os.environ.get("COURSE_DEADLINE_S", DEFAULT_DEADLINE_S))


_deadline = deadline


def worker_memory_limit(idle: float, task_peak: float, threads: int = 1, held: float = 0.0,
                        below: str = "pause") -> int:
    """The course's one worker-memory rule (episode 04): the limit that keeps a worker's work under a line.

        limit = (idle + threads × task_peak + held) / fraction

    ``idle`` is a measured idle worker, ``task_peak`` what one running task needs at its peak (its
    input chunk and the temporaries it makes, measured or a few × the chunk), ``held`` the data the
    worker keeps for later tasks, and ``fraction`` Dask's own threshold for ``below``: ``"pause"``
    (0.8: the worker stops running tasks) or ``"spill"`` (0.7: it starts writing held data to disk).
    Any unit in, the same unit out (bytes, MiB), rounded up."""
    import dask

    fraction = float(dask.config.get(f"distributed.worker.memory.{below}"))
    return int(-(-(idle + threads * task_peak + held) // fraction))


def _mib(n) -> str:
    return f"{n / 2**20:.0f} MiB"


def compute(obj, client, what: str = "the computation", timeout: float | None = None, poll: float = 0.5):
    """``client.compute(obj).result()``, but never an endless wait.

    ``obj`` is anything Dask can compute (a dask or xarray object, a delayed value), a future (from
    ``client.submit``), or a list or tuple of them: a list is sent as **one** graph, so tasks the
    results share run once (what ``dask.compute(a, b)`` does), and a list of results comes back.
    While it runs, the scheduler's view of the workers is checked every ``poll`` seconds:

    * every worker *paused* (memory above 80 % of its limit) for ``PAUSED_GRACE_S`` seconds: nothing can
      make progress, so we stop;
    * a worker *killed* (Dask's ``KilledWorker``, e.g. memory past 95 % of its limit): raised as
      ``ClusterTrouble`` whose ``__cause__`` is the ``KilledWorker``, with a note on what to try;
    * past the deadline (``timeout`` seconds, else ``$COURSE_DEADLINE_S``, else 600 s): we stop.

    Stopping cancels the work, so the cluster is usable again, and raises ``ClusterTrouble``.
    """
    many = isinstance(obj, (list, tuple))
    futures = client.compute(list(obj) if many else obj)
    try:
        results = wait_for(futures, client, what=what, timeout=timeout, poll=poll)
    finally:
        for f in futures if many else [futures]:
            if not f.done():
                f.cancel()
    return results


def check_progress(client, what: str, start: float, limit: float, paused_since: float | None) -> float | None:
    """One look at the cluster while something waits on it (``start``: ``time.monotonic()`` when the wait
    began; ``limit``: its deadline in seconds). Raises ``ClusterTrouble`` when every worker has been paused
    for ``PAUSED_GRACE_S`` or the deadline has passed; else returns when the pause began (None: no pause)."""
    now = time.monotonic()
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    paused = [w for w in workers if w.get("status") == "paused"]
    if workers and len(paused) == len(workers):
        paused_since = paused_since or now
        if now - paused_since > PAUSED_GRACE_S:
            used = ", ".join(f"{_mib(w['metrics']['memory'])} of {_mib(w['memory_limit'])}" for w in paused)
            raise ClusterTrouble(
                f"{what} stopped: every worker has been paused for {now - paused_since:.0f} s because its "
                f"memory is above 80 % of its limit ({used}). Paused workers run no tasks, so it would "
                f"wait forever. Try smaller chunks, fewer threads per worker, or a larger memory_limit.")
    else:
        paused_since = None
    if now - start > limit:
        raise ClusterTrouble(
            f"{what} did not finish within its deadline of {limit:.0f} s. The dashboard "
            f"({client.dashboard_link}) shows what the workers are doing. If the machine is busy or "
            f"the data larger than you thought, raise the deadline with COURSE_DEADLINE_S=<seconds>; "
            f"if nothing moves, look for a paused or restarting worker.")
    return paused_since


def wait_for(futures, client, what: str = "the computation", timeout: float | None = None, poll: float = 0.5):
    """The results of ``futures`` (one future or a list), with the deadline and the checks of :func:`compute`.

    For work you submitted yourself (``client.submit``, ``client.map``): ``wait_for(client.map(f, xs), client)``
    instead of ``client.gather(...)``, which would wait forever on a stuck cluster. It does not cancel
    the futures when it gives up: they are yours (``client.cancel(futures)``)."""
    from distributed import KilledWorker, wait

    limit = _deadline(timeout)
    start = time.monotonic()
    paused_since = None
    try:
        while True:
            try:
                wait(futures, timeout=poll)
            except TimeoutError:  # not finished yet: look at the workers
                pass
            else:
                return client.gather(futures)
            paused_since = check_progress(client, what, start, limit, paused_since)
    except KilledWorker as err:
        raise ClusterTrouble(
            f"{what} failed: a worker was killed ({str(err).split('.')[0]}). Dask restarts a worker whose memory "
            f"passes 95 % of its limit, and gives up on a task that killed workers repeatedly. Try smaller chunks, "
            f"fewer threads per worker, or a larger memory_limit.") from err
    except CancelledError as err:  # e.g. the cluster was restarted (client.restart()) while it waited
        raise ClusterTrouble(
            f"{what} was cancelled before it finished ({' '.join(str(err).split())[:200]}). If the cluster "
            f"was just restarted, run it again.") from err


# --------------------------------------------------------------------------- the dask command line


def dask_command() -> list[str]:
    """The ``dask`` program of *this* Python environment (never another one found on PATH)."""
    exe = Path(sys.executable).parent / ("dask.exe" if os.name == "nt" else "dask")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "dask"]  # same program, e.g. when the scripts folder is elsewhere


def show_command(cmd: list[str]) -> str:
    """A command as you would type it: ``dask scheduler --host ...`` (paths shortened)."""
    words = list(cmd)
    if words[:3] == [sys.executable, "-m", "dask"]:
        words = ["dask"] + words[3:]
    elif words and Path(words[0]).stem == "dask":
        words[0] = "dask"
    out = []
    for w in words:
        p = Path(w)
        out.append(os.path.relpath(w, ROOT) if p.is_absolute() and ROOT in p.parents else w)
    return " ".join(out)


class ClusterStartError(RuntimeError):
    """The scheduler or a worker did not come up; the message says what to do."""


class CommandLineCluster:
    """A scheduler and ``n_workers`` worker processes started with the ``dask`` command line.

    Every server binds 127.0.0.1 on a port the operating system chooses (port 0), dashboards included.
    Use it as a context manager, or call :meth:`close`; closing is also registered to run at exit.

    >>> with CommandLineCluster(n_workers=2) as cluster:          # doctest: +SKIP
    ...     client = Client(cluster.address)
    """

    def __init__(self, n_workers: int = 2, threads_per_worker: int = 1, memory_limit: str = "auto",
                 workdir: Path | str | None = None, timeout: float = 60, idle_timeout: str = "1h"):
        self.n_workers = n_workers
        self.workdir = Path(workdir) if workdir else ROOT / "_build" / "cli-cluster"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.scheduler_file = self.workdir / "scheduler.json"
        self.scheduler_file.unlink(missing_ok=True)
        self.commands: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.names: dict[int, str] = {}  # pid -> "scheduler", "worker-0", ...
        self._logs = []
        self.address = self.dashboard_link = None
        self._finalizer = weakref.finalize(self, _stop_processes, self.procs, [])
        try:
            self._start(threads_per_worker, memory_limit, timeout, idle_timeout)
        except BaseException:
            self.close()
            raise

    # -- starting
    def _popen(self, cmd: list[str], name: str) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "w")
        self._logs.append(log)
        env = dict(os.environ)
        # The workers must import the same code as the client: here the `course` package in labs/.
        env["PYTHONPATH"] = os.pathsep.join([str(LABS)] + [p for p in [env.get("PYTHONPATH")] if p])
        kwargs = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt" else {}
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=self.workdir, env=env, **kwargs)
        self.procs.append(proc)
        self.names[proc.pid] = name
        self.commands.append(show_command(cmd))
        return proc

    def _start(self, threads, memory_limit, timeout, idle_timeout):
        dask = dask_command()
        scheduler = self._popen(dask + [
            "scheduler", "--host", LOCALHOST, "--port", "0",
            "--dashboard-address", f"{LOCALHOST}:0",
            "--scheduler-file", str(self.scheduler_file),
            "--idle-timeout", idle_timeout,  # a forgotten scheduler stops by itself
        ], "scheduler")
        deadline = time.monotonic() + timeout
        info = None
        while info is None:
            if scheduler.poll() is not None:
                raise ClusterStartError(self._exit_message(scheduler))
            if time.monotonic() > deadline:
                raise ClusterStartError(f"`dask scheduler` wrote no {self.scheduler_file.name} in {timeout} s; "
                                        "is the machine overloaded? See " + str(self.workdir / "scheduler.log"))
            try:
                info = json.loads(self.scheduler_file.read_text())
            except (OSError, ValueError):  # not there yet, or half written
                time.sleep(0.1)
        self.address = info["address"]
        self.dashboard_link = f"http://{LOCALHOST}:{info['services']['dashboard']}/status"
        for k in range(self.n_workers):
            self._popen(dask + [
                "worker", "--scheduler-file", str(self.scheduler_file),
                "--host", LOCALHOST, "--dashboard-address", f"{LOCALHOST}:0",
                "--nthreads", str(threads), "--memory-limit", memory_limit,
                "--name", f"worker-{k}", "--local-directory", str(self.workdir / "dask-space"),
                "--death-timeout", "30",  # a worker whose scheduler is gone stops by itself
            ], f"worker-{k}")
        self._wait_for_workers(deadline)

    def _wait_for_workers(self, deadline):
        from distributed import Client

        with Client(self.address, timeout=max(5.0, deadline - time.monotonic())) as client:
            while len(client.scheduler_info(n_workers=-1)["workers"]) < self.n_workers:
                dead = [p for p in self.procs if p.poll() is not None]
                if dead:
                    raise ClusterStartError(self._exit_message(dead[0]))
                if time.monotonic() > deadline:
                    raise ClusterStartError(f"only {len(client.scheduler_info()['workers'])} of {self.n_workers} "
                                            "workers connected in time; see the logs in " + str(self.workdir))
                time.sleep(0.2)

    # -- looking at it
    def pids(self) -> list[int]:
        """Every live process of this cluster: the ``dask`` commands and the processes they started."""
        import psutil

        found = []
        for proc in self.procs:
            try:
                p = psutil.Process(proc.pid)
                found += [p.pid] + [c.pid for c in p.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        return found

    def listening(self) -> list[tuple[int, str, int]]:
        return listening(self.pids())

    def _exit_message(self, proc) -> str:
        """One sentence: which command stopped, its last error line, and where the full log is."""
        name = self.names.get(proc.pid, "dask")
        log = self.workdir / f"{name}.log"
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.exists() else []
        errors = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", line)]
        reason = (errors or lines or ["no output"])[-1]
        return (f"`dask {'scheduler' if name == 'scheduler' else 'worker'}` ({name}) exited while starting: {reason} "
                f"(full log: {log})")

    def log_tail(self, name: str | None = None, lines: int = 15) -> str:
        names = [name] if name else ["scheduler"] + [f"worker-{k}" for k in range(self.n_workers)]
        out = []
        for n in names:
            path = self.workdir / f"{n}.log"
            if path.exists():
                out += [f"--- {n}.log"] + path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(out)

    # -- stopping
    def close(self, client=None, timeout: float = 20) -> dict:
        """Stop every process: ask the scheduler to shut the cluster down, then terminate, then kill.

        Returns ``{"stopped_by": {...}, "left_running": [...]}`` so the lab can show how it went."""
        graceful = False
        if client is not None and client.status == "running":
            try:
                client.shutdown()  # the scheduler closes the workers (and their nannies), then itself
                graceful = True
            except Exception:
                pass
        descendants = self.pids()
        how = _stop_processes(self.procs, descendants, timeout=timeout, wait_first=graceful)
        self._finalizer.detach()
        for log in self._logs:
            log.close()
        self._logs.clear()
        return how

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _stop_processes(procs: list, descendants: list[int], timeout: float = 20, wait_first: bool = False) -> dict:
    """(Wait for ``procs`` to exit,) terminate those still running, kill the rest, then any descendant."""
    import psutil

    how = {}
    deadline = time.monotonic() + (timeout / 2 if wait_first else 0)
    for proc in procs:
        try:
            proc.wait(max(0.01, deadline - time.monotonic()))
            how.setdefault("exited by themselves", []).append(proc.pid)
        except subprocess.TimeoutExpired:
            proc.terminate()  # SIGTERM on Linux/macOS: dask closes gracefully
    for proc in procs:
        if proc.returncode is None:
            try:
                proc.wait(timeout / 2)
                how.setdefault("terminated", []).append(proc.pid)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                how.setdefault("killed", []).append(proc.pid)
    alive = []
    for pid in descendants:  # the nannies' workers and helpers: they follow their parent out
        try:
            alive.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(alive, timeout=5)
    for p in alive:  # e.g. a worker whose nanny was killed hard (Windows)
        try:
            p.kill()
            how.setdefault("killed", []).append(p.pid)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(alive, timeout=5)
    left = [p.pid for p in alive]
    procs.clear()
    return {"stopped_by": how, "left_running": left}


# --------------------------------------------------------------------------- sockets and processes


def listening(pids) -> list[tuple[int, str, int]]:
    """``(pid, ip, port)`` of every TCP socket that one of ``pids`` listens on."""
    import psutil

    found = []
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        except psutil.AccessDenied:  # macOS without privileges: ask the system-wide table
            conns = [c for c in psutil.net_connections(kind="inet") if c.pid == pid]
        found += [(pid, c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    return sorted(set(found))


def ports_closed(ports, host: str = LOCALHOST) -> bool:
    """True when every port refuses a connection on ``host``: nothing is left listening."""
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            if s.connect_ex((host, port)) == 0:
                return False
    return True


def stray_children() -> list[str]:
    """Child processes of this process that are still running, apart from multiprocessing's
    resource tracker (a helper that lives as long as its parent and holds no data)."""
    import psutil

    out = []
    for c in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(c.cmdline())
            if "resource_tracker" in cmd or c.status() == psutil.STATUS_ZOMBIE:
                continue
            out.append(f"{c.pid}: {cmd[:100]}")
        except psutil.NoSuchProcess:
            pass
    return out


class WorkerMemorySampler:
    """Samples the memory (RSS) of this process's worker processes many times a second.

    ``distributed.diagnostics.MemorySampler`` sees what the workers report in their heartbeats, a
    few times a second; a task that kills its worker in between is invisible there. This sampler
    reads the operating system's numbers directly (psutil), so it catches the climb to the limit.
    It sums all child processes except multiprocessing's resource tracker: use it while only the
    cluster you measure has workers running.

    >>> s = WorkerMemorySampler()                 # doctest: +SKIP
    >>> with s.sample("run 1"):
    ...     x.compute()
    >>> s.samples["run 1"]                        # [(seconds, bytes), ...]
    """

    def __init__(self):
        self.samples: dict[str, list[tuple[float, int]]] = {}

    @staticmethod
    def _workers() -> list:
        import psutil

        out = []
        for c in psutil.Process().children(recursive=True):
            try:
                if "resource_tracker" not in " ".join(c.cmdline()):
                    out.append(c)
            except psutil.Error:
                pass
        return out

    def sample(self, label: str, interval: float = 0.02):
        import contextlib
        import threading

        import psutil

        data = self.samples.setdefault(label, [])
        stop = threading.Event()

        def run():
            start = time.perf_counter()
            procs, last_scan = [], -1.0
            while not stop.is_set():
                now = time.perf_counter() - start
                if now - last_scan > 0.25:  # look for new workers (a killed one is restarted) 4× a second
                    procs, last_scan = self._workers(), now
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                data.append((now, total))
                stop.wait(interval)

        @contextlib.contextmanager
        def running():
            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            try:
                yield self
            finally:
                stop.set()
                thread.join()

        return running()


# --------------------------------------------------------------------------- dashboard screenshots

BROWSERS = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "msedge"]
BROWSER_PATHS = ["/usr/bin/chromium", "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
                 r"C:\Program Files\Google\Chrome\Application\chrome.exe"]


def find_browser() -> str | None:
    """A Chromium-family browser already installed here (``$COURSE_BROWSER`` first); never downloads one."""
    if os.environ.get("COURSE_BROWSER"):
        return os.environ["COURSE_BROWSER"] if Path(os.environ["COURSE_BROWSER"]).exists() else None
    for name in BROWSERS:
        if shutil.which(name):
            return shutil.which(name)
    return next((p for p in BROWSER_PATHS if Path(p).exists()), None)


def screenshots(pages: dict[str, Path], wait_s: float = 2.5, timeout: float = 90,
                tables: dict[str, tuple[str, int]] | None = None) -> tuple[list[Path], str]:
    """Screenshot each ``url -> png path`` in a headless browser, at twice the pixel density.

    ``tables`` maps a url to ``(last column, rows)``: its picture is cut to the first table on the page,
    from the left edge to that column and that many rows below the header, so it stays legible on a
    slide (the dashboard's Workers page is a wide, mostly empty page). Returns (the PNGs written, a
    one-sentence note). Without Playwright or a browser it writes nothing and the note says what to
    install; it never lets Playwright download a browser."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return [], "No screenshots: Playwright is not installed (`pip install playwright`)."
    browser = find_browser()
    if browser is None:
        return [], "No screenshots: no Chromium or Chrome found (install one, or set COURSE_BROWSER to its path)."
    jobs = []
    for url, path in pages.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        jobs.append({"url": url, "path": str(path), "table": (tables or {}).get(url)})
    args = [sys.executable, str(Path(__file__).resolve()), "screenshot", browser, str(wait_s), json.dumps(jobs)]
    env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
    # When the browser closes a dashboard page, Bokeh (serving the dashboard in this process for a
    # LocalCluster) logs a harmless AssertionError traceback through tornado: keep it off the screen.
    import logging

    logging.getLogger("tornado.application").setLevel(logging.CRITICAL)
    try:
        # A separate process: Playwright's sync API cannot run inside Jupyter's event loop, and a
        # hung browser is easy to stop from outside.
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return [], f"No screenshots: the browser did not finish within {timeout:.0f} s."
    written = [Path(p) for p in pages.values() if Path(p).exists()]
    name = Path(browser).name
    if out.returncode != 0 or len(written) < len(pages):
        last = (out.stderr.strip().splitlines() or ["unknown error"])[-1]
        return written, f"Screenshots failed with {name}: {last[:200]}"
    return written, f"{len(written)} screenshot(s) taken with {name} (headless)."


def _screenshot_main(browser: str, wait_s: str, jobs: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=browser, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = b.new_page(viewport={"width": 1400, "height": 850}, device_scale_factor=2)
            for job in json.loads(jobs):
                page.goto(job["url"], wait_until="load", timeout=30_000)
                page.wait_for_timeout(float(wait_s) * 1000)  # let the Bokeh plots draw and update
                clip = None
                if job["table"]:
                    last_column, rows = job["table"]
                    box = page.get_by_text(last_column, exact=True).first.bounding_box(timeout=10_000)
                    if box:  # header row at box["y"]; rows of about 25 px below it
                        clip = {"x": 10, "y": box["y"] - 8, "width": box["x"] + box["width"] + 20 - 10,
                                "height": 25 * (rows + 1) + 12}
                page.screenshot(path=job["path"], clip=clip)
        finally:
            b.close()


# --------------------------------------------------------------------------- HPC job scripts


def job_script(kind: str, *, cores: int, memory: str, walltime: str, queue: str, account: str,
               processes: int = 1, **kwargs) -> str:
    """The job script dask-jobqueue would submit for one batch job of workers. Submits nothing.

    Creating the cluster object starts a (local, idle) scheduler, bound here to 127.0.0.1; it is
    closed again before returning."""
    import dask_jobqueue

    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind.lower()]
    with cls(cores=cores, memory=memory, walltime=walltime, queue=queue, account=account,
             processes=processes, scheduler_options={"host": LOCALHOST, "dashboard_address": f"{LOCALHOST}:0"},
             **kwargs) as cluster:
        return cluster.job_script()


# --------------------------------------------------------------------------- a tiny lab for batch jobs


def hello() -> int:
    """A tiny lab for batch jobs: use the cluster the job started, compute π on it, say where it ran.

    ``client()`` finds the job's cluster through ``$DASK_SCHEDULER_ADDRESS``, exactly as every lab does;
    the π slices go to the job's workers (``wait_for`` gives them a deadline)."""
    from course import pi

    with client() as c:  # joins $DASK_SCHEDULER_ADDRESS when the job set it; else starts a LocalCluster
        workers = c.scheduler_info(n_workers=-1)["workers"]
        n = 20_000_000
        starts, stops = zip(*pi.slices(n, 2 * len(workers)))
        parts = c.map(pi.pi_slice_numpy, starts, stops, n=n)
        estimate = sum(wait_for(parts, c, what="pi on the job's cluster", timeout=120))
        ran_on = sorted({w for who in c.who_has(parts).values() for w in who})
        joined = c.scheduler.address == os.environ.get("DASK_SCHEDULER_ADDRESS")
        how = "joined the job's cluster" if joined else "started its own cluster"
        print(f"{how} at {c.scheduler.address}: {len(workers)} workers", flush=True)
        print(f"pi={estimate!r}; the slices ran on {len(ran_on)} of its workers", flush=True)
        steps = sorted({s for s in c.run(slurm_step).values() if s})
        if steps:  # under Slurm: the workers are tasks of the job's srun step
            print(f"its workers ran in Slurm job step {', '.join(steps)}", flush=True)
    return 0


def slurm_step() -> str | None:
    """``<job id>.<step id>`` of the Slurm job step this process runs in; None outside Slurm."""
    job, step = os.environ.get("SLURM_JOB_ID"), os.environ.get("SLURM_STEP_ID")
    return f"{job}.{step}" if job and step else None


if __name__ == "__main__":
    sys.path.insert(0, str(LABS))  # run as a script: make `import course` work
    if len(sys.argv) > 1 and sys.argv[1] == "screenshot":
        _screenshot_main(*sys.argv[2:5])
    elif len(sys.argv) > 1 and sys.argv[1] == "hello":
        sys.exit(hello())
    else:
        print(__doc__)


# --------------------------------------------------------------------------- per-worker peak memory


class ThreadSampler:
    """Base for samplers that run ``self._run`` in a background thread while a ``with`` block runs."""

    def __init__(self, interval=0.02):
        self.interval, self._stop = interval, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class PeakMemory(ThreadSampler):
    """Peak resident memory of each of the cluster's worker processes, sampled in a thread."""

    def __init__(self, client, interval=0.02):
        import psutil

        self.procs = {addr: psutil.Process(pid) for addr, pid in client.run(os.getpid).items()}
        self.peak = dict.fromkeys(self.procs, 0)
        super().__init__(interval)

    def _run(self):
        import psutil

        while not self._stop.is_set():
            for addr, p in self.procs.items():
                try:
                    self.peak[addr] = max(self.peak[addr], p.memory_info().rss)
                except psutil.Error:  # a worker restarted
                    pass
            self._stop.wait(self.interval)


# --------------------------------------------------------------------------- Slurm: a real batch system

SQUEUE_FORMAT = "%.6i %.12j %.8T %.6M %.4C %.6m %R"  # id, name, state, time used, CPUs, memory, node or reason


def _run(cmd: list[str], timeout: float = 30, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


def slurm(timeout: float = 20) -> dict:
    """Is there a Slurm here whose jobs run on *this* machine? Asks ``sinfo``; never submits anything.

    Returns ``{"up": True, "partition", "node", "cpus", "memory_mb"}`` (the node's CPUs and memory as Slurm
    reports them), or ``{"up": False, "why": <one sentence>}``. Jobs must run here because the labs'
    schedulers listen on 127.0.0.1: a site's Slurm, whose nodes are other machines, counts as not up."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return {"up": False, "why": "this machine has no `sbatch`"}
    try:
        done = _run(["sinfo", "-h", "-N", "-o", "%P|%N|%c|%m|%t|%a"], timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"up": False, "why": f"`sinfo` did not answer ({err})"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return {"up": False, "why": f"`sinfo` failed: {last}"}
    here = {socket.gethostname().split(".")[0], "localhost"}
    rows = [line.split("|") for line in done.stdout.split() if line.count("|") == 5]
    for partition, node, cpus, memory, state, avail in sorted(rows, key=lambda r: not r[0].endswith("*")):
        if node in here and avail == "up" and state.rstrip("*~#!%$@^-") in ("idle", "mix"):
            return {"up": True, "partition": partition.rstrip("*"), "node": node, "cpus": int(cpus),
                    "memory_mb": int(memory)}
    if rows and not any(r[1] in here for r in rows):
        return {"up": False, "why": "Slurm answers, but its nodes are other machines (this lab's scheduler "
                                    "listens on 127.0.0.1 only)"}
    return {"up": False, "why": f"no partition is up with this machine idle ({' '.join(r[0] + ':' + r[4] for r in rows) or 'no nodes'})"}


def squeue(job_ids=None, fmt: str = SQUEUE_FORMAT) -> str:
    """``squeue --me`` as a learner types it (only ``job_ids``, if given, and still known), with its header."""
    cmd = ["squeue", "--me", "-o", fmt]
    out = _run(cmd).stdout.splitlines()
    if job_ids is None:
        return "\n".join(out)
    ids = {str(j) for j in job_ids}
    return "\n".join(out[:1] + [line for line in out[1:] if line.split()[0] in ids])


def queued(job_ids=None) -> list[str]:
    """Ids of my jobs still in the queue (pending, running or completing), of ``job_ids`` if given."""
    ids = _run(["squeue", "--me", "-h", "-o", "%i"]).stdout.split()
    return [i for i in ids if job_ids is None or i in {str(j) for j in job_ids}]


def wait_until(condition, what: str, timeout: float, poll: float = 0.5):
    """Call ``condition()`` every ``poll`` seconds until it returns something true, and return that;
    after ``timeout`` seconds raise ``ClusterTrouble`` naming ``what`` was awaited."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise ClusterTrouble(f"{what} did not happen within {timeout:.0f} s; `squeue --me` shows the jobs "
                                 f"and their reasons, `scontrol show job <id>` one job in full.")
        time.sleep(poll)


def job_info(job_id) -> dict:
    """What Slurm remembers of one job (``scontrol show job``): JobState, Reason, RunTime, TimeLimit,
    StdOut, ExitCode, ... Empty once Slurm has forgotten it (``MinJobAge`` after it ended)."""
    done = _run(["scontrol", "show", "job", "-o", str(job_id)])
    if done.returncode != 0:
        return {}
    return dict(re.findall(r"(\w+)=(\S*)", done.stdout))


def why_job_ended(job_id) -> str:
    """One sentence: how a job ended and what to do about it."""
    info = job_info(job_id)
    state, ran, limit = info.get("JobState", "UNKNOWN"), info.get("RunTime", "?"), info.get("TimeLimit", "?")
    return {
        "TIMEOUT": f"job {job_id} reached its walltime ({limit}) after {ran} and Slurm stopped its workers mid-computation: "
                   "ask for a longer walltime, or give the workers a --lifetime shorter than it so that adapt() "
                   "replaces them in time.",
        "CANCELLED": f"job {job_id} was cancelled (scancel, or the administrator) after {ran}.",
        "OUT_OF_MEMORY": f"job {job_id} used more memory than it asked for: ask for more (--mem), or use less.",
        "COMPLETED": f"job {job_id} ended by itself after {ran} (exit code {info.get('ExitCode', '?')}).",
    }.get(state, f"job {job_id} ended as {state} ({info.get('Reason', 'no reason given')}) after {ran}.")


def wait_on_jobs(futures, client, job_ids, what: str = "the computation", timeout: float | None = None,
                 poll: float = 0.5):
    """:func:`wait_for` for workers that live in batch jobs: also stops, with the reason from Slurm
    (:func:`why_job_ended`), when every one of ``job_ids`` has left the queue and no worker is left."""
    from distributed import wait

    limit, start, paused_since = deadline(timeout), time.monotonic(), None
    while True:
        try:
            wait(futures, timeout=poll)
        except TimeoutError:
            pass
        else:
            return wait_for(futures, client, what=what, timeout=max(1.0, limit - (time.monotonic() - start)))
        if not client.scheduler_info(n_workers=-1)["workers"] and not queued(job_ids):
            raise ClusterTrouble(f"{what} stopped: its workers are gone, because "
                                 + " ".join(why_job_ended(j) for j in job_ids))
        paused_since = check_progress(client, what, start, limit, paused_since)


def sbatch(args: list[str], timeout: float, what: str = "the batch job", env: dict | None = None) -> dict:
    """Submit ``sbatch <args>``, wait (at most ``timeout`` s) until the job has left the queue, and return
    ``{"job_id", "state", "run_time", "output", "seconds"}``: the job's state and run time as Slurm records
    them, its output file, the wall time seen from here. The job gets ``env`` (default: this process's
    environment), as sbatch passes the submitting environment on. A job still queued at the deadline is cancelled
    (``scancel``) and ``ClusterTrouble`` raised with its output; a job Slurm refuses raises with sbatch's answer."""
    t0 = time.perf_counter()
    done = _run(["sbatch", "--parsable", *args], cwd=ROOT, env=env)
    if done.returncode != 0:
        raise ClusterTrouble(f"sbatch refused {what}: {' '.join(done.stderr.split())}")
    job_id = done.stdout.strip().split(";")[0]
    end = time.monotonic() + timeout
    while queued([job_id]) and time.monotonic() < end:
        time.sleep(0.5)
    info = job_info(job_id)
    output_file = Path(info.get("StdOut", ""))
    output = output_file.read_text(errors="replace") if output_file.is_file() else ""
    if queued([job_id]):
        _run(["scancel", job_id])
        wait_until(lambda: not queued([job_id]), f"job {job_id} leaving the queue after scancel", 60)
        raise ClusterTrouble(f"{what} (job {job_id}) did not end within {timeout:.0f} s and was cancelled; "
                             f"its output so far:\n{output[-3000:]}")
    return {"job_id": job_id, "state": info.get("JobState", "UNKNOWN"), "run_time": info.get("RunTime", "?"),
            "output": output, "seconds": time.perf_counter() - t0}
