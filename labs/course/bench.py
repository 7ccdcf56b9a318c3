"""Benchmark helpers for labs 01–03: timing with warm-up and repeats, the machine's load, figure stamps.

Lab 01 builds :func:`timings` step by step from ``timeit``; labs 02 and 03 import it from here.
"""

from __future__ import annotations

import statistics
import timeit

import course


def timings(fn, *args, repeat: int = 5, warmup: int = 1) -> list[float]:
    """Seconds taken by ``fn(*args)`` in each of ``repeat`` runs, after ``warmup`` untimed runs.

    ``timeit`` uses ``time.perf_counter`` (the finest clock there is) and switches the garbage
    collector off while it times, so a collection does not land in one run by chance.
    """
    for _ in range(warmup):
        fn(*args)
    return timeit.repeat(lambda: fn(*args), number=1, repeat=repeat)


def best(fn, *args, repeat: int = 5, warmup: int = 1) -> float:
    """The fastest of ``repeat`` timed runs: the one least disturbed by everything else on the machine."""
    return min(timings(fn, *args, repeat=repeat, warmup=warmup))


def median(fn, *args, repeat: int = 5, warmup: int = 1) -> float:
    return statistics.median(timings(fn, *args, repeat=repeat, warmup=warmup))


def load() -> str:
    """How busy the machine is: the 1-minute load average against the cores we may use."""
    import psutil

    one_minute = psutil.getloadavg()[0]
    return f"load average {one_minute:.1f} on {course.usable_cores()} usable cores"


def stamp(fig, note: str = "") -> None:
    """Print the hardware (and an optional note) at the foot of a figure, and tidy its layout."""
    text = course.hardware() + (f" · {note}" if note else "")
    fig.text(0.5, 0.005, text, ha="center", va="bottom", fontsize=9, color="#444444")
    fig.tight_layout(rect=(0, 0.045, 1, 1))


# ---------------------------------------------------------------------------------------------------
# Building lab 03's compiled extensions outside the lab (the course benchmark, tests/benchmark.py).
# The same code as lab 03's `build_extension`, so lab 03 may import it from here instead.

SETUP = """
import sys
from setuptools import Extension, setup

name, source, out, temp, *flags = sys.argv[1:]
link = [f for f in flags if "openmp" in f]
if source.endswith(".pyx"):
    from Cython.Build import cythonize
    modules = cythonize([Extension(name, [source], extra_compile_args=flags, extra_link_args=link)],
                        build_dir=temp, quiet=True)
else:
    import pybind11
    modules = [Extension(name, [source], include_dirs=[pybind11.get_include()], language="c++",
                         extra_compile_args=flags, extra_link_args=link)]
setup(name=name, ext_modules=modules, script_args=["build_ext", "--build-lib", out, "--build-temp", temp])
"""


def build_extension(name, source, attempts):
    """Compile ``source`` into the module ``name`` under _build/``name``/, trying each (description, flags)
    of ``attempts`` in turn. Returns (module or None, message); a rebuild happens only after a change."""
    import hashlib
    import importlib
    import json
    import shutil
    import subprocess
    import sys
    import sysconfig
    import time
    from pathlib import Path

    source = Path(source)
    folder = course.BUILD / name
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name + sysconfig.get_config_var("EXT_SUFFIX"))
    stamp = folder / "built.json"
    digest = hashlib.sha256(source.read_bytes() + SETUP.encode() + repr(attempts).encode()).hexdigest()
    start, message = time.perf_counter(), None
    if not (target.exists() and stamp.exists() and json.loads(stamp.read_text())["sha256"] == digest):
        errors = []
        for description, flags in attempts:
            temp = folder / "temp"
            shutil.rmtree(temp, ignore_errors=True)
            try:
                build = subprocess.run([sys.executable, "-c", SETUP, name, str(source), str(folder), str(temp), *flags],
                                       capture_output=True, text=True, timeout=600)
            except subprocess.TimeoutExpired:
                return None, "the compiler took more than 10 minutes"
            if build.returncode == 0:
                message = f"built {name} {description} in {time.perf_counter() - start:.1f} s"
                stamp.write_text(json.dumps({"sha256": digest, "message": message}))
                break
            lines = [line for line in (build.stderr or build.stdout).splitlines() if "error" in line.lower()]
            errors.append((lines or (build.stderr or build.stdout).splitlines() or ["unknown error"])[-1].strip())
        else:
            return None, errors[-1][:160]
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    module = importlib.import_module(name)
    return module, message or "already " + json.loads(stamp.read_text())["message"]


def openmp_attempts() -> list:
    """Lab 03's compiler flags for the Cython extension: with OpenMP first, then without."""
    import sys

    windows = sys.platform == "win32"
    openmp, optimise = (["/openmp"], []) if windows else (["-fopenmp"], ["-O3"])
    return [("with OpenMP", optimise + openmp), ("without OpenMP", optimise)]
