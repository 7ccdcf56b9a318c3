"""Building compiled extensions (lab 03, and the course benchmark ``tests/benchmark.py``).

``build_extension(name, source, attempts)`` compiles a Cython (``.pyx``) or pybind11 C++ (``.cpp``) source
into ``_build/<name>/`` in a separate process, so a compiler that crashes or hangs cannot take the
notebook with it. It tries each ``(description, flags)`` of ``attempts`` in turn (with OpenMP first,
then without, where a compiler lacks it) and rebuilds only when the source or the flags change.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import course

WINDOWS = sys.platform == "win32"

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
    openmp, optimise = (["/openmp"], []) if WINDOWS else (["-fopenmp"], ["-O3"])
    return [("with OpenMP", optimise + openmp), ("without OpenMP", optimise)]


NO_COMPILER = ("Install a {lang} compiler (Linux: {gnu}; macOS: `xcode-select --install`; Windows: Build Tools "
               "for Visual Studio) and rerun; the lab skips these rungs meanwhile.")
