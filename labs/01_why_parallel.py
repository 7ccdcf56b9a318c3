# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Why parallel?
#
# **Teaching:** 40 min · **Exercises:** 25 min
#
# ## Objectives
# - See a computation get faster on more cores, and the *task graph* that explains why.
# - Split a job into tasks, draw their dependencies, and find the *critical path* that limits any
#   number of workers (Amdahl's law).
# - Compute π by Monte-Carlo with a Python loop and with NumPy, and explain why NumPy is faster.
# - Benchmark properly: warm-up, repeats, and knowing what is inside the timing.
# - Check that code really runs in parallel by watching every core.
# - Hold three mental models: one multi-core computer, a network of computers, interpreted and
#   compiled code.
#
# ## Why bother, and why still Python?
# If a script is too slow, why not rewrite it in C++, Fortran or Rust? Because *your* time costs more
# than the computer's: Python is quick to write, quick to read, and has a library for almost everything
# (NumPy, Xarray, Dask, …), most of them compiled code behind a Python face. The plan in this course is
# to keep Python for the *what* and let compiled code and many cores do the *how much*.
#
# Everything on this page is measured when it runs, on the machine you run it on; each number is
# printed with the line that names that machine. Sizes grow with `COURSE_SIZE=workshop` or `large`.

# %%
import math
import multiprocessing
import os
import threading
import time
import timeit
import tracemalloc
from concurrent.futures import ProcessPoolExecutor

import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
import psutil

import course
from course import bench, pi, soup

SCALE = {"small": 1, "workshop": 10}.get(course.size(), 100)
CORES = course.usable_cores()
# The start method of process pools: the platform default, or $COURSE_START_METHOD (see lab 02).
CTX = multiprocessing.get_context(os.environ.get("COURSE_START_METHOD") or None)
course.BUILD.mkdir(exist_ok=True)
print(course.hardware())
print(bench.load())

# %% [markdown]
# ## 1. A success story first *(core)*
# Add up the first *N* whole numbers. NumPy builds the whole array, then sums it on one core.
# `dask.array` cuts the same array into *chunks*, sums each chunk on whichever core is free, then adds
# the partial sums. Same answer, same one line of code:

# %%
N_SUM = {"small": 50_000_000, "workshop": 200_000_000}.get(course.size(), 1_000_000_000)
CHUNK_SUM = N_SUM // 16


def sum_numpy():
    return int(np.arange(N_SUM).sum())


def sum_dask():
    return int(da.arange(N_SUM, chunks=CHUNK_SUM).sum().compute())


total_numpy, total_dask = sum_numpy(), sum_dask()

# %%
#| label: success-story
t_numpy = bench.best(sum_numpy, repeat=3)
t_dask = bench.best(sum_dask, repeat=3)
course.table([{f"sum of {N_SUM:,} integers": "NumPy", "cores": 1, "best of 3": f"{t_numpy:.3f} s", "speed-up": "1.0×"},
              {f"sum of {N_SUM:,} integers": "dask.array", "cores": CORES, "best of 3": f"{t_dask:.3f} s",
               "speed-up": f"{t_numpy / t_dask:.1f}×"}])
print(f"both give {total_dask:,}")
print(course.hardware())
print(bench.load())

# %% [markdown]
# Why is it faster? Look at the *task graph* Dask built (drawn here for 4 chunks instead of 16):
# each `arange` chunk and its partial `sum` are independent of the other chunks, so different cores
# can do them at the same time; only the last step, adding the partial sums, needs them all.
# A bonus: Dask never holds the whole array in memory, only a few chunks, so it also avoids asking
# the operating system for hundreds of megabytes and filling them.

# %%
#| label: fig-sum-graph
#| fig-cap: "The task graph of `da.arange(N, chunks=N // 4).sum()`: four independent chunks, each summed on its own, then one aggregation."
#| fig-alt: "Graph read from left to right: four arange chunks, each feeding its own partial sum, all four partial sums feeding one final aggregate sum."
try:
    sum_graph = da.arange(N_SUM, chunks=N_SUM // 4).sum().visualize(
        filename=str(course.BUILD / "01_sum_graph.png"), rankdir="LR")
except Exception as err:  # Graphviz's `dot` program missing
    sum_graph = None
    print(f"Cannot draw the graph ({type(err).__name__}): install Graphviz (see lab 00), then rerun.")
sum_graph

# %% [markdown]
# ## 2. Pea soup: what are the workers, and what stops them? *(core)*
# A recipe for Dutch pea soup (*erwtensoep*) is a parallel program. Each step is a task with a
# duration; some steps need others first (you cannot add the vegetables before they are chopped).
# The cooks are the workers.
#
# **Before you run the next cells:** with pen and paper, draw the steps as boxes and the "needs"
# as arrows. How many cooks would you hire? How long would dinner take with two? With ten?

# %%
#| label: soup-recipe
number = {step: k for k, step in enumerate(soup.RECIPE, 1)}
lines = [f"{number[step]:>2} {step:<16}{minutes:>3} min  {' '.join(str(number[n]) for n in needs) or '—'}"
         for step, (minutes, needs) in soup.RECIPE.items()]
half = (len(lines) + 1) // 2
header = f"{'   step':<19}{'time':>7}  needs"
print(f"{header:<45}{header}")
for left, right in zip(lines[:half], lines[half:] + [""]):
    print(f"{left:<45}{right}")
print(f"total work: {soup.work()} minutes for one cook")

# %% [markdown]
# `soup.critical_path` finds the longest chain of steps that must follow one another. Each step on it
# waits for the one before, so no number of cooks can serve dinner sooner than this chain takes.

# %%
#| label: soup-critical-path
span, chain = soup.critical_path()
work = soup.work()
print(f"critical path: {' → '.join(chain)}")
print(f"  {span} min of the {work} min of work; no kitchen can beat {span} min,")
print(f"  so the best possible speed-up is work / span = {work} / {span} = {work / span:.2f}×")

# %%
#| label: fig-soup-graph
#| fig-cap: "The pea-soup recipe as a task graph; the critical path is orange."
#| fig-alt: "Flow chart from left to right of the 24 recipe steps with their minutes. Orange boxes and thick arrows mark boil water, cook peas, add vegetables, simmer soup and serve; the peeling, chopping, frying and slicing steps run alongside in blue."
import graphviz
from IPython.display import Image


def recipe_graph(recipe, chain):
    # size (inches, at 110 dpi) keeps the drawing inside a 1280×800 slide; the spacing keeps it legible
    g = graphviz.Digraph(graph_attr={"rankdir": "LR", "dpi": "110", "size": "11.5,5.3", "nodesep": "0.12",
                                     "ranksep": "0.4"},
                         node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica",
                                    "fontsize": "16", "margin": "0.08,0.02"})
    for step, (minutes, needs) in recipe.items():
        g.node(step, f"{step}\n{minutes} min", fillcolor="#E69F00" if step in chain else "#D4E6F1")
        for need in needs:
            on_path = need in chain and step in chain
            g.edge(need, step, penwidth="3" if on_path else "1", color="#D55E00" if on_path else "#555555")
    return g


try:
    soup_graph = Image(recipe_graph(soup.RECIPE, chain).pipe(format="png"))
except graphviz.ExecutableNotFound:
    soup_graph = None
    print("Cannot draw the graph: Graphviz's `dot` is not installed (see lab 00).")
soup_graph

# %% [markdown]
# Now cook it for real. `soup.cook(k)` runs the recipe with *k* cooks: each cook is a thread; a step
# takes its minutes (one recipe minute is 10 ms of sleep); a free cook takes the ready step with the
# most work after it. We record who did what, and when.

# %%
#| label: soup-timings
COOKS = [1, 2, 3, 4, 6]
kitchens = {k: soup.cook(k) for k in COOKS}
makespan = {k: max(r["end"] for r in log) for k, log in kitchens.items()}
soup_speedup = {k: makespan[1] / makespan[k] for k in COOKS}
course.table([{"cooks": k, "dinner after": f"{makespan[k] / soup.MINUTE:.0f} min", "speed-up": f"{soup_speedup[k]:.2f}×"}
              for k in COOKS], align="rrr")
print(f"limit set by the critical path: {work / span:.2f}×")
print(course.hardware())

# %%
#| label: fig-soup-gantt
#| fig-cap: "Who cooks what, when: one cook against three. Orange steps are on the critical path."
#| fig-alt: "Two timelines. With one cook all 24 steps lie end to end. With three cooks the peeling and chopping run beside the cooking of the peas, and dinner is served much sooner, limited by the orange chain of boil water, cook peas, add vegetables, simmer soup and serve."
fig, axes = plt.subplots(2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [1, 3]})
for ax, k in zip(axes, [1, 3]):
    for r in kitchens[k]:
        start, length = r["start"] / soup.MINUTE, (r["end"] - r["start"]) / soup.MINUTE
        ax.barh(r["cook"], length, left=start, color="#E69F00" if r["step"] in chain else "#56B4E9",
                edgecolor="white")
        if length >= 10:
            ax.text(start + length / 2, r["cook"], r["step"].split()[-1], ha="center", va="center", fontsize=9)
    ax.set_yticks(range(k), [f"cook {c + 1}" for c in range(k)])
    ax.invert_yaxis()
    ax.set_title(f"{k} cook{'s' if k > 1 else ''}: dinner after {makespan[k] / soup.MINUTE:.0f} min")
axes[-1].set_xlabel("recipe minutes")
bench.stamp(fig)

# %% [markdown]
# ### Amdahl's law
# If a fraction *p* of the work can be shared among *N* workers and the rest cannot, the speed-up is
#
# $$S(N) = \frac{1}{(1 - p) + p / N} \le \frac{1}{1 - p}.$$
#
# A recipe is a graph rather than a "serial part plus parallel part", but the same reasoning bounds
# it. No kitchen beats the critical path, nor *N* cooks working all the time: $S \le \min(N, W/S_\infty)$
# with work *W* and span $S_\infty$. And a cook who never idles while a step is ready does at least as
# well as Amdahl's law with $p = 1 - S_\infty / W$ (Brent's theorem). The measured kitchens must land
# between the two.

# %%
#| label: fig-amdahl
#| fig-cap: "Amdahl's law with the pea-soup speed-ups measured on this machine."
#| fig-alt: "Speed-up against number of cooks, 1 to 16, log-scaled. A diagonal line marks perfect scaling; grey curves show Amdahl's law for p of 0.9 and 0.99; a shaded band between Amdahl's law for the recipe and the critical-path ceiling contains the measured points, which flatten out below the ceiling after two or three cooks."
N = np.arange(1, 17)
amdahl = lambda p, n: 1 / ((1 - p) + p / n)
p_recipe = 1 - span / work
fig, ax = plt.subplots(figsize=(11, 4.4))  # wide and low: the slide also shows the formula
ax.plot(N, N, ":", color="#000000", label="perfect: N×")
for p, style in [(0.99, "--"), (0.9, "-.")]:
    ax.plot(N, amdahl(p, N), style, color="#777777", label=f"Amdahl, p = {p}")
ax.fill_between(N, amdahl(p_recipe, N), np.minimum(N, work / span), color="#E69F00", alpha=0.3,
                label="possible for the recipe")
ax.axhline(work / span, color="#D55E00", lw=2, label=f"critical path: {work / span:.2f}×")
ax.plot(COOKS, [soup_speedup[k] for k in COOKS], "o", ms=10, color="#0072B2", label="measured kitchens")
ax.set(xscale="log", yscale="log", xlabel="cooks (workers)", ylabel="speed-up", ylim=(0.9, 20))
ax.set_xticks([1, 2, 4, 8, 16], ["1", "2", "4", "8", "16"])
ax.set_yticks([1, 2, 4, 8, 16], ["1", "2", "4", "8", "16"])
ax.legend(loc="upper left", fontsize=11, ncols=2)
bench.stamp(fig)

# %% [markdown]
# ### Exercise 1: a better kitchen (5 min)
# 1. Which cooks are idle, and when? Why does a fourth cook not help at all?
# 2. The peas take longest. Change the recipe so that dinner is sooner: e.g. soak the peas overnight
#    (cook them for 25 minutes instead of 45) with
#    `faster = dict(soup.RECIPE, **{"cook peas": (25, ("rinse peas", "boil water"))})`, then compute
#    `soup.critical_path(faster)` and run `soup.cook(2, faster)`. What is the new limit?
# 3. What in *your* research is the "cook peas" step?

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# faster = dict(soup.RECIPE, **{"cook peas": (25, ("rinse peas", "boil water"))})
# fast_span, fast_chain = soup.critical_path(faster)
# fast_log = soup.cook(2, faster)
# print(f"critical path now {fast_span} min: {' → '.join(fast_chain)}")
# print(f"limit {soup.work(faster) / fast_span:.2f}×; two cooks served after "
#       f"{max(r['end'] for r in fast_log) / soup.MINUTE:.0f} min")
# ```
# 1. With three cooks, cooks 2 and 3 are idle near the end: once the side dishes are ready, every
#    remaining step is on the critical path, which only one cook can work on at a time. Three cooks
#    already reach the critical path, so a fourth has nothing to do: more workers cannot shorten a
#    chain of steps that wait for each other.
# 2. Shortening the critical path is the only way to raise the limit: the code above prints the new
#    path and limit. Speeding up a step that is *not* on the critical path (chopping faster) changes
#    nothing at all. That is why we profile before optimising (lab 03).
# 3. In a flood model, the time steps of one simulation wait for each other (the critical path);
#    the scenarios, polders or ensemble members do not (the chopping).
# </details>

# %% [markdown]
# ## 3. π by Monte-Carlo: our running example *(core)*
# Throw darts uniformly at the unit square. The quarter circle $x^2 + y^2 \le 1$ covers $\pi/4$ of
# it, so $\pi \approx 4 \times \text{hits} / \text{darts}$. Every dart is independent of every other:
# the problem is *embarrassingly parallel*. The estimate's standard error shrinks as
# $1/\sqrt{n}$, so a good estimate needs many darts, and that takes time.
#
# ### 3.1 A naive loop

# %%
import random

N_LOOP = 1_000_000 * SCALE


def pi_loop(n, seed=42):
    rng = random.Random(seed)
    hits = 0
    for _ in range(n):
        x, y = rng.random(), rng.random()
        if x * x + y * y <= 1.0:
            hits += 1
    return 4 * hits / n


start = time.perf_counter()
pi_from_loop = pi_loop(N_LOOP)
print(f"loop:  π ≈ {pi_from_loop:.5f} from {N_LOOP:,} darts in {time.perf_counter() - start:.2f} s")

# %% [markdown]
# ### 3.2 NumPy: vectorised
# The same algorithm on whole arrays: one call draws all *x*, one all *y*, one compares them all.

# %%
N_NUMPY = min(10_000_000 * SCALE, 50_000_000)


def pi_numpy(n, seed=42):
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    y = rng.random(n)
    return 4 * np.count_nonzero(x * x + y * y <= 1.0) / n


start = time.perf_counter()
pi_from_numpy = pi_numpy(N_NUMPY)
first_numpy = time.perf_counter() - start
print(f"NumPy: π ≈ {pi_from_numpy:.5f} from {N_NUMPY:,} darts in {first_numpy:.2f} s")

# %% [markdown]
# **Why is NumPy faster?** *(discuss before reading on)*
#
# Python is *interpreted*: for each dart the interpreter fetches and decodes a couple of dozen bytecode
# instructions (`dis.dis(pi_loop)` lists them), looks up `rng.random`, creates float objects, checks
# their types before each `*` and `+`, and counts references. The arithmetic itself is a tiny fraction
# of that. NumPy's `x * x` is one call into a loop written in C and *compiled* to machine code ahead of
# time: the types are checked once per array, not once per element, and NumPy's loops use *SIMD*
# instructions (several numbers per instruction) where the processor has them. These elementwise
# operations (`*`, `+`, `<=`, `sum`) still run on one core: fast, not parallel. Linear algebra is the
# exception: `A @ B`, `np.linalg.solve` and friends call a BLAS/LAPACK library (OpenBLAS, MKL or
# Accelerate) that starts its own threads on every core. That is free speed, and a trap once you
# add processes or Dask workers on top: lab 04 measures the oversubscription. (The two functions also draw from different random
# generators, which cost different amounts; lab 03 holds the generator fixed to compare like with like.)

# %% [markdown]
# ### 3.3 Benchmarking done right
# A single stopwatch reading is not a benchmark. Three rules:
#
# 1. **Repeat**, and take the best (least disturbed) or the median; report the spread. The
#    machine runs other programs (here, other people's work) that steal time at random.
# 2. **Warm up**: the first call may pay one-off costs (imports, compilation in lab 03, the
#    operating system handing out fresh memory, cold caches). Decide whether you want them in.
# 3. **Know what is inside the timing**: only the work you mean to compare, at a size that matters.
#
# `timeit` does the repeating (and switches the garbage collector off meanwhile); in a notebook
# `%timeit pi_numpy(N_NUMPY)` does the same in one line. `bench.timings` (used from now on) is just:

# %%
import inspect

print(inspect.getsource(bench.timings))

# %%
#| label: benchmark-table
REPEAT = 10
loop_times = np.array(timeit.repeat(lambda: pi_loop(N_LOOP), number=1, repeat=REPEAT))
numpy_times = np.array(timeit.repeat(lambda: pi_numpy(N_NUMPY), number=1, repeat=REPEAT))
rate = {"Python loop": N_LOOP / loop_times.min(), "NumPy": N_NUMPY / numpy_times.min()}
course.table([{"": name, "first call": first, "best": f"{times.min():.3f}", "median": f"{np.median(times):.3f}",
               "worst": f"{times.max():.3f}", "darts/s (best)": f"{rate[name]:.3g}"}
              for name, first, times in [("Python loop", "–", loop_times), ("NumPy", f"{first_numpy:.3f}", numpy_times)]],
             align="lrrrrr")
print(f"seconds; NumPy throws darts {rate['NumPy'] / rate['Python loop']:.0f}× faster than the loop")
print(course.hardware())
print(bench.load())

# %%
#| label: fig-repeats
#| fig-cap: "Ten repeats of the same computation, each divided by the fastest: the spread is noise from the machine."
#| fig-alt: "Dot plot: for the Python loop and for NumPy, ten dots each at their time divided by the best time; most sit near 1, some lie well above it."
fig, ax = plt.subplots(figsize=(9, 3.8))
for row, (name, times) in enumerate([("Python loop", loop_times), ("NumPy", numpy_times)]):
    ax.plot(times / times.min(), np.full(len(times), row) + np.linspace(-0.15, 0.15, len(times)), "o", ms=9)
ax.set_yticks([0, 1], ["Python loop", "NumPy"])
ax.set_xlabel("time / best time")
ax.axvline(1, color="#000000", lw=1)
bench.stamp(fig, bench.load())

# %% [markdown]
# What is inside `pi_numpy`'s timing? Drawing random numbers, or counting the hits? Time the parts:

# %%
#| label: inside-the-timing
rng = np.random.default_rng(1)
t_draw = bench.best(lambda: (rng.random(N_NUMPY), rng.random(N_NUMPY)))
x, y = rng.random(N_NUMPY), rng.random(N_NUMPY)
t_count = bench.best(lambda: np.count_nonzero(x * x + y * y <= 1.0))
del x, y
course.table([{"part of pi_numpy": f"draw {2 * N_NUMPY:,} random numbers", "best": f"{t_draw:.3f} s"},
              {"part of pi_numpy": "count the hits", "best": f"{t_count:.3f} s"},
              {"part of pi_numpy": "the whole of pi_numpy", "best": f"{numpy_times.min():.3f} s"}], align="lr")
print(course.hardware())

# %% [markdown]
# ### Exercise 2: benchmark it yourself (8 min)
# Time `pi_numpy(n)` for `n = 10**3, 10**5, 10**7` with `timeit.repeat(..., number=1, repeat=7)`.
# Compute the time *per dart*. Why is it so much larger for tiny `n`? Which rule above did you need?

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# for n in [10**3, 10**5, 10**7]:
#     t = min(timeit.repeat(lambda: pi_numpy(n), number=1, repeat=7))
#     print(f"n = {n:>10,}: {t * 1e9 / n:8.1f} ns per dart")
# ```
# For tiny `n` the fixed cost of each call (creating the generator, a few Python calls, allocating
# arrays) dominates: per dart it is enormous. At `10**7` the fixed cost is spread over many darts and
# the per-dart cost approaches that of the compiled loops. (A middle size may be fastest of all: its
# arrays fit in the CPU's cache, so memory is not the bottleneck.) Rule 3: know what is inside the timing. A
# benchmark at the wrong size measures overhead instead of work, the same trap as parallel tasks that
# are too small (lab 02).
# </details>

# %% [markdown]
# ### 3.4 How do we know it runs in parallel?
# Open a system monitor (`htop`, GNOME System Monitor, Windows Task Manager › Performance, Activity
# Monitor on macOS) and watch the cores while something runs. Here is the same thing as a figure:
# a background *thread* asks `psutil.cpu_percent(percpu=True)` every 50 ms how busy each core was.

# %%
class CpuMonitor:
    """Samples the use of every core we may use, in a background thread, like a system monitor."""

    def __init__(self, interval=0.05):
        self.interval = interval
        self.cores = psutil.Process().cpu_affinity() if hasattr(psutil.Process, "cpu_affinity") else None
        self.times, self.percent = [], []

    def __enter__(self):
        self._stop = threading.Event()
        psutil.cpu_percent(percpu=True)  # the first call only starts the clock
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            per_cpu = psutil.cpu_percent(percpu=True)
            self.times.append(time.perf_counter() - self._t0)
            self.percent.append([per_cpu[c] for c in self.cores] if self.cores else per_cpu)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def busy_for(seconds, fn):
    """Call fn() again and again for about `seconds`."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        fn()


N_CHUNK = 2_000_000
with ProcessPoolExecutor(max_workers=CORES, mp_context=CTX) as pool:
    list(pool.map(pi.nothing, range(CORES)))  # start the workers before we watch
    phases = {
        "NumPy, one process": lambda: pi.count_hits_numpy(N_CHUNK),
        f"dask.array, {CORES} threads": lambda: (da.random.default_rng(0).random(4 * N_CHUNK, chunks=N_CHUNK) ** 2).sum().compute(),
        f"NumPy in {CORES} processes": lambda: sum(pool.map(pi.hits_of_chunk, pi.tasks("numpy", CORES * N_CHUNK, CORES))),
    }
    monitors = {}
    for name, fn in phases.items():
        with CpuMonitor() as monitors[name]:
            busy_for(1.0, fn)

# %%
#| label: fig-cpu-monitor
#| fig-cap: "Use of each core, sampled every 50 ms while three versions of the work ran for a second each."
#| fig-alt: "Three panels of CPU use in percent against time, one line per core. With NumPy in one process, one core is near 100 percent while the other is mostly idle; with dask.array and with one process per core, all cores are busy."
fig, axes = plt.subplots(1, len(monitors), figsize=(12, 4.2), sharey=True)
for ax, (name, mon) in zip(axes, monitors.items()):
    percent = np.array(mon.percent)
    for c in range(percent.shape[1]):
        ax.plot(mon.times, percent[:, c], lw=2 if percent.shape[1] <= 8 else 0.6, label=f"core {c}")
    ax.set(title=name, xlabel="seconds", ylim=(-3, 103))
axes[0].set_ylabel("CPU use (%)")
if percent.shape[1] <= 8:
    axes[-1].legend(loc="lower right", fontsize=10)
bench.stamp(fig, "other programs on the machine show up too")

# %% [markdown]
# Read it like a system monitor. One NumPy process keeps **one** core busy: the operating system may
# move it from core to core, but the total stays one core's worth. Dask's threads and one process per
# core keep **all** cores busy. (On a shared machine, other people's programs show up too.)
#
# ### Exercise 3: your system monitor (5 min)
# Open `htop` (or your system's monitor) next to this notebook and run `pi_loop(10**7)` in one cell.
# How many cores are busy? Then run the dask cell above again. What changes?
#
# <details><summary>Solution</summary>
#
# The loop keeps one core at 100 %, just like one NumPy process: Python runs one line at a time.
# The Dask cell lights up every core. Lab 02 shows why Python *threads* alone would not have.
# </details>

# %% [markdown]
# ### 3.5 π with dask.array, and its memory
# `pi_numpy` needs all `n` darts in memory at once: two arrays of 8 bytes per dart plus temporaries.
# `dask.array` splits them into chunks; each chunk is drawn, counted and thrown away, on all cores.
# `tracemalloc` records the peak memory Python allocated (NumPy reports its arrays to it).

# %%
N_MEM = min(10_000_000 * SCALE, 50_000_000)
CHUNK = 1_000_000


def pi_dask(n, chunk=CHUNK, seed=42):
    rng = da.random.default_rng(seed)
    x = rng.random(n, chunks=chunk)
    y = rng.random(n, chunks=chunk)
    return 4 * int(da.count_nonzero(x * x + y * y <= 1.0).compute()) / n


def peak_memory(fn, *args):
    """Peak bytes allocated while fn(*args) runs, and its result."""
    tracemalloc.start()
    try:
        result = fn(*args)
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


pi_from_dask = pi_dask(N_MEM)

# %%
#| label: dask-pi
t_dask_pi = bench.best(pi_dask, N_MEM, repeat=3)
t_numpy_pi = bench.best(pi_numpy, N_MEM, repeat=3)
mem_numpy, _ = peak_memory(pi_numpy, N_MEM)
mem_dask, _ = peak_memory(pi_dask, N_MEM)
rate["dask.array"] = N_MEM / t_dask_pi
course.table([{f"{N_MEM:,} darts": "NumPy", "time": f"{t_numpy_pi:.3f} s", "peak memory": f"{mem_numpy / 2**20:.0f} MiB"},
              {f"{N_MEM:,} darts": f"dask.array, {CORES} threads", "time": f"{t_dask_pi:.3f} s",
               "peak memory": f"{mem_dask / 2**20:.0f} MiB"}], align="lrr")
print(f"dask.array: {N_MEM // CHUNK} chunks of {CHUNK:,} darts")
print(f"dask.array: π ≈ {pi_from_dask:.5f}")
print(course.hardware())
print(bench.load())

# %% [markdown]
# ### Exercise 4: chunk size (7 min)
# Run `pi_dask(N_MEM, chunk)` for `chunk = 10_000`, `1_000_000` and `N_MEM`. Time each and measure
# its peak memory. Explain both trends.

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# for chunk in [10_000, 1_000_000, N_MEM]:
#     t = bench.best(pi_dask, N_MEM, chunk, repeat=1, warmup=0)
#     mem, _ = peak_memory(pi_dask, N_MEM, chunk)
#     chunks = -(-N_MEM // chunk)  # each chunk is a handful of tasks: draw x and y, compare, count
#     print(f"chunk {chunk:>11,}: {t:6.2f} s, peak {mem / 2**20:6.0f} MiB, {1e3 * t / chunks:7.3f} ms per chunk")
# ```
# Tiny chunks make thousands of tasks, and each task costs the scheduler some overhead (the last
# column divides the run's time by its chunks: for tiny chunks that is mostly scheduling): the run
# gets *slower*. One chunk of all `N_MEM` darts is just NumPy on one
# core with NumPy's memory. In between, chunks of around a million elements keep every core busy
# with little overhead and little memory. Rule of thumb for Dask: chunks of tens to hundreds of MB,
# at least a few per core.
# </details>

# %% [markdown]
# ### π so far

# %%
#| label: pi-rates
course.table([{"implementation": name, "darts/s": f"{r:.3g}", "× loop": f"{r / rate['Python loop']:.0f}×"}
              for name, r in rate.items()], align="lrr")
print("(loop: Python's random; NumPy and Dask: NumPy's generator. Lab 03 compares like with like)")
print(course.hardware())
print(bench.load())

# %% [markdown]
# ## 4. Three mental models *(optional)*
# - **One computer, many cores.** All cores share the same memory (RAM). Threads of one process see
#   the same arrays at no cost; processes have their own memory, and data must be copied between
#   them. Memory bandwidth is shared too: enough cores can saturate it.
# - **A network of computers.** A cluster is many such computers (nodes), each with its own cores
#   and memory, joined by a network that is far slower than RAM. Work is shipped to where the data is;
#   moving data is the cost to watch. Dask (lab 04–05) and MPI work here.
# - **Interpreted against compiled.** Python's interpreter executes your program one bytecode at a
#   time, and holds a lock (the GIL, lab 02) while it does. Compiled code (C, Fortran, NumPy's
#   insides, Numba and Cython in lab 03) is machine code that runs directly, can use SIMD, and can
#   let go of the lock to run on many cores.

# %%
#| label: fig-mental-models
#| fig-cap: "Three mental models: a multi-core computer, a network of computers, and interpreted against compiled code."
#| fig-alt: "Left: one box labelled computer holding four cores above a shared memory. Middle: three computers, each with cores and memory, linked by a network. Right: Python source going through an interpreter one bytecode at a time, against source compiled once to machine code that runs on the cores."
def mental_models():
    g = graphviz.Digraph(graph_attr={"rankdir": "TB", "dpi": "100", "fontname": "Helvetica", "fontsize": "18"},
                         node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica",
                                    "fillcolor": "#D4E6F1"}, edge_attr={"fontname": "Helvetica"})
    with g.subgraph(name="cluster_one") as c:
        c.attr(label="one computer", style="rounded", color="#0072B2")
        for i in reversed(range(4)):  # Graphviz lays the last one out first
            c.node(f"core{i}", f"core {i}", fillcolor="#E69F00")
            c.edge(f"core{i}", "ram", dir="both")
        c.node("ram", "shared memory (RAM)", width="3")
    with g.subgraph(name="cluster_net") as c:
        c.attr(label="a network of computers", style="rounded", color="#009E73")
        for i in reversed(range(3)):
            c.node(f"node{i}", f"node {i}\ncores + own memory", fillcolor="#CCE8DD")
            c.edge(f"node{i}", "net", dir="both")
        c.node("net", "network (slower than RAM)", shape="ellipse", width="3")
    with g.subgraph(name="cluster_code") as c:
        c.attr(label="interpreted vs compiled", style="rounded", color="#CC79A7")
        c.node("py", "Python source")
        c.node("src", "C / Fortran / Numba")
        c.node("interp", "interpreter:\none bytecode at a time,\nholding the GIL")
        c.node("machine", "machine code:\nSIMD, many cores", fillcolor="#E69F00")
        c.edge("py", "interp", label=" every time")
        c.edge("src", "machine", label=" compiled once")
    g.edge("ram", "py", style="invis")  # put the code models below the machines
    g.edge("net", "src", style="invis")
    return g


try:
    models = Image(mental_models().pipe(format="png"))
except graphviz.ExecutableNotFound:
    models = None
    print("Cannot draw the diagram: Graphviz's `dot` is not installed (see lab 00).")
models

# %% [markdown]
# ## Key points
# - Dask's task graph shows what can run at the same time; independent chunks run on different cores.
# - The critical path (longest chain of dependent steps) limits any number of workers: Amdahl's law.
#   Speed up the critical path, not the rest.
# - NumPy is fast because its loops are compiled (and use SIMD), not because it is parallel.
# - Benchmark with repeats (best or median), after a warm-up, timing only what you compare, and
#   always with the hardware and the load of the machine.
# - Watch the cores to know whether something runs in parallel.
# - `dask.array` uses all cores *and* bounds memory by working chunk by chunk.

# %% [markdown]
# ## Checks
# Run by `pytest labs/01_why_parallel.py`; the slides never show this cell.

# %% tags=["checks"]
def test_success_story_sums_agree():
    assert total_numpy == total_dask == N_SUM * (N_SUM - 1) // 2


def test_soup_respects_the_recipe():
    for k, log in kitchens.items():
        assert sorted(r["step"] for r in log) == sorted(soup.RECIPE)
        end = {r["step"]: r["end"] for r in log}
        for r in log:
            assert all(end[need] <= r["start"] for need in soup.RECIPE[r["step"]][1]), r
        for c in range(k):  # a cook does one step at a time
            mine = sorted((r["start"], r["end"]) for r in log if r["cook"] == c)
            assert all(a[1] <= b[0] for a, b in zip(mine, mine[1:]))


def test_no_kitchen_beats_the_critical_path():
    assert (span, chain[0], chain[-1]) == (90, "boil water", "serve")
    assert all(makespan[k] >= span * soup.MINUTE for k in COOKS)


def test_pi_estimates_within_tolerance():
    for estimate, n in [(pi_from_loop, N_LOOP), (pi_from_numpy, N_NUMPY), (pi_from_dask, N_MEM)]:
        assert abs(estimate - math.pi) < 5 * pi.stderr(n), (estimate, n)


def test_dask_pi_is_reproducible():
    assert pi_dask(N_MEM // 10, seed=7) == pi_dask(N_MEM // 10, seed=7)


def test_dask_needs_less_memory():
    assert mem_dask < mem_numpy / 2


def test_cpu_was_sampled():
    for mon in monitors.values():
        percent = np.array(mon.percent)
        assert len(mon.times) >= 5 and percent.min() >= 0 and percent.max() <= 100


course.run_checks(globals())
