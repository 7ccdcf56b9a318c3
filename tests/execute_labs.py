"""Execute the labs (jupytext percent scripts) into notebooks under ``_build/``.

This is the one piece of glue between the labs, the slides and the tests:

* ``python tests/execute_labs.py``            executes every lab  -> ``_build/NN_name.ipynb``
* ``python tests/execute_labs.py 01 04_dask`` executes the labs whose names start with those prefixes
* ``conftest.py`` uses :class:`LabKernel` so that ``pytest labs/NN_name.py`` executes the lab the same
  way, keeps the kernel alive, and then runs each of the lab's ``test_*`` checks inside it.

The slides embed outputs from ``_build/*.ipynb`` by cell label, so what the deck shows is always the
output of the latest lab run. A notebook is written only when every cell ran; a failed run leaves the
previous notebook untouched and writes ``_build/NN_name.failed.ipynb`` to look at.
"""

from __future__ import annotations

import argparse
import os
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
CELL_TIMEOUT_S = int(os.environ.get("COURSE_CELL_TIMEOUT", "900"))

LabError = (CellExecutionError, CellTimeoutError, DeadKernelError)


def lab_paths(prefixes: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """All labs (``labs/NN_*.py``) in order, or those whose file names start with one of ``prefixes``."""
    labs = sorted(LABS.glob("[0-9][0-9]_*.py"))
    if prefixes:
        labs = [p for p in labs if any(p.name.startswith(x) for x in prefixes)]
    return labs


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


def _write_atomically(nb: nbformat.NotebookNode, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, target)


class LabKernel:
    """One lab executed in a live Jupyter kernel (cwd ``labs/``), kept alive for follow-up code."""

    def __init__(self, lab: Path, timeout: int = CELL_TIMEOUT_S):
        self.lab = Path(lab)
        self.nb = jupytext.read(self.lab)
        self.nb.metadata["kernelspec"] = KERNEL
        self.client = NotebookClient(
            self.nb,
            timeout=timeout,
            kernel_name=KERNEL["name"],
            resources={"metadata": {"path": str(LABS)}},
            record_timing=False,
        )
        self._started = False

    @property
    def notebook_path(self) -> Path:
        return BUILD / (self.lab.stem + ".ipynb")

    def run(self) -> None:
        """Execute every cell top to bottom; write ``_build/NN_name.ipynb`` only if all cells ran."""
        client = self.client
        client.km = client.create_kernel_manager()
        client.start_new_kernel()
        client.start_new_kernel_client()
        self._started = True
        self.nb.metadata.pop("widgets", None)
        try:
            for index, cell in enumerate(self.nb.cells):
                client.execute_cell(cell, index)
        except LabError:
            _write_atomically(self.nb, BUILD / (self.lab.stem + ".failed.ipynb"))
            raise
        client.set_widgets_metadata()
        _offline_outputs(self.nb)
        _write_atomically(self.nb, self.notebook_path)
        (BUILD / (self.lab.stem + ".failed.ipynb")).unlink(missing_ok=True)

    def run_code(self, code: str) -> str:
        """Run ``code`` in the lab's kernel (after :meth:`run`) and return what it printed.

        Raises ``CellExecutionError`` when the code fails."""
        if not self._started:
            raise RuntimeError("the lab has not been executed")
        cell = nbformat.v4.new_code_cell(code)
        self.nb.cells.append(cell)  # nbclient addresses the cell by its index in the notebook
        try:
            self.client.execute_cell(cell, len(self.nb.cells) - 1)
        finally:
            self.nb.cells.pop()
        return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")

    def close(self) -> None:
        if self._started and self.client.km is not None:
            self.client._cleanup_kernel()
        self._started = False


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
    failed = []
    for lab in labs:
        start = time.perf_counter()
        print(f"executing {lab.relative_to(ROOT)} ...", flush=True)
        try:
            out = execute(lab)
        except LabError as err:
            failed.append(lab.name)
            first = str(err).strip().splitlines()
            print(f"  FAILED after {time.perf_counter() - start:.0f} s: {first[-1] if first else err}", file=sys.stderr)
            print(f"  The partly executed notebook is _build/{lab.stem}.failed.ipynb", file=sys.stderr)
            continue
        print(f"  wrote {out.relative_to(ROOT)} in {time.perf_counter() - start:.0f} s", flush=True)
    if failed:
        print(f"{len(failed)} lab(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
