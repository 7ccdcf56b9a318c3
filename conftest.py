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
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

from tests.execute_labs import LABS, LabError, LabKernel

LAB_NAME = re.compile(r"^\d\d_\w+\.py$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
printed_by_checks: list[tuple[str, str]] = []


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

    def collect(self):
        yield LabRun.from_parent(self, name="executes")
        for name in lab_check_names(self.path):
            yield LabCheck.from_parent(self, name=name)

    def teardown(self):
        if self.kernel is not None:
            self.kernel.close()
            self.kernel = None


class LabItem(pytest.Item):
    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, LabError):
            return ANSI.sub("", f"{self.parent.path.name}: {excinfo.value}")
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.parent.path, None, f"{self.parent.path.name}::{self.name}"


class LabRun(LabItem):
    def runtest(self):
        lab: LabFile = self.parent
        os.environ["COURSE_CHECKS"] = "pytest"
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
    """Show what the labs' checks printed (lab 00 prints its setup table this way)."""
    for nodeid, text in printed_by_checks:
        terminalreporter.section(f"printed by {nodeid}")
        terminalreporter.write(text if text.endswith("\n") else text + "\n")
