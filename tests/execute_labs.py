"""Execute the labs (jupytext percent scripts) into notebooks under ``_build/``.

This is the one piece of glue between the labs, the slides and the tests:

* ``python tests/execute_labs.py``            executes every lab  -> ``_build/NN_name.ipynb``
* ``python tests/execute_labs.py 01 04_dask`` executes the labs whose names start with those prefixes
* ``conftest.py`` uses :class:`LabKernel` so that ``pytest labs/NN_name.py`` executes the lab the same
  way, keeps the kernel alive, and then runs each of the lab's ``test_*`` checks inside it.

The slides embed outputs from ``_build/*.ipynb`` by cell label, so what the deck shows is always the
output of the latest lab run. A notebook is written only when every cell ran; a failed run leaves the
previous notebook untouched and writes ``_build/NN_name.failed.ipynb`` to look at.

A lab that fails says where: the lab, the cell's label (or its number and first line), what went
wrong (an error, a cell past its time limit, a kernel that died) and the cell's last output lines.
Each cell has a time limit: ``$COURSE_CELL_TIMEOUT`` seconds, by default a few minutes at the
default dataset size and more for ``COURSE_SIZE=workshop`` or ``large`` (``0`` switches it off).
Whatever happens, the kernel and every process it started (Dask workers, pools) are stopped.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parents[1]
LABS = ROOT / "labs"
BUILD = ROOT / "_build"
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}

# The slowest cell at the default size takes well under a minute on a 2-core laptop; the limit leaves
# a wide margin for a busy machine. Larger datasets scale the work, so they get more time.
DEFAULT_CELL_TIMEOUT_S = {"small": 300, "workshop": 1800}
LARGE_CELL_TIMEOUT_S = 7200
LAST_OUTPUT_LINES = 12
LABEL = re.compile(r"^#\|\s*label:\s*([\w\-]+)\s*$", re.M)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def cell_timeout() -> int | None:
    """Seconds one cell may run: ``$COURSE_CELL_TIMEOUT``, else a default for ``$COURSE_SIZE``; None: no limit."""
    value = os.environ.get("COURSE_CELL_TIMEOUT", "").strip()
    if value:
        try:
            seconds = int(float(value))
        except ValueError:
            raise SystemExit(f"COURSE_CELL_TIMEOUT={value!r} is not a number of seconds (0 switches the limit off)")
        return seconds if seconds > 0 else None
    return DEFAULT_CELL_TIMEOUT_S.get(os.environ.get("COURSE_SIZE", "small"), LARGE_CELL_TIMEOUT_S)


CELL_TIMEOUT_S = cell_timeout()


class LabError(Exception):
    """A lab that did not run to the end. ``str()`` says which lab, which cell, what happened and the
    cell's last output; ``kind`` is ``"error"``, ``"timeout"`` or ``"dead kernel"``."""

    def __init__(self, message: str, kind: str = "error", lab: str = "", cell: str = ""):
        super().__init__(message)
        self.kind, self.lab, self.cell = kind, lab, cell


def lab_paths(prefixes: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """All labs (``labs/NN_*.py``) in order, or those whose file names start with one of ``prefixes``."""
    labs = sorted(LABS.glob("[0-9][0-9]_*.py"))
    if prefixes:
        labs = [p for p in labs if any(p.name.startswith(x) for x in prefixes)]
    return labs


def describe_cell(cell: nbformat.NotebookNode, index: int) -> str:
    """``#memory-fixes`` for a labelled cell, else ``cell 12 (`first line`)``."""
    m = LABEL.search(cell.source)
    if m:
        return f"#{m.group(1)} (cell {index + 1})"
    lines = [x.strip() for x in cell.source.splitlines() if x.strip() and not x.startswith("#|")]
    first = lines[0] if lines else ""
    return f"cell {index + 1} (`{first[:70]}{'…' if len(first) > 70 else ''}`)"


def last_output(cell: nbformat.NotebookNode, n: int = LAST_OUTPUT_LINES) -> list[str]:
    """The last ``n`` lines the cell printed or displayed (text only), without colour codes."""
    text = []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream":
            text.append(output.get("text", ""))
        elif kind in ("execute_result", "display_data"):
            data = output.get("data", {})
            text.append(data.get("text/plain", "[" + ", ".join(data) + "]") + "\n")
        elif kind == "error":
            text.append("\n".join(output.get("traceback", [])) + "\n")
    lines = ANSI.sub("", "".join(text)).rstrip().splitlines()
    return lines[-n:]


def _kernel_process(client: NotebookClient):
    provisioner = getattr(client.km, "provisioner", None) if client.km is not None else None
    return getattr(provisioner, "process", None)


def _exit_reason(returncode: int | None) -> str:
    if returncode is None:
        return "it stopped answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if -returncode == getattr(signal, "SIGKILL", 9):
            return (f"it was killed ({name}), on Linux most often by the out-of-memory killer: the machine ran "
                    "out of memory (check `dmesg` or the system log, and the lab's memory use)")
        return f"it was stopped by {name}"
    return f"it exited with status {returncode}"


def _write_atomically(nb: nbformat.NotebookNode, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, target)


# Quarto treats any HTML or JavaScript output in an embedded notebook as a "widget" and adds
# require.js and jQuery from a CDN to the deck, which then cannot be presented offline. The built
# notebooks therefore keep the plain-text (and image) form of rich outputs such as DataFrames.
ONLINE_ONLY = ("text/html", "application/javascript")


def _offline_outputs(nb: nbformat.NotebookNode) -> None:
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if any(k in data for k in ONLINE_ONLY) and set(data) - set(ONLINE_ONLY):
                for key in ONLINE_ONLY:
                    data.pop(key, None)


class LabKernel:
    """One lab executed in a live Jupyter kernel (cwd ``labs/``), kept alive for follow-up code."""

    def __init__(self, lab: Path, timeout: int | None | str = "default"):
        self.lab = Path(lab)
        self.timeout = cell_timeout() if timeout == "default" else timeout
        self.nb = jupytext.read(self.lab)
        self.nb.metadata["kernelspec"] = KERNEL
        self.client = NotebookClient(
            self.nb,
            timeout=self.timeout,
            kernel_name=KERNEL["name"],
            resources={"metadata": {"path": str(LABS)}},
            record_timing=False,
        )
        self._started = False
        self._kernel_pid: int | None = None
        self.cell_seconds: list[tuple[str, float]] = []  # (cell, seconds) in run order

    @property
    def notebook_path(self) -> Path:
        return BUILD / (self.lab.stem + ".ipynb")

    @property
    def failed_path(self) -> Path:
        return BUILD / (self.lab.stem + ".failed.ipynb")

    def slowest(self, n: int = 1) -> list[tuple[str, float]]:
        return sorted(self.cell_seconds, key=lambda x: -x[1])[:n]

    def _kernel_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # Cluster computations (course.clusters.compute) get a deadline a little inside the cell's,
        # so that their message (paused, killed, too slow) is the one the reader sees.
        if self.timeout and "COURSE_DEADLINE_S" not in env:
            env["COURSE_DEADLINE_S"] = str(max(30, self.timeout - 60))
        return env

    def _explain(self, err: Exception, cell: nbformat.NotebookNode, index: int, where: str | None = None) -> LabError:
        name = self.lab.name
        where = where or describe_cell(cell, index)
        out = last_output(cell)
        if isinstance(err, CellTimeoutError):
            kind = "timeout"
            head = (f"{name} timed out: {where} was still running after {self.timeout} s (the per-cell limit). "
                    "A cluster computation that waits forever usually means paused workers (memory at 80 % of "
                    "their limit) or a deadlock; a slow machine needs more time: COURSE_CELL_TIMEOUT=<seconds>.")
        elif isinstance(err, DeadKernelError):
            kind = "dead kernel"
            process = _kernel_process(self.client)
            code = process.poll() if process is not None else None
            head = f"{name}: the kernel died in {where}: {_exit_reason(code)}."
        else:
            kind = "error"
            error = next((o for o in reversed(cell.get("outputs", [])) if o.get("output_type") == "error"), None)
            what = f"{error['ename']}: {ANSI.sub('', error['evalue'])}" if error else " ".join(str(err).strip().splitlines()[-1:])
            head = f"{name} failed in {where}: {what}"
        body = "\n".join("  | " + line for line in out) if out else "  (the cell printed nothing)"
        tail = f"The partly executed notebook is _build/{self.failed_path.name}." if where != "a check" else ""
        return LabError(f"{head}\nLast output of {where}:\n{body}\n{tail}".rstrip(), kind=kind, lab=name, cell=where)

    def run(self) -> None:
        """Execute every cell top to bottom; write ``_build/NN_name.ipynb`` only if all cells ran.

        Raises :class:`LabError` naming the cell when one fails, runs past the time limit or kills the kernel."""
        client = self.client
        client.km = client.create_kernel_manager()
        self._started = True
        client.start_new_kernel(env=self._kernel_env())
        process = _kernel_process(client)
        self._kernel_pid = process.pid if process is not None else None
        client.start_new_kernel_client()
        self.nb.metadata.pop("widgets", None)
        for index, cell in enumerate(self.nb.cells):
            start = time.perf_counter()
            try:
                client.execute_cell(cell, index)
            except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
                _write_atomically(self.nb, self.failed_path)
                raise self._explain(err, cell, index) from None
            finally:
                if cell.cell_type == "code":
                    self.cell_seconds.append((describe_cell(cell, index), time.perf_counter() - start))
        client.set_widgets_metadata()
        _offline_outputs(self.nb)
        _write_atomically(self.nb, self.notebook_path)
        self.failed_path.unlink(missing_ok=True)
        record_time(self.notebook_path.stem, sum(s for _, s in self.cell_seconds))

    def run_code(self, code: str, where: str = "a check") -> str:
        """Run ``code`` in the lab's kernel (after :meth:`run`) and return what it printed.

        Raises :class:`LabError` when the code fails."""
        if not self._started:
            raise RuntimeError("the lab has not been executed")
        cell = nbformat.v4.new_code_cell(code)
        self.nb.cells.append(cell)  # nbclient addresses the cell by its index in the notebook
        try:
            self.client.execute_cell(cell, len(self.nb.cells) - 1)
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
            raise self._explain(err, cell, len(self.nb.cells) - 1, where=where) from None
        finally:
            self.nb.cells.pop()
        return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")

    def close(self) -> None:
        """Shut the kernel down, then stop any process it started that is still running."""
        if not self._started:
            return
        self._started = False
        children = []
        try:
            import psutil

            if self._kernel_pid is not None:
                children = psutil.Process(self._kernel_pid).children(recursive=True)
        except Exception:  # psutil missing, or the kernel already gone
            children = []
        try:
            if self.client.km is not None:
                self.client._cleanup_kernel()
        finally:
            _stop(children)


def _stop(processes, grace_s: float = 5.0) -> None:
    """Terminate, then kill, the given psutil processes that are still alive (a kernel's leftovers)."""
    if not processes:
        return
    import psutil

    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for p in alive:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(alive, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass


def record_time(lab: str, seconds: float) -> None:
    """Append one lab's wall time to ``_build/lab_times.json`` (read by ``tests/benchmark.py``)."""
    import json
    import datetime
    import platform

    path = BUILD / "lab_times.json"
    try:
        times = json.loads(path.read_text()) if path.exists() else []
    except ValueError:
        times = []
    times.append({"lab": lab, "seconds": round(seconds, 1), "size": os.environ.get("COURSE_SIZE", "small"),
                  "hardware": f"{platform.machine()} · {os.cpu_count()} cores · {platform.system()}",
                  "burners": int(os.environ.get("COURSE_UNDER_LOAD", "0") or 0),
                  "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
    path.write_text(json.dumps(times[-500:], indent=1))


def execute(lab: Path) -> Path:
    """Execute one lab into ``_build/`` and shut its kernel down; returns the notebook's path."""
    kernel = LabKernel(lab)
    try:
        kernel.run()
    finally:
        kernel.close()
    return kernel.notebook_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="*", help="name prefixes, e.g. 01 or 04_dask (default: all labs)")
    args = parser.parse_args(argv)
    labs = lab_paths(args.labs)
    if not labs:
        print(f"No lab in {LABS} matches {args.labs}.", file=sys.stderr)
        return 2
    limit = f"{CELL_TIMEOUT_S} s per cell" if CELL_TIMEOUT_S else "no time limit per cell"
    print(f"executing {len(labs)} lab(s), {limit} (COURSE_CELL_TIMEOUT)", flush=True)
    failed = []
    for lab in labs:
        start = time.perf_counter()
        print(f"executing {lab.relative_to(ROOT)} ...", flush=True)
        kernel = LabKernel(lab)
        try:
            kernel.run()
        except LabError as err:
            failed.append(lab.name)
            print(f"  FAILED after {time.perf_counter() - start:.0f} s. {err}", file=sys.stderr, flush=True)
            continue
        finally:
            kernel.close()
        slow = kernel.slowest(1)
        note = f"; slowest cell {slow[0][0]}: {slow[0][1]:.0f} s" if slow else ""
        print(f"  wrote {kernel.notebook_path.relative_to(ROOT)} in {time.perf_counter() - start:.0f} s{note}",
              flush=True)
    if failed:
        print(f"{len(failed)} lab(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
