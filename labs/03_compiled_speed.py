# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Compiled speed: profiling, NumPy, Numba, Cython, C++
#
# **Teaching:** 45 min · **Exercises:** 30 min
#
# ## Objectives
# - Find the hot spot of a program with `timeit`, `cProfile` and `line_profiler`, before optimising.
# - Compile Python with Numba: `@njit`, `prange`, parallel ufuncs, and `nogil` functions in threads;
#   avoid the threading-layer pitfall.
# - Release the GIL from a Cython extension (`nogil`, `prange`) and from C++ with pybind11
#   (`py::gil_scoped_release`), both compiled on this machine.
# - Make a long computation survive being killed: checkpoint finished work and resume.
# - Read the whole π ladder, from the Python loop to compiled code on every core, measured here with
#   the same random numbers on every rung, and see separately what the choice of generator costs.
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
import importlib
import inspect
import io
import json
import math
import multiprocessing
import os
import pstats
import re
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
CHUNKS = 48  # π is cut into this many chunks; chunk i always starts from pi.chunk_seed(BASE, i)
BASE = 2024
HELPERS = Path(pi.__file__).parent  # labs/course/: the π modules, the Cython and the C++ source
course.BUILD.mkdir(exist_ok=True)
ladder = []  # (implementation, cores, darts per second), all with SplitMix64 darts: plotted at the end
generators = {}  # (implementation, generator) -> darts per second: what the generator costs


def rung(name, cores, n, seconds):
    ladder.append((name, cores, n / seconds))


def rate_of(name, cores=None):
    """Darts per second of a rung measured earlier (the best one, if several core counts)."""
    return max(r for n, c, r in ladder if n == name and (cores is None or c == cores))


def darts(rate):
    return f"{rate:.3g}"


print(course.hardware())
print(bench.load())

# %% [markdown]
# ## 1. Where we start *(core)*
# The rungs from labs 01 and 02, measured again here so that the whole ladder comes from one run on
# one machine: the Python loop and NumPy, alone and on every core.
#
# **Like with like.** A fair ladder changes one thing per rung. Labs 01 and 02 drew their darts from
# Python's `random` (the Mersenne Twister) in the loop and from NumPy's PCG64 in NumPy: two different
# generators, which cost different amounts per number. Here every rung of the ladder draws *the same*
# darts, from one tiny generator, *SplitMix64*, a handful of integer operations that every language
# below can spell. Chunk *i* starts from `pi.chunk_seed(BASE, i)`, the one place the course seeds its
# darts, so every rung counts exactly the same hits for the same chunks. What the generator itself costs
# is measured on its own, beside the ladder (section 8).

# %%
print(inspect.getsource(pi.chunk_seed))
print(inspect.getsource(pi.splitmix_hits))

# %% [markdown]
# NumPy cannot run that loop one dart at a time at any speed; `pi.count_hits_splitmix_numpy` draws the
# same darts with whole-array operations on blocks of states (`mix64` works on arrays as it is).

# %%
#| label: baseline
N_LOOP = 300_000 * SCALE
N_NUMPY = 10_000_000 * SCALE

loop_hits = pi.count_hits_splitmix(N_LOOP, BASE)
assert loop_hits == pi.count_hits_splitmix_numpy(N_LOOP, BASE)  # the same darts, the same hits
rung("Python loop", 1, N_LOOP, bench.best(pi.count_hits_splitmix, N_LOOP, BASE, repeat=3, warmup=0))
numpy_hits = pi.count_hits_splitmix_numpy(N_NUMPY, BASE)
rung("NumPy", 1, N_NUMPY, bench.best(pi.count_hits_splitmix_numpy, N_NUMPY, BASE, repeat=3, warmup=0))
with ThreadPoolExecutor(CORES) as threads, ProcessPoolExecutor(CORES, mp_context=CTX) as procs:
    for name, pool, kind, n in [("Python loop, processes", procs, "splitmix", N_LOOP),
                                ("NumPy, threads", threads, "splitmix-numpy", N_NUMPY),
                                ("NumPy, processes", procs, "splitmix-numpy", N_NUMPY)]:
        work = pi.tasks(kind, n, CHUNKS, BASE)
        rung(name, CORES, n, bench.best(lambda: sum(pool.map(pi.hits_of_chunk, work)), repeat=3))
course.table([{"implementation (SplitMix64 darts)": name, "cores": cores, "darts/s": darts(r)}
              for name, cores, r in ladder])
print(course.hardware())
print(bench.load())

# %% [markdown]
# ## 2. Profiling: find the hot loop *(core)*
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
if out.returncode == 0:  # the report on the hot function: its total time, then the lines that ran
    report = next(block for block in out.stdout.split("Total time:") if "count_hits_python" in block)
    lines = report.splitlines()
    print("Total time:" + lines[0])
    shown = [line for line in lines if line.startswith(("Line #", "===")) or re.match(r"\s*\d+\s+\d+", line)]
    print("\n".join(line.split("  # ")[0].rstrip() for line in shown))  # source comments off, to fit a slide
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
fig, ax = plt.subplots(figsize=(11, 0.4 * len(shown) + 1.2))
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
# ## 3. Numba *(core)*
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
course.table([{f"count {N_COUNT:,} hits": name, "first call": f"{first_call[name]:.3f} s",
               "best": f"{count_time[name] * 1e3:.1f} ms", "× NumPy": f"{count_time['NumPy'] / count_time[name]:.1f}×"}
              for name in counters])
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
# The Python loop of section 1, `pi.splitmix_hits`, compiled as it is: `course/pi_numba.py` does not
# rewrite it, it hands the very same function to Numba. The only extra line tells Numba the argument
# types, so that the seed is an unsigned 64-bit integer and all the arithmetic wraps around as
# SplitMix64 expects (`register_jitable` lets compiled code call `pi.mix64`, too):

# %%
print(next(line for line in inspect.getsource(pi_numba).splitlines() if line.startswith("chunk_hits =")))

# %%
#| label: njit-loop
N_NUMBA = 200_000_000 * SCALE
N_PER_CHUNK = N_NUMBA // CHUNKS
N_SPLIT = N_PER_CHUNK * CHUNKS
SEEDS = pi.chunk_seeds(BASE, CHUNKS)  # chunk i's seed, pi.chunk_seed(BASE, i), for compiled code
start = time.perf_counter()
pi_numba.chunk_hits(1000, SEEDS[0])  # compile (or load from the cache) first
compile_loop = time.perf_counter() - start
serial_hits = pi_numba.hits_of_seeds(N_PER_CHUNK, SEEDS)
rung("Numba @njit", 1, N_SPLIT, bench.best(pi_numba.hits_of_seeds, N_PER_CHUNK, SEEDS, repeat=3))
assert pi_numba.chunk_hits(N_LOOP, pi.chunk_seed(BASE, 0)) == loop_hits  # the Python loop's count
print(f"compiling (or loading from the cache) took {compile_loop:.2f} s")
print(f"then {darts(rate_of('Numba @njit'))} darts/s on one core: {rate_of('Numba @njit') / rate_of('Python loop', 1):.0f}× "
      f"the same loop in Python, {rate_of('Numba @njit') / rate_of('NumPy', 1):.0f}× the same darts in NumPy")

# %% [markdown]
# Same darts, same arithmetic, same core: the compiled loop leaves the interpreter far behind, and
# NumPy too. NumPy runs SplitMix64 as a dozen whole-array operations, each one a pass over a block of
# memory that writes a temporary array; the compiled loop does the dozen operations on one dart while
# it sits in the processor's registers, and never writes the numbers anywhere.
#
# ### Exercise 1: `@njit` a loop (7 min)
# Write `inside(x, y)`, a plain `for` loop that counts the darts with `x[i]**2 + y[i]**2 <= 1` in the
# arrays `x`, `y` of section 3.1. Time it on the first 100 000 darts with `bench.best`. Then put
# `@njit` (from `numba`) on a copy, call it once to compile, and time it on *all* the darts. Compare its
# darts per second with the Python loop's and with `np.count_nonzero(x * x + y * y <= 1)`, and check
# that all three counts agree.

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# from numba import njit
#
# def inside(x, y):
#     count = 0
#     for i in range(len(x)):
#         if x[i] * x[i] + y[i] * y[i] <= 1.0:
#             count += 1
#     return count
#
# inside_fast = njit(inside)          # the same function, compiled
# inside_fast(x[:10], y[:10])         # compile once, outside the timing
# n = 100_000
# t_py = bench.best(inside, x[:n], y[:n], repeat=3)
# t_nb = bench.best(inside_fast, x, y, repeat=3)
# t_np = bench.best(lambda: np.count_nonzero(x * x + y * y <= 1), repeat=3)
# print(f"Python {n / t_py:.3g}, Numba {len(x) / t_nb:.3g}, NumPy {len(x) / t_np:.3g} darts/s")
# assert inside(x[:n], y[:n]) == inside_fast(x[:n], y[:n])
# assert inside_fast(x, y) == np.count_nonzero(x * x + y * y <= 1)
# ```
# The compiled loop is the Python loop, unchanged: Numba reads the types of `x` and `y` at the first
# call and writes machine code for them, so the first call is slow (compiling) and later ones are not.
# It usually beats NumPy too, because NumPy writes two temporary arrays (`x * x`, then the sum) and a
# mask before it counts, while the loop keeps one dart at a time in registers. Time the first call
# separately to see the compile cost, and remember it when a function is called only once.
# </details>
#
# ### 3.3 Every chunk from its own seed
# To spread darts over threads *and* get the same answer as a serial run, each chunk needs its own
# random stream that does not depend on which thread runs it: chunk *i* starts from
# `pi.chunk_seed(BASE, i)`. The compiled functions take the seeds as an array, and
# `chunk_hits` is marked `nogil=True`: it touches no Python objects, so it can run without the GIL.

# %%
print(inspect.getsource(pi_numba.hits_of_seeds.py_func))
print(inspect.getsource(pi_numba.hits_prange.py_func))

# %% [markdown]
# ### 3.4 `nogil` functions in Python threads
# Because `hits_of_seeds` releases the GIL, ordinary Python threads run it in parallel; each thread
# takes a share of the chunks.

# %%
def nogil_threads(hits_of_seeds, n_per_chunk=N_PER_CHUNK, workers=CORES):
    """All chunks, shared among `workers` Python threads, each calling hits_of_seeds on its share."""
    shares = np.array_split(SEEDS, workers)
    with ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(lambda share: hits_of_seeds(n_per_chunk, share), shares))


nogil_hits = nogil_threads(pi_numba.hits_of_seeds)
rung("Numba nogil, threads", CORES, N_SPLIT, bench.best(nogil_threads, pi_numba.hits_of_seeds, repeat=3))

# %% [markdown]
# ### 3.5 `prange`: Numba's own threads
# `@njit(parallel=True)` with `prange` shares the loop's iterations among Numba's threads (as many
# as cores, unless `numba.set_num_threads` says fewer). Numba turns `total +=` into a safe parallel
# reduction. Here is its scaling, measured:

# %%
#| label: prange-scaling
prange_hits, prange_rate = {}, {}
for threads in sorted({min(2**k, CORES) for k in range(CORES.bit_length() + 1)}):  # 1, 2, 4, ..., CORES
    numba.set_num_threads(threads)
    prange_hits[threads] = pi_numba.hits_prange(N_PER_CHUNK, SEEDS)
    prange_rate[threads] = N_SPLIT / bench.best(pi_numba.hits_prange, N_PER_CHUNK, SEEDS, repeat=3)
numba.set_num_threads(CORES)
rung("Numba prange", CORES, N_SPLIT, N_SPLIT / prange_rate[CORES])
print(f"Numba prange, {N_SPLIT:,} darts in {CHUNKS} chunks, threading layer: {numba.threading_layer()}")
course.table([{"threads": threads, "darts/s": darts(r), "× one thread": f"{r / prange_rate[1]:.2f}×"}
              for threads, r in prange_rate.items()])
print(f"the same {serial_hits:,} hits with every thread count: {set(prange_hits.values()) == {serial_hits}}")
print(course.hardware())
print(bench.load())

# %% [markdown]
# With one thread, `prange` runs the same compiled loop as `@njit`; each added core should add about
# one core's worth of darts, as long as the other programs on the machine (the load line) leave it free.
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
demo_code = f"import json; from course import pi_numba; print(json.dumps(pi_numba.layer_demo(threads={CORES})))"
layer_results = {}
if CORES < 2:
    print("This machine gives us one core: the pitfall needs two or more. Read on, and try it on a bigger one.")
else:
    for name, env in LAYERS.items():
        run = subprocess.run([sys.executable, "-c", demo_code], cwd=HELPERS.parent, capture_output=True, text=True,
                             env={**os.environ, "NUMBA_NUM_THREADS": str(CORES), **env}, timeout=300)
        if run.returncode == 0:
            layer_results[name] = json.loads(run.stdout.strip().splitlines()[-1])
        else:
            print(f"{name}: not available here ({run.stderr.strip().splitlines()[-1][:100]})")
    course.table([{"threading layer": name, "CPU burnt in a 50 ms sleep": f"{r['idle_cpu_ms']:.1f} ms",
                   "nogil threads": f"{r['nogil_median_ms']:.2f} ms", "parallel ufunc": f"{r['ufunc_ms']:.1f} ms"}
                  for name, r in layer_results.items()])
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
# ### Exercise 2: a parallel ufunc of your own (8 min)
# Write `@vectorize(["float64(float64, float64)"], target="parallel")` for the distance
# `sqrt(x² + y²)` and compare its speed with `np.hypot(x, y)` on the darts `x`, `y` above.

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# from numba import vectorize
#
#
# @vectorize(["float64(float64, float64)"], target="parallel")
# def distance(a, b):
#     return math.sqrt(a * a + b * b)
#
#
# distance(x[:10], y[:10])  # compile first
# t_ufunc = bench.best(distance, x, y, repeat=3)
# t_hypot = bench.best(np.hypot, x, y, repeat=3)
# print(f"parallel ufunc {t_ufunc * 1e3:.1f} ms, np.hypot {t_hypot * 1e3:.1f} ms; "
#       f"same result: {np.allclose(distance(x, y), np.hypot(x, y))}")
# ```
# The ufunc runs on all cores; `np.hypot` runs on one, and is also more careful (it avoids overflow
# for huge values), so it is slower per element. How much the ufunc wins depends on the threading
# layer (section 3.6): rerun with `NUMBA_THREADING_LAYER=workqueue` to compare. For small arrays
# (try `x[:1000]`) starting the threads dominates and NumPy wins: lab 02's overhead crossover again.
# </details>

# %% [markdown]
# ## 4. Cython: C extensions that release the GIL *(core)*
# Cython translates Python-like code with C types (`.pyx`) into C, which a C compiler turns into an
# extension module. `course/pi_cython.pyx` holds the same SplitMix64 darts as `course/pi.py`. Its work
# happens in a `cdef ... nogil` function, which touches no Python objects; the functions Python calls
# release the GIL around it (`with nogil:`), so Python threads run it in parallel, or use
# `prange(..., nogil=True)`, which becomes an OpenMP loop:

# %%
print((HELPERS / "pi_cython.pyx").read_text().split("cdef inline", 1)[1].split("\n\n\n", 1)[1])

# %% [markdown]
# Unlike Numba, Cython needs a C compiler on the machine (gcc or clang on Linux and macOS,
# *Build Tools for Visual Studio* on Windows). We compile in a separate process with `setuptools`
# (and `cythonize`), into `_build/`: a compiler that crashes or hangs cannot take the notebook with
# it. The same small function builds the C++ extension of section 5. It tries each set of compiler
# flags in turn (first with OpenMP; without, if the compiler lacks it, as Apple's clang does: then
# `prange` runs on one thread), and rebuilds only when the source or the flags change.

# %%
from course.build import NO_COMPILER, WINDOWS, build_extension, openmp_attempts  # the build machinery: labs/course/build.py

print(inspect.getdoc(build_extension))

# %%
#| label: cython-build
pi_cython, cython_message = build_extension("pi_cython", HELPERS / "pi_cython.pyx", openmp_attempts())
if pi_cython is not None:
    print(cython_message)
else:
    print(f"Cannot compile the Cython extension: {cython_message}")
    print(NO_COMPILER.format(lang="C", gnu="gcc"))

# %%
#| label: cython-rates
N_CYTHON = N_SPLIT // 4
N_PER_CY = N_CYTHON // CHUNKS
if pi_cython is not None:
    cython_hits = {
        "serial": pi_cython.hits_of_seeds(N_PER_CY, SEEDS),
        "nogil threads": nogil_threads(pi_cython.hits_of_seeds, N_PER_CY),
        "prange": pi_cython.hits_prange(N_PER_CY, SEEDS, CORES),
    }
    t_serial = bench.best(pi_cython.hits_of_seeds, N_PER_CY, SEEDS, repeat=3)
    t_threads = bench.best(nogil_threads, pi_cython.hits_of_seeds, N_PER_CY, repeat=3)
    t_prange = bench.best(pi_cython.hits_prange, N_PER_CY, SEEDS, CORES, repeat=3)
    rung("Cython", 1, N_PER_CY * CHUNKS, t_serial)
    rung("Cython nogil, threads", CORES, N_PER_CY * CHUNKS, t_threads)
    rung("Cython prange", CORES, N_PER_CY * CHUNKS, t_prange)
    course.table([{f"Cython, {N_PER_CY * CHUNKS:,} darts": how, "cores": cores, "darts/s": darts(N_PER_CY * CHUNKS / t),
                   "hits": f"{cython_hits[key]:,}"}
                  for how, key, cores, t in [("serial", "serial", 1, t_serial),
                                             ("nogil, Python threads", "nogil threads", CORES, t_threads),
                                             ("prange (OpenMP)", "prange", CORES, t_prange)]])
    print(f"the same hits as Numba: {set(cython_hits.values()) == {pi_numba.hits_of_seeds(N_PER_CY, SEEDS)}}")
else:
    cython_hits = {}
    print("Cython skipped: no compiled extension (see above).")
print(course.hardware())
print(bench.load())

# %% [markdown]
# ## 5. C++ with pybind11: the third way to release the GIL *(optional)*
# Much scientific code already exists in C++. **pybind11** (a header-only C++ library, installed from
# PyPI) turns C++ functions into a Python module with a few lines of declarations, converting
# arguments (here a NumPy array of seeds) and results. The GIL is yours to give back:
# a `py::gil_scoped_release` object releases it for as long as it lives, and takes it back when it goes
# out of scope. Inside that scope the code must not touch a Python object, so the seeds are copied out
# of the NumPy array first. Here are the kernel and the function Python threads call, from
# `course/pi_cpp.cpp`:

# %%
cpp_source = (HELPERS / "pi_cpp.cpp").read_text()
print(cpp_source[cpp_source.index("static std::int64_t darts"):cpp_source.index("#ifndef MODULE_NAME")].strip())

# %% [markdown]
# We build it twice with the function of section 4. Once for *any* processor of this family (`-O3`,
# what a package you install from PyPI is built for), and once for *this very* processor
# (`-march=native`, which lets the compiler use every instruction this CPU has, wider SIMD among them).
# The second binary may crash with "illegal instruction" on an older machine, for example a cluster's
# compute node that differs from its login node. Numba always compiles for the processor it runs on.

# %%
#| label: cpp-build
CPP17 = ["/std:c++17", "/O2"] if WINDOWS else ["-std=c++17", "-O3"]
pi_cpp, cpp_message = build_extension("pi_cpp", HELPERS / "pi_cpp.cpp", [("for any x86-64/ARM64 CPU", CPP17)])
pi_cpp_native, native_message = None, "not tried: no portable build"
if pi_cpp is None:
    print(f"Cannot compile the C++ extension: {cpp_message}")
    print("Install pybind11 (`pip install pybind11`, or use the course's pixi environment) and rerun."
          if "pybind11" in cpp_message else NO_COMPILER.format(lang="C++", gnu="g++"))
elif WINDOWS:
    print(cpp_message)
    native_message = "skipped: MSVC has no -march=native"
else:
    print(cpp_message)
    pi_cpp_native, native_message = build_extension(
        "pi_cpp_native", HELPERS / "pi_cpp.cpp", [("for this CPU", CPP17 + ["-march=native", "-DMODULE_NAME=pi_cpp_native"])])
    print(native_message if pi_cpp_native else f"No build for this CPU ({native_message}); the portable one still runs.")

# %%
#| label: cpp-rates
cpp_hits = {}
if pi_cpp is not None:
    cpp_hits = {"serial": pi_cpp.hits_of_seeds(N_PER_CY, SEEDS), "threads": nogil_threads(pi_cpp.hits_of_seeds, N_PER_CY),
                "one chunk": pi_cpp.chunk_hits(N_LOOP, pi.chunk_seed(BASE, 0))}
    rung("C++ pybind11", 1, N_PER_CY * CHUNKS, bench.best(pi_cpp.hits_of_seeds, N_PER_CY, SEEDS, repeat=3))
    rung("C++ pybind11, threads", CORES, N_PER_CY * CHUNKS,
         bench.best(nogil_threads, pi_cpp.hits_of_seeds, N_PER_CY, repeat=3))
    if pi_cpp_native is not None:
        cpp_hits["native"] = pi_cpp_native.hits_of_seeds(N_PER_CY, SEEDS)
        rung("C++ -march=native", 1, N_PER_CY * CHUNKS, bench.best(pi_cpp_native.hits_of_seeds, N_PER_CY, SEEDS, repeat=3))
        rung("C++ -march=native, threads", CORES, N_PER_CY * CHUNKS,
             bench.best(nogil_threads, pi_cpp_native.hits_of_seeds, N_PER_CY, repeat=3))
    numba_reference = pi_numba.hits_of_seeds(N_PER_CY, SEEDS)
    print(f"C++, {N_PER_CY * CHUNKS:,} darts: {cpp_hits['serial']:,} hits, in threads {cpp_hits['threads']:,}; "
          f"the same as Numba: {cpp_hits['serial'] == cpp_hits['threads'] == numba_reference}")
    print(f"one chunk of {N_LOOP:,} darts: the Python loop's count too: {cpp_hits['one chunk'] == loop_hits}")
else:
    print("C++ skipped: no compiled extension (see above).")

# %% [markdown]
# ## 6. Three compilers, one loop *(optional)*
# The same SplitMix64 loop in Numba, Cython and C++, on one core and on all of them, with the same hits.
# Where they differ, look first at the compilers' choices (which instructions, for which processor)
# rather than at the language: the two C++ builds come from one source.

# %%
#| label: compiled-compare
numba_1 = rate_of("Numba @njit")
compared = [("Numba", "Numba @njit", "Numba nogil, threads"), ("Cython", "Cython", "Cython nogil, threads"),
            ("C++, any CPU", "C++ pybind11", "C++ pybind11, threads"),
            ("C++, this CPU", "C++ -march=native", "C++ -march=native, threads")]
measured = {n for n, _, _ in ladder}
course.table([{"compiled loop": label, "1 core": darts(rate_of(one)), "÷ Numba": f"{rate_of(one) / numba_1:.2f}×",
               f"{CORES} threads": darts(rate_of(many))}
              for label, one, many in compared if one in measured])
print("darts per second; the threads are Python threads calling the nogil function")
missing = [label for label, one, _ in compared if one not in measured]
if missing:
    print("not measured here: " + ", ".join(missing) + " (see the build messages above)")
print(course.hardware())
print(bench.load())

# %% [markdown]
# **Numba, Cython or C++?** Numba: no compiler to install, NumPy-style code, compiles on first call
# for the processor it runs on, and for NVIDIA GPUs too (episode 11, `labs/11_gpus.py`). Cython:
# Python-like syntax, ahead-of-time compiled packages to ship, calling C libraries. C++ with pybind11:
# bind code that already exists in C++, with all of C++ at hand.
# All three release the GIL the same way: no Python objects inside the hot loop.

# %% [markdown]
# ## 7. Checkpointing: survive being killed *(core)*
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
# ### Exercise 3: checkpoint in parallel (8 min)
# Compute the chunks with a process pool instead: each worker writes its own chunk files, so they
# never collide. Use `functools.partial(pi.checkpoint_chunk, folder, CK_N, BASE)` with
# `pool.map` over the chunk numbers, into a fresh folder. Kill it halfway (interrupt the kernel),
# then run it again. Do you get the same total?

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# PARALLEL_CHECKPOINTS = course.BUILD / "03_checkpoints_parallel"
# shutil.rmtree(PARALLEL_CHECKPOINTS, ignore_errors=True)
# PARALLEL_CHECKPOINTS.mkdir(parents=True)
# with ProcessPoolExecutor(CORES, mp_context=CTX) as pool:
#     one_chunk = functools.partial(pi.checkpoint_chunk, PARALLEL_CHECKPOINTS, CK_N, BASE)
#     parallel_hits = sum(pool.map(one_chunk, range(CK_CHUNKS)))
# print(f"parallel, checkpointed: {parallel_hits:,} hits; same as serial: {parallel_hits == uninterrupted_hits}")
# ```
# The same total: chunk *i* always starts from `pi.chunk_seed(BASE, i)` and is stored under its own
# name, so it does not matter which worker computed it, when, or whether it was computed before the
# kill. Only
# the chunks that were running at the moment of the kill are lost (and redone). The same recipe works
# for a Slurm job array, GNU parallel (lab 06) or Dask: name the output after the task, write it
# atomically, skip what exists.
# </details>

# %% [markdown]
# ## 8. The π ladder *(core)*
# Every implementation of this lab, measured in this run, from the Python loop to compiled code on all
# cores, all drawing the same SplitMix64 darts: darts per second, and the speed-up over the Python loop.

# %%
#| label: pi-ladder
loop_rate = rate_of("Python loop", 1)
families = {"Python loop": "Python loop", "NumPy": "NumPy", "Numba": "Numba", "Cython": "Cython",
            "C++ (any CPU)": "C++ pybind11", "C++ (this CPU)": "C++ -march=native"}
summary = []
for family, prefix in families.items():
    rows = [(name, cores, r) for name, cores, r in ladder if name.startswith(prefix)]
    if not rows:
        continue
    one = max((r for _, cores, r in rows if cores == 1), default=None)
    best_name, best_cores, best = max(rows, key=lambda row: row[2])
    how = best_name[len(prefix):].strip(" ,") or "serial"
    summary.append({"SplitMix64 darts": family, "1 core": darts(one) if one else "–",
                    "fastest": f"{darts(best)} ({how}, {best_cores} core{'s' if best_cores > 1 else ''})",
                    "× loop": f"{best / loop_rate:,.0f}×"})
course.table(summary)
print(f"darts per second · {course.hardware()}\n{bench.load()}")

# %%
#| label: fig-pi-ladder
#| fig-cap: "The π ladder: darts per second for every implementation and core count, all with the same SplitMix64 darts, measured on this machine (log scale)."
#| fig-alt: "Horizontal bar chart, log scale, of darts per second for each implementation, from the pure-Python loop at the bottom through NumPy to the compiled Numba, Cython and C++ versions on one core and on all cores at the top; each bar is labelled with its speed-up over the Python loop."
colours = {"Python": "#56B4E9", "NumPy": "#0072B2", "Numba": "#E69F00", "Cython": "#CC79A7", "C++": "#009E73"}
rows = sorted(ladder, key=lambda r: r[2])
fig, ax = plt.subplots(figsize=(12, 0.24 * len(rows) + 1.3))
labels = [f"{name} ({cores} core{'s' if cores > 1 else ''})" for name, cores, _ in rows]
bars = ax.barh(labels, [r for *_, r in rows], color=[next(c for f, c in colours.items() if name.startswith(f))
                                                     for name, _, _ in rows])
ax.bar_label(bars, [f"{r / loop_rate:,.0f}×" for *_, r in rows], padding=4, fontsize=12)
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
# ### What the generator costs
# The ladder holds the generator fixed. Labs 01 and 02 used each tool's own generator instead: the
# Mersenne Twister of Python's `random` in the loop, NumPy's PCG64 (`default_rng`), and in Numba, the
# Mersenne Twister of `np.random.random()` called once per number. The same darts count, same seeding
# (`pi.chunk_seed`), other random numbers:

# %%
@njit
def pi_loop_numba(n, seed):
    np.random.seed(seed)  # Numba's own Mersenne Twister, one number per call
    hits = 0
    for _ in range(n):
        x = np.random.random()
        y = np.random.random()
        if x * x + y * y <= 1.0:
            hits += 1
    return hits


# %%
#| label: generator-cost
N_GEN = {"Python loop": N_LOOP, "NumPy": N_NUMPY, "Numba": N_PER_CHUNK * 8}  # darts per timing
seed0 = pi.chunk_seed(BASE, 0)
pi_loop_numba(1000, seed0 % 2**32)  # compile first
own = {"Python loop": ("MT19937", pi.count_hits_python),  # Python's random
       "NumPy": ("PCG64", pi.count_hits_numpy),  # np.random.default_rng
       "Numba": ("MT19937", lambda n, base: pi_loop_numba(n, seed0 % 2**32))}  # np.random, compiled
same = {"Python loop": rate_of("Python loop", 1), "NumPy": rate_of("NumPy", 1), "Numba": rate_of("Numba @njit")}
generator_hits = {}
for tool, (generator, count) in own.items():
    generator_hits[tool, generator] = count(N_GEN[tool], BASE)
    generators[tool, generator] = N_GEN[tool] / bench.best(count, N_GEN[tool], BASE, repeat=3, warmup=0)
    generators[tool, "SplitMix64"] = same[tool]  # measured above, on the ladder
course.table([{"tool": tool, "own generator": generator, "darts/s": darts(generators[tool, generator]),
               "SplitMix64": darts(generators[tool, "SplitMix64"]),
               "ratio": f"{generators[tool, generator] / generators[tool, 'SplitMix64']:.2f}×"}
              for tool, (generator, _) in own.items()])
print("darts per second on one core; ratio: own generator ÷ SplitMix64")
print(course.hardware())
print(bench.load())

# %% [markdown]
# A generator can cost as much as the rest of the loop, or many times more: in a compiled loop that
# the compiler vectorises, a call per random number is often the slowest part (read the ratios). So a
# comparison that changes the generator and the tool at once measures both together, and cannot say
# which one made the difference. The statistical quality of all of these is ample for π; for serious
# Monte-Carlo work use a generator with a published record, such as NumPy's, and give each chunk its
# own independent stream (`np.random.SeedSequence(...).spawn(n)` does that properly).
#
# ### Exercise 4: where is your hot loop? (7 min)
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
# - Cython releases the GIL with `nogil` functions and `prange`; C++ with pybind11 releases it with
#   `py::gil_scoped_release`. Both need a compiler; Numba does not.
# - Compare like with like: change one thing per rung. The random generator alone can change a loop's
#   speed severalfold; building for this very CPU (`-march=native`) can too, at the price of portability.
# - Checkpoint long runs: one file per finished task, written atomically, skipped on restart; seed
#   each task by its number, and the resumed answer is exactly the uninterrupted one.
# - Compiled and parallel multiply: read the factors off the ladder of your own machine.

# %% [markdown]
# ## Checks
# Run by `pytest labs/03_compiled_speed.py`; the slides never show this cell.

# %% tags=["checks"]
def test_compiled_counts_match_the_python_loop():
    reference = pi.count_hits_splitmix(2_000, BASE, 7)
    assert pi.count_hits_splitmix_numpy(2_000, BASE, 7) == reference
    assert pi_numba.chunk_hits(2_000, pi.chunk_seed(BASE, 7)) == reference
    for module in (pi_cython, pi_cpp, pi_cpp_native):
        if module is not None:
            assert module.chunk_hits(2_000, pi.chunk_seed(BASE, 7)) == reference


def test_serial_and_parallel_numba_agree():
    assert nogil_hits == serial_hits
    assert set(prange_hits.values()) == {serial_hits}


def test_counting_step_identical():
    assert len(set(counts.values())) == 1


def test_cython_and_cpp_agree_with_numba():
    reference = pi_numba.hits_of_seeds(N_PER_CY, SEEDS)
    if pi_cython is not None:  # else no compiler here: the lab printed how to get one
        assert set(cython_hits.values()) == {reference}
    if pi_cpp is not None:
        assert {cpp_hits[k] for k in cpp_hits if k != "one chunk"} == {reference}
        assert cpp_hits["one chunk"] == loop_hits


def test_pi_within_tolerance():
    for hits, n in [(loop_hits, N_LOOP), (numpy_hits, N_NUMPY), (serial_hits, N_SPLIT),
                    (resumed_hits, CK_N * CK_CHUNKS), *[(h, N_GEN[tool]) for (tool, _), h in generator_hits.items()]]:
        assert abs(pi.estimate(hits, n) - math.pi) < 5 * pi.stderr(n), (hits, n)


def test_checkpointed_run_resumes_to_the_same_answer():
    assert 0 < done_when_killed < CK_CHUNKS  # it really was interrupted
    assert resumed_hits == uninterrupted_hits
    folder = course.BUILD / "03_checkpoints_parallel"  # exercise 3's solution, run as a check
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with ProcessPoolExecutor(CORES, mp_context=CTX) as pool:
        one_chunk = functools.partial(pi.checkpoint_chunk, folder, CK_N, BASE)
        assert sum(pool.map(one_chunk, range(CK_CHUNKS))) == uninterrupted_hits
    for f in CHECKPOINTS.glob("chunk_*.json"):
        json.loads(f.read_text())  # every chunk file is complete


def test_ladder_is_complete():
    names = {name for name, _, _ in ladder}
    assert {"Python loop", "NumPy", "Numba @njit", "Numba prange", "Numba nogil, threads"} <= names
    assert all(r > 0 for *_, r in ladder)
    assert len(generators) == 6


def test_missing_compiler_is_explained():
    """Where a build failed, the rung says why (the lab must still pass)."""
    for module, message in [(pi_cython, cython_message), (pi_cpp, cpp_message)]:
        assert module is not None or message, "a failed build must leave a message"


course.run_checks(globals())
