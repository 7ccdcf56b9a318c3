# %% [markdown]
# # 03 · Compiled speed: profiling, NumPy, Numba, Cython
#
# **Teaching:** 40 min · **Exercises:** 25 min
#
# ## Objectives
# - Find the hot spot of a program with `timeit`, `cProfile` and `line_profiler`, before optimising.
# - Compile Python with Numba: `@njit`, `prange`, parallel ufuncs, and `nogil` functions in threads;
#   avoid the threading-layer pitfall.
# - Release the GIL from a Cython extension (`nogil`, `prange`), compiled on this machine.
# - Make a long computation survive being killed: checkpoint finished work and resume.
# - Read the whole π ladder, from the Python loop to compiled code on every core, measured here.
#
# ## Why compile?
# Lab 01 showed that the interpreter spends most of its time *deciding what to do* (looking up
# types and names, creating objects) rather than doing the arithmetic; lab 02 showed that it holds
# the GIL while it does so. Compiling a hot loop to machine code fixes both: the decisions are made
# once, when compiling, and compiled code that touches no Python objects can release the GIL and run
# on every core. But compile only what matters: first *measure* where the time goes.

# %%
import cProfile
import functools
import hashlib
import inspect
import io
import json
import math
import multiprocessing
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import course
from course import bench, pi

# Numba keeps compiled functions here (set before Numba is imported), so a second run skips compiling.
os.environ.setdefault("NUMBA_CACHE_DIR", str(course.BUILD / "numba_cache"))

# The start method of process pools: the platform default, or $COURSE_START_METHOD (see lab 02).
CTX = multiprocessing.get_context(os.environ.get("COURSE_START_METHOD") or None)
SCALE = {"small": 1, "workshop": 10}.get(course.size(), 100)
CORES = course.usable_cores()
CHUNKS = 48  # π is cut into this many chunks; chunk i always uses seed (BASE, i)
BASE = 2024
HELPERS = Path(pi.__file__).parent  # labs/course/: the π modules and the Cython source
course.BUILD.mkdir(exist_ok=True)
ladder = []  # (implementation, cores, darts per second): filled as we go, plotted at the end


def rung(name, cores, n, seconds):
    ladder.append((name, cores, n / seconds))


print(course.hardware())
print(bench.load())

# %% [markdown]
# ## 1. Where we start
# The rungs from labs 01 and 02, measured again here so that the whole ladder comes from one run on
# one machine: the Python loop and NumPy, alone and on every core.

# %%
#| label: baseline
N_LOOP = 1_000_000 * SCALE
N_NUMPY = 20_000_000 * SCALE

loop_hits = pi.count_hits_python(N_LOOP, BASE)
rung("Python loop", 1, N_LOOP, bench.best(pi.count_hits_python, N_LOOP, BASE, repeat=3))
numpy_hits = pi.count_hits_numpy(N_NUMPY, BASE)
rung("NumPy", 1, N_NUMPY, bench.best(pi.count_hits_numpy, N_NUMPY, BASE, repeat=3))
with ThreadPoolExecutor(CORES) as threads, ProcessPoolExecutor(CORES, mp_context=CTX) as procs:
    for name, pool, kind, n in [("Python loop, processes", procs, "python", N_LOOP),
                                ("NumPy, threads", threads, "numpy", N_NUMPY),
                                ("NumPy, processes", procs, "numpy", N_NUMPY)]:
        work = pi.tasks(kind, n, CHUNKS, BASE)
        rung(name, CORES, n, bench.best(lambda: sum(pool.map(pi.hits_of_chunk, work)), repeat=3))

import dask.array as da


def pi_dask_hits(n, chunk=1_000_000):
    rng = da.random.default_rng(BASE)
    x, y = rng.random(n, chunks=chunk), rng.random(n, chunks=chunk)
    return int(da.count_nonzero(x * x + y * y <= 1.0).compute())


rung("dask.array", CORES, N_NUMPY, bench.best(pi_dask_hits, N_NUMPY, repeat=3))
for name, cores, rate in ladder:
    print(f"{name:<24}{cores:>3} core{'s' if cores > 1 else ' '} {rate:10.3g} darts/s")
print(course.hardware())
print(bench.load())

# %% [markdown]
# ## 2. Profiling: find the hot loop
# Here is a small "analysis": π from three seeds with the plain loop, and how much the estimates
# spread. It is slow. Where does the time go?

# %%
N_PROFILE = 200_000


def experiment(n=N_PROFILE, seeds=3):
    estimates = [pi.estimate(pi.count_hits_python(n, seed), n) for seed in range(seeds)]
    return statistics.mean(estimates), statistics.stdev(estimates)


# %% [markdown]
# **`timeit`** (lab 01) tells you *how long*; it cannot tell you *where*. **`cProfile`**, in the
# standard library, records every function call: how many times, the time spent inside the function
# itself (`tottime`) and including what it called (`cumtime`). From a shell:
# `python -m cProfile -s cumtime myscript.py`. In a notebook: `%prun experiment()`, or:

# %%
#| label: cprofile
profiler = cProfile.Profile()
profiled_result = profiler.runcall(experiment)
report = io.StringIO()
pstats.Stats(profiler, stream=report).strip_dirs().sort_stats("tottime").print_stats(6)
print("\n".join(line for line in report.getvalue().splitlines()[4:] if line.strip()))

# %% [markdown]
# Nearly all the time is in `count_hits_python`, and the profile counts two calls of `random()` per
# dart: millions of tiny calls. (The profiler's own bookkeeping per call also makes the run slower
# than usual: profile to find *where*, time to find *how long*.) Which *lines*? **`line_profiler`**
# times every line of the functions you name. From a shell, `kernprof -l -v` runs a script and
# `-p` names what to profile; here the whole of `course/pi.py`, run as a script:

# %%
#| label: kernprof
command = ["kernprof", "-l", "-v", "--skip-zero", "-o", str(course.BUILD / "pi.py.lprof"),
           "-p", "pi.py", "pi.py", "loop", str(N_PROFILE)]
print("$ " + " ".join(command[:4] + ["-o", "_build/pi.py.lprof"] + command[6:]))
out = subprocess.run([sys.executable, "-m", *command], cwd=HELPERS, capture_output=True, text=True, timeout=300)
if out.returncode == 0:  # print the report on the hot function, from its total time on
    report = next(block for block in out.stdout.split("Total time:") if "count_hits_python" in block)
    print("Total time:" + report.rstrip())
else:
    print(f"kernprof failed ({out.stderr.strip().splitlines()[-1]}): is line_profiler installed?")

# %% [markdown]
# In a notebook, `%load_ext line_profiler` and `%lprun -f pi.count_hits_python experiment()`
# do the same; `%lprun` uses this API, which also works in any script:

# %%
#| label: line-profiler
from line_profiler import LineProfiler

line_profiler = LineProfiler(pi.count_hits_python)
line_profiler.runcall(experiment, N_PROFILE // 2)
report = io.StringIO()
line_profiler.print_stats(stream=report, stripzeros=True)
print(report.getvalue()[report.getvalue().index("Total time:"):].rstrip())

# %%
#| label: fig-line-profile
#| fig-cap: "Share of the run time spent on each line of the loop, measured by line_profiler on this machine."
#| fig-alt: "Horizontal bar chart with one bar per source line of count_hits_python: the for statement, the two calls to rng.random, the comparison and the increment each take a similar share of the time; the set-up lines take almost none."
import linecache

stats = line_profiler.get_stats()
(filename, _, _), line_times = next((key, t) for key, t in stats.timings.items() if key[2] == "count_hits_python")
total = sum(t for _, _, t in line_times)
shown = [(linecache.getline(filename, line).split("  #")[0].strip(), 100 * t / total) for line, _, t in line_times]
fig, ax = plt.subplots(figsize=(11, 0.5 * len(shown) + 1.5))
bars = ax.barh([code for code, _ in shown], [pct for _, pct in shown], color="#0072B2")
ax.bar_label(bars, [f"{pct:.0f} %" for _, pct in shown], padding=3, fontsize=12)
ax.invert_yaxis()
ax.set_yticks(range(len(shown)), [code for code, _ in shown], family="monospace", fontsize=12)
ax.set_xlabel("% of the time in count_hits_python")
ax.set_xlim(0, 1.2 * max(pct for _, pct in shown))
bench.stamp(fig)

# %% [markdown]
# Every line of the loop costs about the same, a fraction of a microsecond per dart, and none of it is
# arithmetic the processor finds hard: it is the interpreter's overhead, spread evenly. There is no
# single bad line to fix; the loop *as a whole* must leave the interpreter. Two ways: express it as
# whole-array NumPy (lab 01), or compile the loop.

# %% [markdown]
# ## 3. Numba
# Numba compiles a Python function to machine code the first time it is called, for the argument
# types it is called with (*just in time*), using LLVM, the compiler behind Clang and Rust. It
# understands loops, scalars and NumPy arrays, not arbitrary Python objects.
#
# ### 3.1 Whole-array NumPy, compiled
# Start with the counting step, on darts already drawn. NumPy evaluates `x * x + y * y <= 1.0`
# one operation at a time, each making a temporary array. Numba compiles the same expression into
# a single loop without temporaries (`@njit`), and with `parallel=True` also shares that loop among
# threads. A *parallel ufunc* (`@vectorize(target="parallel")`) is the same idea for one element:
# write the scalar function, Numba applies it to whole arrays on all cores.

# %%
import numba
from numba import njit

from course import pi_numba

N_COUNT = min(10_000_000 * SCALE, 50_000_000)
rng = np.random.default_rng(BASE)
x, y = rng.random(N_COUNT), rng.random(N_COUNT)


def count_numpy(x, y):
    return int(np.count_nonzero(x * x + y * y <= 1.0))


@njit
def count_njit(x, y):
    return (x * x + y * y <= 1.0).sum()


@njit(parallel=True)
def count_njit_parallel(x, y):
    return (x * x + y * y <= 1.0).sum()


def count_ufunc(x, y):
    return int(np.count_nonzero(pi_numba.inside_parallel(x, y)))


numba_source = Path(pi_numba.__file__).read_text()
print("@vectorize" + numba_source.split("@vectorize", 1)[1].split("\n\n\n", 1)[0])

# %%
#| label: counting-step
counters = {"NumPy": count_numpy, "@njit": count_njit, "@njit(parallel=True)": count_njit_parallel,
            "@vectorize(target='parallel')": count_ufunc}
counts, first_call, count_time = {}, {}, {}
for name, fn in counters.items():
    start = time.perf_counter()
    counts[name] = int(fn(x, y))  # the first call compiles: keep it out of the timing
    first_call[name] = time.perf_counter() - start
    count_time[name] = bench.best(fn, x, y, repeat=5, warmup=0)
print(f"count the hits among {N_COUNT:,} darts   first call     best   × NumPy")
for name in counters:
    print(f"  {name:<30}{first_call[name]:9.3f} s {count_time[name] * 1e3:7.1f} ms "
          f"{count_time['NumPy'] / count_time[name]:6.1f}×")
print(f"every version counts {counts['NumPy']:,} hits" if len(set(counts.values())) == 1 else counts)
print(course.hardware())
print(bench.load())

# %% [markdown]
# (If the parallel ufunc comes out *slower* than NumPy here, section 3.6 explains why: it depends on
# Numba's threading layer.)
#
# The *first call* includes compiling (or loading the compiled code from Numba's cache): always warm
# up before you time Numba, and remember that a short script pays that cost on every run
# (`cache=True` keeps the machine code on disk between runs).
#
# ### 3.2 `@njit` on the loop itself
# The naive loop of lab 01, with one decorator. Numba supports `np.random` inside compiled code.

# %%
@njit
def pi_loop_numba(n, seed):
    np.random.seed(seed)
    hits = 0
    for _ in range(n):
        x = np.random.random()
        y = np.random.random()
        if x * x + y * y <= 1.0:
            hits += 1
    return hits


N_NUMBA = 200_000_000 * SCALE
start = time.perf_counter()
pi_loop_numba(1000, BASE)
compile_loop = time.perf_counter() - start
loop_numba_hits = pi_loop_numba(N_NUMBA // 4, BASE)
t = bench.best(pi_loop_numba, N_NUMBA // 4, BASE, repeat=3)
rung("Numba @njit loop", 1, N_NUMBA // 4, t)
print(f"compiling took {compile_loop:.2f} s; then {N_NUMBA // 4 / t:.3g} darts/s, "
      f"{N_NUMBA // 4 / t / ladder[0][2]:.0f}× the Python loop")

# %% [markdown]
# Compiled, the loop leaves the Python loop far behind, yet it may not beat NumPy: `np.random.random()`
# inside Numba is a Mersenne Twister that makes one number per call, while NumPy fills whole arrays
# with a faster generator. Once the loop is compiled, the random numbers are the hot spot: profile again.
#
# ### 3.3 One random generator for every compiled version
# To spread darts over threads *and* get the same answer as a serial run, each chunk needs its own
# random stream that does not depend on which thread runs it. `course/pi_numba.py` uses *SplitMix64*, a
# generator of a few integer operations: chunk *i* of seed `base` starts from `mix64(base·γ + i)`.
# The function that counts one chunk is marked `nogil=True`: it touches no Python objects, so it can
# run without the GIL.

# %%
print(inspect.getsource(pi_numba.chunk_hits.py_func))
print(inspect.getsource(pi_numba.hits_prange.py_func))

# %%
N_PER_CHUNK = N_NUMBA // CHUNKS
N_SPLIT = N_PER_CHUNK * CHUNKS
pi_numba.hits_serial(10, 2, 0), pi_numba.hits_prange(10, 2, 0)  # compile (or load from the cache) first
serial_hits = pi_numba.hits_serial(N_PER_CHUNK, CHUNKS, BASE)
rung("Numba @njit SplitMix", 1, N_SPLIT, bench.best(pi_numba.hits_serial, N_PER_CHUNK, CHUNKS, BASE))

# %% [markdown]
# ### 3.4 `nogil` functions in Python threads
# Because `hits_range` releases the GIL, ordinary Python threads run it in parallel; each thread
# takes a share of the chunks.

# %%
def nogil_threads(hits_range, n_per_chunk=N_PER_CHUNK, workers=CORES):
    """All chunks, shared among `workers` Python threads, each calling hits_range on its share."""
    bounds = [k * CHUNKS // workers for k in range(workers + 1)]
    with ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(lambda k: hits_range(n_per_chunk, BASE, bounds[k], bounds[k + 1]), range(workers)))


nogil_hits = nogil_threads(pi_numba.hits_range)
rung("Numba nogil, threads", CORES, N_SPLIT, bench.best(nogil_threads, pi_numba.hits_range))

# %% [markdown]
# ### 3.5 `prange`: Numba's own threads
# `@njit(parallel=True)` with `prange` shares the loop's iterations among Numba's threads (as many
# as cores, unless `numba.set_num_threads` says fewer). Numba turns `total +=` into a safe parallel
# reduction. Here is its scaling, measured:

# %%
#| label: prange-scaling
prange_hits, prange_rate = {}, {}
for threads in range(1, CORES + 1):
    numba.set_num_threads(threads)
    prange_hits[threads] = pi_numba.hits_prange(N_PER_CHUNK, CHUNKS, BASE)
    prange_rate[threads] = N_SPLIT / bench.best(pi_numba.hits_prange, N_PER_CHUNK, CHUNKS, BASE)
numba.set_num_threads(CORES)
rung("Numba prange", 1, N_SPLIT, N_SPLIT / prange_rate[1])
if CORES > 1:
    rung("Numba prange", CORES, N_SPLIT, N_SPLIT / prange_rate[CORES])
print(f"Numba prange, {N_SPLIT:,} darts in {CHUNKS} chunks, threading layer: {numba.threading_layer()}")
for threads, r in prange_rate.items():
    print(f"  {threads} thread{'s' if threads > 1 else ' '}  {r:10.3g} darts/s  {r / prange_rate[1]:5.2f}× one thread")
print(f"the same {serial_hits:,} hits with every thread count: {set(prange_hits.values()) == {serial_hits}}")
print(course.hardware())
print(bench.load())

# %% [markdown]
# Look at the single-thread rates: the compiled SplitMix loop runs far faster than NumPy on the same
# core. The compiler sees the whole loop, keeps everything in registers, and uses SIMD instructions
# for several darts at once (Numba compiles for *this* processor's instruction set).
#
# ### 3.6 The threading-layer pitfall
# Numba's parallel code runs on a *threading layer*: `tbb`, `omp` (OpenMP) or `workqueue` (Numba's
# own). Which one you get depends on what is installed. After a parallel region, OpenMP's threads
# do not go to sleep at once: they *spin* (busy-wait) for a while, hoping for more work, which is
# good for a program that calls `prange` again and again and bad for anything else that wants those
# cores, such as Python threads running `nogil` code. The workqueue layer's idle threads sleep.
#
# We measure it in fresh processes, each with `NUMBA_THREADING_LAYER` set: (1) how much CPU time the
# process burns while it *sleeps* for 50 ms right after a `prange` call; (2) the time of `nogil` work
# on Python threads right after a `prange` call; and (3) the parallel ufunc of section 3.1 on
# 4 million darts. `OMP_WAIT_POLICY=active` makes OpenMP spin indefinitely, as some OpenMP runtimes
# (Intel's) do for much longer by default.

# %%
#| label: threading-layers
LAYERS = {"workqueue": {"NUMBA_THREADING_LAYER": "workqueue"},
          "omp": {"NUMBA_THREADING_LAYER": "omp"},
          "omp, OMP_WAIT_POLICY=active": {"NUMBA_THREADING_LAYER": "omp", "OMP_WAIT_POLICY": "active"}}
demo_code = f"import json, pi_numba; print(json.dumps(pi_numba.layer_demo(threads={CORES})))"
layer_results = {}
if CORES < 2:
    print("This machine gives us one core: the pitfall needs two or more. Read on, and try it on a bigger one.")
else:
    for name, env in LAYERS.items():
        run = subprocess.run([sys.executable, "-c", demo_code], cwd=HELPERS, capture_output=True, text=True,
                             env={**os.environ, "NUMBA_NUM_THREADS": str(CORES), **env}, timeout=300)
        if run.returncode == 0:
            layer_results[name] = json.loads(run.stdout.strip().splitlines()[-1])
        else:
            print(f"{name}: not available here ({run.stderr.strip().splitlines()[-1][:100]})")
    print(f"{'threading layer':<29}{'CPU burnt in 50 ms sleep':>25}{'nogil threads':>15}{'parallel ufunc':>16}")
    for name, r in layer_results.items():
        print(f"{name:<29}{r['idle_cpu_ms']:>22.1f} ms{r['nogil_median_ms']:>12.2f} ms{r['ufunc_ms']:>13.1f} ms")
print(course.hardware())
print(bench.load())

# %%
#| label: fig-threading-layers
#| fig-cap: "What Numba's idle threads cost after a `prange` call, for each threading layer, measured in fresh processes on this machine."
#| fig-alt: "Three bar charts side by side, one bar per threading layer. Left: CPU time burnt while the program sleeps 50 ms after a prange call, near zero for workqueue, a few milliseconds for OpenMP, the whole 50 milliseconds with OMP_WAIT_POLICY active. Middle: median time of the nogil thread work right after a prange call, shortest for workqueue. Right: time of the parallel ufunc, much shorter with workqueue than with OpenMP."
fig, axes = plt.subplots(1, 3, figsize=(13, 4.5))
names = list(layer_results)
colours = ["#009E73", "#E69F00", "#D55E00"][: len(names)]
for ax, key, title in [(axes[0], "idle_cpu_ms", "CPU burnt in a 50 ms sleep"),
                       (axes[1], "nogil_median_ms", "nogil threads after prange"),
                       (axes[2], "ufunc_ms", "parallel ufunc, 4M darts")]:
    values = [layer_results[n][key] for n in names]
    bars = ax.barh(names, values, color=colours)
    ax.bar_label(bars, [f"{v:.1f}" for v in values], padding=3, fontsize=12)
    ax.set_title(title, fontsize=14)
    ax.set_xlabel("ms")
    ax.invert_yaxis()
    ax.set_xlim(0, 1.3 * max(values, default=1))
for ax in axes[1:]:
    ax.set_yticks([])
bench.stamp(fig, bench.load())

# %% [markdown]
# OpenMP's spinning threads burn CPU time that the `nogil` threads needed. A second difference shows
# in the parallel ufunc: Numba's OpenMP layer calls the compiled kernel once for *every element*
# (no SIMD, a function call each time), while the workqueue layer hands each thread a block of
# elements. Both are properties of the layer, not of your code. If a program mixes
# `prange` with its own threads (or Dask, or a second `prange` program on the same cores), choose
# the workqueue layer (or `tbb`, where installed), before Numba starts its threads:
#
# ```python
# import numba
# numba.config.THREADING_LAYER = "workqueue"   # or: export NUMBA_THREADING_LAYER=workqueue
# ```
# Or keep OpenMP and make it sleep at once with `OMP_WAIT_POLICY=passive`. Never run more busy
# threads than cores: `numba.set_num_threads` and Dask's `threads_per_worker` should add up.
#
# ### Exercise 1: a parallel ufunc of your own
# Write `@vectorize(["float64(float64, float64)"], target="parallel")` for the distance
# `sqrt(x² + y²)` and compare its speed with `np.hypot(x, y)` on the darts `x`, `y` above.

# %% tags=["solution"]
from numba import vectorize


@vectorize(["float64(float64, float64)"], target="parallel")
def distance(a, b):
    return math.sqrt(a * a + b * b)


distance(x[:10], y[:10])  # compile first
t_ufunc = bench.best(distance, x, y, repeat=3)
t_hypot = bench.best(np.hypot, x, y, repeat=3)
print(f"parallel ufunc {t_ufunc * 1e3:.1f} ms, np.hypot {t_hypot * 1e3:.1f} ms; "
      f"same result: {np.allclose(distance(x, y), np.hypot(x, y))}")

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# The ufunc runs on all cores; `np.hypot` runs on one, and is also more careful (it avoids overflow
# for huge values), so it is slower per element. How much the ufunc wins depends on the threading
# layer (section 3.6): rerun with `NUMBA_THREADING_LAYER=workqueue` to compare. For small arrays
# (try `x[:1000]`) starting the threads dominates and NumPy wins: lab 02's overhead crossover again.
# </details>

# %% [markdown]
# ## 4. Cython: C extensions that release the GIL
# Cython translates Python-like code with C types (`.pyx`) into C, which a C compiler turns into an
# extension module. `course/pi_cython.pyx` holds the same SplitMix64 darts as `course/pi_numba.py`. Its work
# happens in a `cdef ... nogil` function, which touches no Python objects; the functions Python calls
# release the GIL around it (`with nogil:`), so Python threads run it in parallel, or use
# `prange(..., nogil=True)`, which becomes an OpenMP loop:

# %%
print((HELPERS / "pi_cython.pyx").read_text().split("cdef inline", 1)[1].split("\n\n\n", 1)[1])

# %% [markdown]
# Unlike Numba, Cython needs a C compiler on the machine (gcc or clang on Linux and macOS,
# *Build Tools for Visual Studio* on Windows). We compile in a separate process with `cythonize`
# and `setuptools`, into `_build/cython/`, first with OpenMP and, if the compiler lacks it (Apple's
# clang), without (then `prange` runs on one thread). A rebuild happens only when the source changes.

# %%
#| label: cython-build
CYTHON_DIR = course.BUILD / "cython"
BUILD_SCRIPT = """
import sys
from Cython.Build import cythonize
from setuptools import Extension, setup

source, out, temp, openmp = sys.argv[1:5]
flags = (["/openmp"] if sys.platform == "win32" else ["-fopenmp"]) if openmp == "yes" else []
optimise = [] if sys.platform == "win32" else ["-O3"]
extension = Extension("pi_cython", [source], extra_compile_args=optimise + flags,
                      extra_link_args=[] if sys.platform == "win32" else flags)
setup(name="pi_cython", ext_modules=cythonize([extension], build_dir=temp, quiet=True),
      script_args=["build_ext", "--build-lib", out, "--build-temp", temp])
"""


def build_cython():
    """Compile pi_cython.pyx into _build/cython/; returns (ok, message)."""
    source = HELPERS / "pi_cython.pyx"
    target = CYTHON_DIR / ("pi_cython" + sysconfig.get_config_var("EXT_SUFFIX"))
    stamp = CYTHON_DIR / "pi_cython.built.json"
    digest = hashlib.sha256(source.read_bytes() + BUILD_SCRIPT.encode()).hexdigest()
    if target.exists() and stamp.exists() and json.loads(stamp.read_text())["sha256"] == digest:
        return True, "already " + json.loads(stamp.read_text())["message"]
    errors = []
    for openmp in ["yes", "no"]:
        temp = CYTHON_DIR / "temp"
        shutil.rmtree(temp, ignore_errors=True)
        try:
            build = subprocess.run([sys.executable, "-c", BUILD_SCRIPT, str(source), str(CYTHON_DIR), str(temp), openmp],
                                   capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            return False, "the compiler took more than 10 minutes; giving up"
        if build.returncode == 0:
            message = f"built {target.name} {'with' if openmp == 'yes' else 'without'} OpenMP"
            stamp.write_text(json.dumps({"sha256": digest, "message": message}))
            return True, message
        errors.append((build.stderr or build.stdout).strip().splitlines()[-1:] or ["unknown error"])
    return False, errors[-1][0]


CYTHON_DIR.mkdir(parents=True, exist_ok=True)
start = time.perf_counter()
cython_ok, cython_message = build_cython()
if cython_ok:
    sys.path.insert(0, str(CYTHON_DIR))
    import pi_cython

    print(f"{cython_message}; took {time.perf_counter() - start:.1f} s")
else:
    pi_cython = None
    print(f"Cannot compile the Cython extension ({cython_message[:120]}). Install a C compiler "
          "(Linux: gcc; macOS: `xcode-select --install`; Windows: Build Tools for Visual Studio) "
          "and rerun; the lab skips the Cython rungs meanwhile.")

# %%
#| label: cython-rates
N_CYTHON = N_SPLIT // 4
N_PER_CY = N_CYTHON // CHUNKS
if pi_cython is not None:
    cython_hits = {
        "serial": pi_cython.hits_range(N_PER_CY, BASE, 0, CHUNKS),
        "nogil threads": nogil_threads(pi_cython.hits_range, N_PER_CY),
        "prange": pi_cython.hits_prange(N_PER_CY, CHUNKS, BASE, CORES),
    }
    t_serial = bench.best(pi_cython.hits_range, N_PER_CY, BASE, 0, CHUNKS, repeat=3)
    t_threads = bench.best(nogil_threads, pi_cython.hits_range, N_PER_CY, repeat=3)
    t_prange = bench.best(pi_cython.hits_prange, N_PER_CY, CHUNKS, BASE, CORES, repeat=3)
    rung("Cython", 1, N_PER_CY * CHUNKS, t_serial)
    rung("Cython nogil, threads", CORES, N_PER_CY * CHUNKS, t_threads)
    rung("Cython prange", CORES, N_PER_CY * CHUNKS, t_prange)
    print(f"Cython, {N_PER_CY * CHUNKS:,} darts: {cython_hits}")
    print(f"  serial {N_PER_CY * CHUNKS / t_serial:.3g}/s, nogil threads {t_serial / t_threads:.2f}×, "
          f"prange {t_serial / t_prange:.2f}× on {CORES} cores")
    print(f"  identical to Numba's count: {pi_cython.hits_range(N_PER_CY, BASE, 0, CHUNKS) == pi_numba.hits_serial(N_PER_CY, CHUNKS, BASE)}")
else:
    cython_hits = {}
    print("Cython skipped: no compiled extension (see above).")
print(course.hardware())
print(bench.load())

# %% [markdown]
# Cython's loop is the same algorithm, yet slower than Numba's on one core: we compiled it for any
# processor of this family (`-O3`), while Numba compiles for exactly this one and uses its widest
# SIMD instructions. Adding `-march=native` would close much of the gap, at the cost of a binary
# that may not run on another machine (a cluster's login node and compute nodes can differ).
#
# **Numba or Cython?** Numba: no compiler to install, NumPy-style code, compiles on first call,
# GPU support. Cython: ahead-of-time compiled packages to ship, calling C and C++ libraries, fine
# control. Both release the GIL the same way: no Python objects inside the hot loop.

# %% [markdown]
# ## 5. Checkpointing: survive being killed
# A long job on a cluster can be killed: it runs out of wall time, the node fails, you press Ctrl-C.
# The remedy is to save finished work as you go and skip it on restart. `pi.checkpoint_chunk`
# keeps each finished chunk in its own small file, written to a temporary name and then renamed
# (`os.replace`): a rename is atomic, so a file is either complete or absent, never half-written.

# %%
print(inspect.getsource(pi.checkpoint_chunk))
print(inspect.getsource(pi.checkpointed_hits))

# %% [markdown]
# We start the run in another process, kill it once some chunks are done, and restart it here.

# %%
#| label: checkpoint-demo
CHECKPOINTS = course.BUILD / "03_checkpoints"
CK_N, CK_CHUNKS, CK_PAUSE = 200_000, 40, 0.05
shutil.rmtree(CHECKPOINTS, ignore_errors=True)
job = subprocess.Popen([sys.executable, "pi.py", "checkpoint", str(CHECKPOINTS), str(CK_N),
                        str(CK_CHUNKS), str(BASE), str(CK_PAUSE)], cwd=HELPERS,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
deadline = time.perf_counter() + 120
try:
    while len(list(CHECKPOINTS.glob("chunk_*.json"))) < CK_CHUNKS // 4 and job.poll() is None:
        if time.perf_counter() > deadline:
            raise TimeoutError("the checkpointed run made no progress for two minutes")
        time.sleep(0.02)
finally:
    job.kill()  # no warning, no clean-up: like a node failure or the end of a job's wall time
    job.wait()
done_when_killed = len(list(CHECKPOINTS.glob("chunk_*.json")))
if done_when_killed == 0:
    print(f"The checkpointed run stopped before finishing a chunk: {job.stderr.read().strip()[-300:]}")
start = time.perf_counter()
resumed_hits = pi.checkpointed_hits(CHECKPOINTS, CK_N, CK_CHUNKS, BASE)
resume_seconds = time.perf_counter() - start
uninterrupted_hits = sum(pi.count_hits_numpy(CK_N, BASE, i) for i in range(CK_CHUNKS))
print(f"killed the run after {done_when_killed} of {CK_CHUNKS} chunks; "
      f"resuming computed the other {CK_CHUNKS - done_when_killed} in {resume_seconds:.2f} s")
print(f"resumed: {resumed_hits:,} hits, uninterrupted: {uninterrupted_hits:,}, "
      f"same: {resumed_hits == uninterrupted_hits}")
print(f"π ≈ {pi.estimate(resumed_hits, CK_N * CK_CHUNKS):.5f}")

# %% [markdown]
# ### Exercise 2: checkpoint in parallel
# Compute the chunks with a process pool instead: each worker writes its own chunk files, so they
# never collide. Use `functools.partial(pi.checkpoint_chunk, folder, CK_N, BASE)` with
# `pool.map` over the chunk numbers, into a fresh folder. Kill it halfway (interrupt the kernel),
# then run it again. Do you get the same total?

# %% tags=["solution"]
PARALLEL_CHECKPOINTS = course.BUILD / "03_checkpoints_parallel"
shutil.rmtree(PARALLEL_CHECKPOINTS, ignore_errors=True)
PARALLEL_CHECKPOINTS.mkdir(parents=True)
with ProcessPoolExecutor(CORES, mp_context=CTX) as pool:
    one_chunk = functools.partial(pi.checkpoint_chunk, PARALLEL_CHECKPOINTS, CK_N, BASE)
    parallel_hits = sum(pool.map(one_chunk, range(CK_CHUNKS)))
print(f"parallel, checkpointed: {parallel_hits:,} hits; same as serial: {parallel_hits == uninterrupted_hits}")

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# The same total: chunk *i* always uses seed `(BASE, i)` and is stored under its own name, so it
# does not matter which worker computed it, when, or whether it was computed before the kill. Only
# the chunks that were running at the moment of the kill are lost (and redone). The same recipe works
# for a Slurm job array, GNU parallel (lab 06) or Dask: name the output after the task, write it
# atomically, skip what exists.
# </details>

# %% [markdown]
# ## 6. The π ladder
# Every implementation of this course so far, measured in this run, from the Python loop to compiled
# code on all cores. Darts per second, and the speed-up over the Python loop.

# %%
#| label: pi-ladder
loop_rate = ladder[0][2]
print(f"{'implementation':<26}{'cores':>6}{'darts/s':>12}{'× loop':>9}")
for name, cores, rate in sorted(ladder, key=lambda r: r[2]):
    print(f"{name:<26}{cores:>6}{rate:>12.3g}{rate / loop_rate:>8.0f}×")
print(f"{course.hardware()} · {bench.load()}")

# %%
#| label: fig-pi-ladder
#| fig-cap: "The π ladder: darts per second for every implementation and core count, measured on this machine (log scale)."
#| fig-alt: "Horizontal bar chart, log scale, of darts per second for each implementation, from the pure-Python loop at the bottom through NumPy, Dask, Cython and Numba to Numba prange on all cores at the top; each bar is labelled with its speed-up over the loop."
families = {"Python": "#56B4E9", "NumPy": "#0072B2", "dask": "#009E73", "Numba": "#E69F00", "Cython": "#CC79A7"}
rows = sorted(ladder, key=lambda r: r[2])
fig, ax = plt.subplots(figsize=(12, 0.3 * len(rows) + 1.6))
labels = [f"{name} ({cores} core{'s' if cores > 1 else ''})" for name, cores, _ in rows]
colours = [next(c for f, c in families.items() if name.startswith(f)) for name, _, _ in rows]
bars = ax.barh(labels, [rate for *_, rate in rows], color=colours)
ax.bar_label(bars, [f"{rate / loop_rate:.0f}×" for *_, rate in rows], padding=4, fontsize=12)
ax.set_xscale("log")
ax.set_xlim(right=ax.get_xlim()[1] * 4)
ax.set_xlabel("darts per second (log scale)")
ax.tick_params(axis="y", labelsize=12)
bench.stamp(fig, bench.load())

# %% [markdown]
# Read the ladder from the bottom. Most of the distance is *compiled against interpreted* (one core);
# the last step is *parallel* (all cores). Both matter, and they multiply: that is why we compile
# first, then parallelise.
#
# ### Exercise 3: where is your hot loop?
# Profile one of your own scripts with `python -m cProfile -s tottime script.py`, then
# `kernprof -l -v -p script.py script.py`. Which rung of the ladder is your hot loop on, and which
# rung could it reach?
#
# <details><summary>Solution</summary>
#
# There is no single answer. Typical findings: a Python loop over array elements (go to NumPy or
# Numba); many small NumPy calls in a loop (Numba, which fuses them); reading files (threads, lab 02;
# better formats, lab 09); a hot loop that is already NumPy on one core (threads, `prange` or Dask).
# </details>

# %% [markdown]
# ## Key points
# - Measure before you optimise: `timeit` for *how long*, `cProfile` for *which function*,
#   `line_profiler` (`kernprof -l -v`, `%lprun`) for *which line*.
# - Numba compiles loops and array expressions to machine code (`@njit`); warm it up before timing.
#   `prange`, `parallel=True` and `@vectorize(target="parallel")` use every core; `nogil=True` lets
#   Python threads run compiled code in parallel.
# - OpenMP threads spin after a parallel region: mixing `prange` with other threads wants the
#   workqueue (or tbb) layer, or `OMP_WAIT_POLICY=passive`.
# - Cython releases the GIL with `nogil` functions and `prange`; it needs a C compiler, Numba does not.
# - Checkpoint long runs: one file per finished task, written atomically, skipped on restart; seed
#   each task by its number, and the resumed answer is exactly the uninterrupted one.
# - Compiled (×10–100) and parallel (× cores) multiply.

# %% [markdown]
# ## Checks
# Run by `pytest labs/03_compiled_speed.py`; the slides never show this cell.

# %% tags=["checks"]
def test_compiled_counts_match_the_python_reference():
    reference = pi_numba.chunk_hits_reference(2_000, BASE, 7)
    assert pi_numba.chunk_hits(2_000, BASE, 7) == reference
    if pi_cython is not None:
        assert pi_cython.chunk_hits(2_000, BASE, 7) == reference


def test_serial_and_parallel_numba_agree():
    assert nogil_hits == serial_hits
    assert set(prange_hits.values()) == {serial_hits}


def test_counting_step_identical():
    assert len(set(counts.values())) == 1


def test_cython_agrees_with_numba():
    if pi_cython is None:
        return  # no compiler here: the lab printed how to get one
    assert len(set(cython_hits.values())) == 1
    assert cython_hits["serial"] == pi_numba.hits_serial(N_PER_CY, CHUNKS, BASE)


def test_pi_within_tolerance():
    for hits, n in [(loop_hits, N_LOOP), (numpy_hits, N_NUMPY), (serial_hits, N_SPLIT),
                    (loop_numba_hits, N_NUMBA // 4), (resumed_hits, CK_N * CK_CHUNKS)]:
        assert abs(pi.estimate(hits, n) - math.pi) < 5 * pi.stderr(n), (hits, n)


def test_checkpointed_run_resumes_to_the_same_answer():
    assert 0 < done_when_killed < CK_CHUNKS  # it really was interrupted
    assert resumed_hits == uninterrupted_hits == parallel_hits
    for f in CHECKPOINTS.glob("chunk_*.json"):
        json.loads(f.read_text())  # every chunk file is complete


def test_ladder_is_complete():
    names = {name for name, _, _ in ladder}
    assert {"Python loop", "NumPy", "dask.array", "Numba prange", "Numba nogil, threads"} <= names
    assert all(rate > 0 for *_, rate in ladder)


course.run_checks(globals())
