"""The course's own package: every lab starts with ``import course``.

What a lab calls on it:

* ``course.hardware()``   one line naming the CPU, cores, RAM and OS; printed next to every timing.
* ``course.dataset()``    the folder of ERA5-like monthly NetCDF files, made on first use: the one way
  a lab gets the data (``course.generator()`` is the generator itself, ``data/era5_like.py``).
* ``course.images()``     the folder of PNG maps made from the same data (GNU parallel episode).
* ``course.table(rows)``  shows measured results as a real table (Markdown in a notebook and on the
  slides, aligned text in a terminal).
* ``course.run_checks(globals())``  runs a lab's ``test_*`` checks when it runs as a script or notebook.

Its modules, one per subject, hold what the labs share and what worker processes must import by name
(a process started with ``spawn`` cannot see functions defined in a notebook):

* ``course.pi``        π, the running example: darts, midpoint slices, checkpoints, MPI (labs 01–05);
  ``course.pi_numba`` and ``pi_cython.pyx`` are its compiled versions (lab 03).
* ``course.soup``      the pea-soup recipe, as data (lab 01) and as functions (lab 04).
* ``course.bench``     timing with warm-up and repeats, the machine's load, figure stamps.
* ``course.clusters``  Dask clusters: a client, computations with a deadline, worker memory, the
  command-line cluster, batch-job scripts (labs 04, 05 and every lab that starts a cluster).
* ``course.file_stats`` the per-file job of the GNU parallel episode (06).
* ``course.s3``        a private S3 object store on 127.0.0.1 (09).
* ``course.build``     compiles the Cython and pybind11 C++ extensions of lab 03 (and the benchmark).
* ``course.ml``        deadlines for what dask-ml computes by itself, idle-worker memory (10).
* ``course.gpu``       the GPU probe and the scripts run under cudf.pandas / cuml.accel (11).
* ``course.feed``      the PyTorch Dataset that DataLoader workers import by name (12).

Importing it in a lab also makes a lab run as a script behave like a notebook under the ``spawn``
start method (used by Dask's worker processes everywhere, and by multiprocessing on macOS and
Windows): new processes do not re-run the lab from the top. In your own scripts, put the top-level
code under ``if __name__ == "__main__":`` instead (episode 02 explains why). In a lab (not in the worker
processes, which import it too) it also sets matplotlib up for the room (large fonts; no windows when run
as a script) and points cartopy at the Natural Earth layers shipped in ``data/`` so maps draw offline.

The dataset size comes from the environment variable ``COURSE_SIZE`` (``small``, the default, runs in
seconds; ``workshop`` is a few GB; ``large`` or e.g. ``40GB`` is larger than RAM) and its location
from ``COURSE_DATA_DIR`` (default ``data/era5/`` in the repository), so the same lab scales up unchanged.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # labs/course/__init__.py -> the repository
BUILD = ROOT / "_build"
DATA = ROOT / "data"

# The dataset generator and the offline-map set-up are scripts in data/, not installed packages. This is
# the one place that makes them importable (as ``era5_like`` and ``offline_maps``), for the functions below
# and for the generator's own worker processes.
if str(DATA) not in sys.path:
    sys.path.insert(0, str(DATA))


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, or the executor behind the slides and tests)."""
    if "ipykernel" not in sys.modules:  # cheap, and enough in almost every case
        return False
    try:  # a script may import ipykernel without running in a kernel (lab 00 checks that it imports)
        from IPython import get_ipython

        return type(get_ipython()).__name__ == "ZMQInteractiveShell"
    except ImportError:
        return False


def size() -> str:
    """The dataset size the labs use: ``$COURSE_SIZE`` or ``small``."""
    return os.environ.get("COURSE_SIZE", "small")


@functools.cache
def _cpu_name() -> str:
    system = platform.system()
    try:
        if system == "Linux":
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
        elif system == "Darwin":
            import subprocess

            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True)
            if out.stdout.strip():
                return out.stdout.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    """Cores this process may run on (respects HPC batch allocations and containers)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@functools.cache
def hardware() -> str:
    """One line describing this machine, e.g. ``AMD EPYC 7B13 · 2 cores · 23.5 GiB RAM · Linux``."""
    import psutil

    ram = psutil.virtual_memory().total / 2**30
    physical = psutil.cpu_count(logical=False)
    cores = f"{usable_cores()} cores"
    if physical and physical != usable_cores():
        cores += f" ({physical} physical)"
    return f"{_cpu_name()} · {cores} · {ram:.1f} GiB RAM · {platform.system()} · Python {platform.python_version()}"


def generator():
    """The dataset generator module, ``data/era5_like.py``: sizes (``parse_size``), folders, checks."""
    import era5_like

    return era5_like


def dataset(size_name: str | None = None) -> Path:
    """The folder of ERA5-like monthly NetCDF files, generated (or completed) on first use."""
    import era5_like

    return era5_like.ensure_dataset(size_name or size())


def images(size_name: str | None = None) -> Path:
    """The folder of daily PNG maps of 2 m temperature made from the dataset."""
    import era5_like

    return era5_like.ensure_images(size_name or size())


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def table(rows, columns: list[str] | None = None, align: str | None = None) -> None:
    """Show a table of results: a real, styled table in a notebook (and so on the slides that embed it),
    aligned plain text when the lab runs as a script.

    ``rows`` is a pandas DataFrame (its index is dropped: make it a column first if it matters) or a list
    of dicts with the same keys. Format numbers before passing them when the default (3 significant
    digits) is not what the reader needs, e.g. ``f"{seconds:.2f} s"``. ``align`` is one letter per
    column, ``l`` or ``r``; by default numbers are right-aligned and text left-aligned.
    """
    if hasattr(rows, "to_dict"):  # a DataFrame
        columns = columns or [str(c) for c in rows.columns]
        rows = rows.to_dict("records")
    rows = [dict(r) for r in rows]
    columns = columns or (list(rows[0]) if rows else [])
    cells = [[_cell(r.get(c, "")) for c in columns] for r in rows]
    if align is None:
        align = "".join("r" if rows and all(isinstance(r.get(c), (int, float)) for r in rows) else "l"
                        for c in columns)
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]

    def pad(text, i):
        return text.rjust(widths[i]) if align[i] == "r" else text.ljust(widths[i])

    plain = "\n".join(["  ".join(pad(c, i) for i, c in enumerate(columns)).rstrip(),
                        "  ".join("-" * w for w in widths)]
                       + ["  ".join(pad(v, i) for i, v in enumerate(row)).rstrip() for row in cells])
    if not in_notebook():
        print(plain)
        return
    esc = [[v.replace("|", "\\|") for v in row] for row in [columns] + cells]
    rule = ["---:" if a == "r" else ":---" for a in align]
    markdown = "\n".join("| " + " | ".join(row) + " |" for row in [esc[0], rule] + esc[1:])
    from IPython.display import display

    display({"text/markdown": markdown, "text/plain": plain}, raw=True)


def run_checks(namespace: dict) -> None:
    """Run every ``test_*`` function in ``namespace`` (a lab's ``globals()``) and report.

    Under pytest (``COURSE_CHECKS=pytest``) this does nothing: pytest runs each check as its own item.
    """
    if os.environ.get("COURSE_CHECKS") == "pytest":
        return
    checks = [(name, f) for name, f in namespace.items() if name.startswith("test_") and callable(f)]
    failed = []
    for name, check in checks:
        try:
            check()
        except AssertionError as err:
            failed.append(name)
            print(f"check FAILED: {name}: {err}")
        else:
            print(f"check passed: {name}")
    if failed:
        raise SystemExit(f"{len(failed)} of {len(checks)} checks failed: {', '.join(failed)}")
    print(f"All {len(checks)} checks passed.")


def _spawn_like_a_notebook() -> None:
    """Stop ``spawn``-started processes from re-running a lab that runs as a script.

    Under ``spawn``, a child process re-imports the script that started it unless the main module
    has a module spec; notebooks have no script to re-run. Giving the script the spec a notebook's
    ``__main__`` effectively has makes both behave the same way.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or in_notebook() or getattr(main, "__spec__", None) is not None or path is None:
        return
    if Path(path).resolve().parent == Path(__file__).resolve().parents[1]:  # a lab in labs/
        import importlib.machinery

        main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)


def _setup_matplotlib() -> None:
    try:
        import matplotlib
    except ImportError:
        return
    if not in_notebook() and "MPLBACKEND" not in os.environ:
        matplotlib.use("Agg")  # a script makes its figures without opening windows
    matplotlib.rcParams.update(
        {
            "figure.figsize": (9, 5),
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "font.size": 15,
            "axes.titlesize": 17,
            "axes.labelsize": 15,
            "legend.fontsize": 13,
            "xtick.labelsize": 13,
            "ytick.labelsize": 13,
            "axes.prop_cycle": matplotlib.cycler(
                # Okabe-Ito: distinguishable with every common colour-vision deficiency
                color=["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
            ),
        }
    )


def _setup_offline_maps() -> None:
    try:
        import offline_maps
    except ImportError:  # data/offline_maps.py is part of the repository; only a broken checkout lacks it
        return
    offline_maps.configure_cartopy()


def _imported_by_a_lab() -> bool:
    """True in a lab's own process (a notebook kernel, or a lab run as a script); False in the worker
    processes that import ``course.pi`` and friends, which need no plotting set-up."""
    if in_notebook():
        return True
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    return path is not None and Path(path).resolve().parent == Path(__file__).resolve().parents[1]


_spawn_like_a_notebook()
if _imported_by_a_lab():
    _setup_matplotlib()
    _setup_offline_maps()
