"""How pytest runs a lab (read this if you write one).

``pytest labs/NN_name.py`` (or plain ``pytest``, which collects every lab and ``tests/``) turns each lab
into these test items:

1. ``NN_name.py::executes`` runs the whole lab, top to bottom, as a notebook in a fresh Jupyter kernel
   whose working directory is ``labs/`` (exactly what ``python tests/execute_labs.py`` does). On success
   the executed notebook is written to ``_build/NN_name.ipynb``, the file the slides embed from.
2. ``NN_name.py::test_xxx``, one item per top-level ``def test_xxx():`` in the lab, runs ``test_xxx()``
   inside that same kernel, so the checks see every variable the lab computed. Put the checks in the
   lab's last cell, marked as checks; the slides never show it.

The kernel is started with ``COURSE_CHECKS=pytest`` in its environment, so ``course.run_checks(globals())``
at the end of the lab leaves the checks to pytest instead of running them twice. Run as a script
(``python labs/NN_name.py``) or as a notebook, the same line runs the checks itself.

A lab is an ordinary Python file, so pytest would also import it as a module; ``pytest_pycollect_makemodule``
below stops that, so the lab runs exactly once.

A lab that fails names the cell (its ``#| label:``, or its number and first line), says whether it raised,
ran past the per-cell time limit (``$COURSE_CELL_TIMEOUT``) or killed the kernel, and shows the cell's last
output. At the end of a run pytest lists the slowest items (``--durations`` in ``pytest.ini``) and the
slowest cell of each lab, so a lab that slows down shows up in the CI log.

``pytest --busy-cores`` runs every lab that starts a Dask cluster while one "burner" process per usable
core keeps the CPU busy, as on a laptop with a browser and a video call open: the labs must still pass.
The burners start with the lab and stop when its checks are done (also on failure or Ctrl-C).
``--busy-labs=04,05`` narrows that to the labs named (CI loads the lighter cluster labs, to stay in budget).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.execute_labs import LABS, LabError, LabKernel

LAB_NAME = re.compile(r"^\d\d_\w+\.py$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
printed_by_checks: list[tuple[str, str]] = []
slowest_cells: list[tuple[str, str, float]] = []  # (lab, cell, seconds)
busy_runs: list[tuple[str, int, float]] = []  # (lab, burners, seconds the lab ran under load)
# A lab "starts a cluster" when a line of its code (not a comment) calls one of these.
STARTS_CLUSTER = re.compile(
    r"^[^#\n]*\b(clusters\.client|LocalCluster|Client|CommandLineCluster|SLURMCluster|PBSCluster)\(", re.M
)


def pytest_addoption(parser):
    parser.addoption(
        "--busy-cores", action="store_true", default=False,
        help="run each lab that starts a Dask cluster while one process per usable core keeps the CPU busy",
    )
    parser.addoption(
        "--busy-labs", default="",
        help="with --busy-cores: only these labs run under load, by number (e.g. 04,05,07); default: all",
    )


def picked_for_load(config, path: Path) -> bool:
    """--busy-labs=04,05 narrows --busy-cores to those labs; without it every cluster lab is picked."""
    wanted = {n.strip() for n in config.getoption("busy_labs").split(",") if n.strip()}
    return not wanted or path.name[:2] in wanted


def starts_cluster(path: Path) -> bool:
    return STARTS_CLUSTER.search(path.read_text(encoding="utf-8")) is not None


# Spins, and stops by itself when its parent (pytest) is gone, even if pytest was killed (Windows does
# not re-parent orphans, hence the pid check), and after two hours whatever happens.
BURNER = """
import os, sys, time
parent, end = int(sys.argv[1]), time.monotonic() + 7200
def parent_alive():
    if os.name != "nt":
        return os.getppid() == parent
    import psutil
    return psutil.pid_exists(parent)
while parent_alive() and time.monotonic() < end:
    for _ in range(2_000_000):
        pass
"""


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class Burners:
    """One CPU-bound process per usable core, started and stopped by id."""

    live: list[Burners] = []

    def __init__(self, n: int):
        Burners.live.append(self)
        self.procs = [subprocess.Popen([sys.executable, "-c", BURNER, str(os.getpid())],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL) for _ in range(n)]
        self.started = time.perf_counter()
        os.environ["COURSE_UNDER_LOAD"] = str(n)  # lab_times.json marks the run, so minutes ignore it

    def stop(self) -> float:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.procs = []
        os.environ.pop("COURSE_UNDER_LOAD", None)
        if self in Burners.live:
            Burners.live.remove(self)
        return time.perf_counter() - self.started


def pytest_unconfigure(config):
    for burners in list(Burners.live):  # an interrupted run skips the labs' teardown
        burners.stop()


def _is_lab(path: Path) -> bool:
    return path.parent == LABS and LAB_NAME.match(path.name) is not None


def pytest_collect_file(file_path: Path, parent):
    # Explicitly named labs reach pytest_pycollect_makemodule instead (through pytest's python plugin).
    if _is_lab(file_path) and not parent.session.isinitpath(file_path):
        return LabFile.from_parent(parent, path=file_path)
    return None


def pytest_pycollect_makemodule(module_path: Path, parent):
    if _is_lab(module_path):
        return LabFile.from_parent(parent, path=module_path)
    return None


def lab_check_names(path: Path) -> list[str]:
    """Names of the top-level ``def test_*`` functions in a lab, in file order."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]


class LabFile(pytest.File):
    kernel: LabKernel | None = None
    run_failed = False
    burners: Burners | None = None

    def collect(self):
        yield LabRun.from_parent(self, name="executes")
        for name in lab_check_names(self.path):
            yield LabCheck.from_parent(self, name=name)

    def teardown(self):
        try:
            if self.kernel is not None:
                slow = self.kernel.slowest(1)
                if slow:
                    slowest_cells.append((self.path.name, *slow[0]))
                self.kernel.close()
                self.kernel = None
        finally:
            if self.burners is not None:
                busy_runs.append((self.path.name, len(self.burners.procs), self.burners.stop()))
                self.burners = None


class LabItem(pytest.Item):
    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, LabError):
            return ANSI.sub("", str(excinfo.value))  # it names the lab, the cell and the last output
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.parent.path, None, f"{self.parent.path.name}::{self.name}"


class LabRun(LabItem):
    def runtest(self):
        lab: LabFile = self.parent
        os.environ["COURSE_CHECKS"] = "pytest"
        loaded = self.config.getoption("busy_cores") and starts_cluster(lab.path)
        if loaded and picked_for_load(self.config, lab.path):
            lab.burners = Burners(usable_cores())
        lab.kernel = LabKernel(lab.path)
        try:
            lab.kernel.run()
        except BaseException:
            lab.run_failed = True
            raise


class LabCheck(LabItem):
    def runtest(self):
        lab: LabFile = self.parent
        if lab.kernel is None or lab.run_failed:
            pytest.skip("the lab itself did not run to the end, so its checks cannot run")
        printed = lab.kernel.run_code(f"{self.name}()")
        if printed:
            printed_by_checks.append((self.nodeid, printed))


def pytest_terminal_summary(terminalreporter):
    """Show what the labs' checks printed (lab 00 prints its setup table this way), the slowest cell of
    each lab, and which labs ran under load."""
    for nodeid, text in printed_by_checks:
        terminalreporter.section(f"printed by {nodeid}")
        terminalreporter.write(text if text.endswith("\n") else text + "\n")
    if slowest_cells:
        terminalreporter.section("slowest cell of each lab")
        for lab, cell, seconds in slowest_cells:
            terminalreporter.write_line(f"{seconds:8.1f} s  {lab} {cell}")
    if busy_runs:
        terminalreporter.section("labs run with every core kept busy (--busy-cores)")
        for lab, n, seconds in busy_runs:
            terminalreporter.write_line(f"{seconds:8.1f} s  {lab} (executes + checks) beside {n} burner process(es)")
