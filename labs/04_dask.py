# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Dask: chunks, task graphs, schedulers and worker memory
#
# **Teaching:** 50 min · **Exercises:** 30 min
#
# ## Objectives
# - Explain how a Dask array is cut into **chunks**, and why the chunk is the unit of parallelism.
# - Read a **task graph**, and build one from ordinary functions with `dask.delayed`.
# - Run work as it comes with **futures**: `submit`, `map`, `as_completed`, `scatter`.
# - Choose a **scheduler** (threads, processes, distributed) for a given kind of work.
# - Watch a computation on the **dashboard**, save a performance report, show progress bars.
# - Predict a worker's **memory** from the chunk size; recognise and fix a `KilledWorker`.
# - Apply three habits: no tiny tasks, persist what you reuse, never compute twice.
#
# ## Why Dask?
# NumPy runs on one core and needs the whole array in memory. Dask keeps NumPy's (and Xarray's)
# way of writing code, but cuts the data into **chunks**, writes down what has to happen to each
# chunk as a **graph of small tasks**, and hands those tasks to a **scheduler** that runs them on
# threads, on processes, or on many machines. Nothing is computed until you ask for a result, so
# Dask can plan to hold only a few chunks in memory at a time: arrays larger than RAM become
# possible, and independent chunks run in parallel.
#
# The same code then runs on a laptop, a workstation and a cluster (episode 05). What changes is
# the scheduler, and how much memory each worker has. Most failures of a first "real" Dask job are
# memory failures, so this lab ends by causing one on purpose and fixing it.
#
# Every timing below was measured when the lab ran, on the machine printed next to it. The arrays
# are small by default; set `COURSE_SIZE=workshop` (or `large`) to scale them up.

# %%
import inspect
import logging
import math
import platform
import textwrap
import threading
import time
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor

import dask
import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from dask import delayed
from dask.distributed import KilledWorker, as_completed, performance_report, progress
from distributed.diagnostics import MemorySampler
from IPython.display import SVG, Image

import course
from course import bench, clusters, pi, soup

OUT = course.BUILD / "04_dask"  # everything this lab writes
OUT.mkdir(parents=True, exist_ok=True)
SCALE = {"small": 1, "workshop": 4, "large": 16}.get(course.size(), 16)
N_WORKERS = min(4, max(2, course.usable_cores()))  # worker processes for the local cluster
DEADLINE = clusters.deadline()  # seconds any one computation on a cluster may take ($COURSE_DEADLINE_S)


def timed(f, *args, **kwargs):
    """(result, seconds) of one call."""
    start = time.perf_counter()
    result = f(*args, **kwargs)
    return result, time.perf_counter() - start


# %%
#| label: hardware
print(course.hardware())
print(f"dask {dask.__version__} · COURSE_SIZE={course.size()} (scale ×{SCALE}) · {N_WORKERS} workers for the local cluster")

# %% [markdown]
# ## 1. Dask arrays: chunks are the unit of parallelism *(core)*
#
# A Dask array looks like a NumPy array but is a grid of NumPy arrays, the **chunks**. Here is a
# stand-in for a gridded variable: 6-hourly fields on a 1° global grid, chunked into blocks of 24
# time steps. Creating it computes nothing: Dask only records what each chunk will be.

# %%
#| label: array-repr
NT = 240 * SCALE
field = da.random.default_rng(0).standard_normal((NT, 181, 360), chunks=(24, 181, 360))
field

# %%
#| label: fig-array-chunks
#| fig-cap: "The Dask array drawn by Dask itself: 6-hourly fields on a 181 × 360 grid, cut into blocks of 24 time steps."
#| fig-alt: "A 3-D box seen at an angle, its long time axis divided into equal blocks by lines; the other two sides are labelled 181 and 360."
# Dask's SVG lacks the xmlns attribute that a browser needs to show it as an image on a slide.
SVG(field.to_svg(size=250).replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))

# %% [markdown]
# In a notebook the array shows itself as a table and a picture of its chunks. Each operation on the array becomes one task **per chunk**, plus a
# few tasks that combine the results of a reduction. The number of chunks is therefore the most
# parallelism you can get, and every task costs the scheduler some bookkeeping (section 6 measures
# how much), so chunks should be neither tiny nor huge:
# **tens to a few hundred MiB** is the usual advice for real data; this lab uses smaller ones.

# %%
#| label: chunk-facts
time_mean = field.mean(axis=0)
print(f"array: {field.shape}, {field.nbytes / 2**20:.0f} MiB")
print(f"{field.npartitions} chunks of {field.chunksize} = {np.prod(field.chunksize) * 8 / 2**20:.1f} MiB each")
print(f"the time mean is a graph of {len(time_mean.__dask_graph__())} tasks; nothing has run yet")

# %% [markdown]
# ### Does it pay? NumPy against Dask, time and memory
#
# We make the array and take its time mean twice: with NumPy (the whole array in memory, one
# core) and with Dask's threaded scheduler (a few chunks at a time, all cores). `tracemalloc`
# records the peak memory that NumPy allocated in each case.

# %%
def traced_peak(f):
    """(result, seconds, peak MiB that NumPy allocated while running f)."""
    tracemalloc.start()
    try:
        result, seconds = timed(f)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    return result, seconds, peak


_, np_s, np_mib = traced_peak(lambda: np.random.default_rng(0).standard_normal((NT, 181, 360)).mean(axis=0))
_, da_s, da_mib = traced_peak(lambda: time_mean.compute(scheduler="threads"))

# %%
#| label: fig-numpy-vs-dask
#| fig-cap: "Time mean of a 6-hourly 1° field: NumPy holds the whole array, Dask a few chunks at a time on all cores (measured here)."
#| fig-alt: "Two bar charts side by side. Left: seconds for NumPy and for Dask threads. Right: peak memory in MiB for NumPy and for Dask threads; the Dask bar is much lower."
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
labels = ["NumPy\n(1 core)", f"Dask threads\n({course.usable_cores()} cores)"]
ax1.bar(labels, [np_s, da_s], color=["#0072B2", "#E69F00"])
ax1.set_ylabel("seconds")
ax1.set_title("time")
ax2.bar(labels, [np_mib, da_mib], color=["#0072B2", "#E69F00"])
ax2.set_ylabel("peak MiB allocated")
ax2.set_title("memory")
for ax, values, fmt in ((ax1, [np_s, da_s], "{:.2f} s"), (ax2, [np_mib, da_mib], "{:.0f} MiB")):
    for i, v in enumerate(values):
        ax.annotate(fmt.format(v), (i, v), ha="center", va="bottom")
fig.suptitle(course.hardware(), fontsize=10)
fig.tight_layout()

# %%
#| label: numpy-vs-dask
print(f"NumPy : {np_s:.2f} s, peak {np_mib:.0f} MiB")
print(f"Dask  : {da_s:.2f} s, peak {da_mib:.0f} MiB  ({np_s / da_s:.1f}× the speed, {np_mib / da_mib:.1f}× less memory)")
print(course.hardware())

# %% [markdown]
# ### Reading a task graph
#
# `.visualize()` draws the graph with Graphviz. Each oval is a task (a function call on one chunk);
# each arrow carries a task's result to a task that needs it. (Without `collapse_outputs=True`, Dask
# also draws every result as a box of its own.) Take the standard deviation of the deviations from the time mean,
# `(y - y.mean(axis=0)).std(axis=0)`, for a tiny array in four chunks:

# %%
#| label: fig-array-graph
#| fig-cap: "Task graph of (y - y.mean(axis=0)).std(axis=0) for an array in four chunks, drawn by Dask with Graphviz: one oval per task."
#| fig-alt: "Graph flowing left to right: four standard_normal tasks each feed a mean_chunk task and, by a long arrow, a sub task; the four mean_chunk results join in one mean_agg-aggregate whose result feeds all four sub tasks, then var tasks, a var-aggregate and sqrt."
y = da.random.default_rng(1).standard_normal((8, 6), chunks=(2, 6))
anomaly_std_graph = (y - y.mean(axis=0)).std(axis=0)
# ovals, no result boxes (collapse_outputs), tight spacing: the labels stay legible on a slide
anomaly_std_graph.visualize(filename=str(OUT / "array-graph.png"), rankdir="LR", collapse_outputs=True, dpi="110",
                            nodesep="0.15", ranksep="0.35",
                            function_attributes={key: {"shape": "ellipse"} for key in dict(anomaly_std_graph.dask)})
Image(filename=OUT / "array-graph.png", width=900)

# %% [markdown]
# Follow a chunk from the left: it goes into a `mean_chunk` task **and** into a `sub` task. The
# `sub` cannot start until the aggregated mean exists, and the mean needs *every* chunk. So every
# chunk of `y` must be kept (or made again) until the last chunk has been read. Remember this
# graph: it is why the memory section at the end of the lab goes wrong.

# %% [markdown]
# ### Exercise 1: chunks and tasks (6 min)
# Make `field` with chunks of 12, 24 and 120 time steps. For each, print `field.npartitions`, the
# number of tasks in `field.mean(axis=0)`, and the time of `.compute()`. Which is fastest here, and why
# not the smallest?

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# for t in (12, 24, 120):
#     f = da.random.default_rng(0).standard_normal((NT, 181, 360), chunks=(t, 181, 360))
#     m = f.mean(axis=0)
#     _, s = timed(m.compute)
#     print(t, f.npartitions, len(m.__dask_graph__()), f"{s:.2f} s")
# ```
# More chunks mean more parallelism only up to the number of cores; beyond that, each extra task
# just adds overhead. With 120 time steps the array has only `NT // 120` chunks (print
# `f.npartitions`): with more cores than chunks, some sit idle. A middle size wins; on a big machine the best size is larger than on a laptop.
# </details>

# %% [markdown]
# ## 2. `dask.delayed`: a graph from your own functions (the pea soup again) *(core)*
#
# Not everything is an array. `delayed` wraps ordinary function calls: the call is recorded,
# not run, and its arguments (other delayed results) become the edges of the graph. Here is the
# Dutch pea soup (*erwtensoep*) from episode 01, shortened to ten steps. The steps are plain
# functions; each sleeps for its recipe minutes, scaled down (one minute = 0.01 s), because cooking is
# mostly waiting for the pot. Three of them, as they are written:

# %%
#| label: soup-source
for step in (soup._step, soup.rinse_peas, soup.add_vegetables):
    print(inspect.getsource(step))

# %% [markdown]
# They live in the module `course.soup` rather than in this notebook because worker *processes*
# import a function by its module and name (episode 02): a process started with `spawn` cannot see a
# function defined in a notebook. Now the recipe, as a graph:

# %%
peas = delayed(soup.cook_peas)(delayed(soup.rinse_peas)(), delayed(soup.boil_water)())
onion = delayed(soup.fry_onion)(delayed(soup.chop)("onion"))
carrots = delayed(soup.dice_carrots)()
bacon = delayed(soup.fry_bacon)()
pot = delayed(soup.add_vegetables)(peas, onion, carrots, bacon)
meal = delayed(soup.serve)(delayed(soup.simmer_soup)(pot))  # nothing has been cooked yet

# %%
#| label: fig-soup-graph
#| fig-cap: "The pea-soup recipe as a Dask task graph, one oval per task: rinsing, boiling, chopping, dicing and frying are independent and can run at the same time."
#| fig-alt: "Graph flowing left to right: rinse_peas and boil_water feed cook_peas; chop feeds fry_onion; cook_peas, fry_onion, dice_carrots and fry_bacon all feed add_vegetables, then simmer_soup, then serve."
# one oval per task and no result boxes (collapse_outputs): the recipe reads at a glance, and fits a slide
meal.visualize(filename=str(OUT / "soup-graph.png"), rankdir="LR", collapse_outputs=True, dpi="115",
               function_attributes={key: {"shape": "ellipse"} for key in dict(meal.dask)})
Image(filename=OUT / "soup-graph.png", width=900)

# %% [markdown]
# One cook follows the recipe step by step. Dask's threaded scheduler is a kitchen with several
# cooks: independent steps overlap. Waiting needs no core, so more threads than cores help here.
# No number of cooks beats the **critical path**, the longest chain of steps that must follow
# each other (boil water → cook peas → add vegetables → simmer → serve).

# %%
#| label: soup-timings
serial_soup, serial_s = timed(soup.cook_serially)
dask_soup, dask_soup_s = timed(meal.compute, scheduler="threads", num_workers=5)
spm = soup.MINUTE
short = soup.short_recipe()
print(f"one cook, step by step : {serial_s:.2f} s  (recipe: {soup.work(short)} min × {spm} s = {soup.work(short) * spm:.2f} s)")
print(f"Dask threads, 5 cooks  : {dask_soup_s:.2f} s  (critical path: {soup.critical_path(short)[0]} min = {soup.critical_path(short)[0] * spm:.2f} s)")
print(f"speed-up {serial_s / dask_soup_s:.2f}×, at most {soup.work(short) / soup.critical_path(short)[0]:.2f}× · same soup: {serial_soup == dask_soup}")
print(course.hardware())

# %% [markdown]
# ### Exercise 2: sausage on the side (8 min)
# Episode 01's recipe serves smoked sausage with the soup: `heat_sausage` (15 recipe minutes, needs
# nothing), then `slice_sausage` (3 minutes), which `serve` also needs. Write the two functions in
# the notebook (with `soup._step`, as the printed steps do), add them to the graph, draw it, and
# predict the time before you measure it.

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def heat_sausage():
#     soup._step("heat sausage"); return "hot sausage"      # RECIPE already has its minutes
# def slice_sausage(sausage):
#     soup._step("slice sausage"); return f"sliced {sausage}"
# def serve_with(pot, sausage):
#     soup._step("serve"); return f"erwtensoep: {pot} with {sausage}"
#
# meal = delayed(serve_with)(delayed(soup.simmer_soup)(pot), delayed(slice_sausage)(delayed(heat_sausage)()))
# meal.visualize(rankdir="LR"); timed(meal.compute, scheduler="threads", num_workers=5)
# ```
# The sausage (18 minutes) is ready long before the soup, so the time does not change: it is not on
# the critical path. Functions written in a notebook work on every Dask scheduler: Dask pickles them
# with `cloudpickle`, *by value*. A function from a module travels *by name* instead, so every worker
# must be able to import that module (episode 05 shows what happens when one cannot).
# </details>

# %% [markdown]
# ## 3. Futures: work that starts as soon as you submit it *(core)*
#
# `delayed` builds the whole graph first, then runs it. **Futures** run at once: `client.submit(f, x)`
# sends one call to the cluster and returns a *future*, a ticket for a result that may not exist
# yet. Futures need the **distributed** scheduler, so we start a cluster of worker processes on
# this machine with `course.clusters.client`. Here is all it does:

# %%
print(inspect.getsource(clusters.client))

# %% [markdown]
# A `LocalCluster` of worker processes that binds `127.0.0.1` only (nobody else on the network can
# reach it or run code on it), with ports the operating system picks, so it never clashes with
# another cluster. Inside a batch job that has started a cluster already (episode 05), it joins that
# one instead: the same lab then runs on the job's nodes. We give no memory limit here, so each worker
# gets Dask's default, this machine's RAM shared among the workers; section 7 computes a tight limit
# from a measured idle worker, where the limit is the lesson.

# %%
#| label: cluster-start
client = clusters.client(n_workers=N_WORKERS, threads_per_worker=1, silence_logs=logging.ERROR)
cluster = client.cluster  # None when we joined a batch job's cluster
workers = client.scheduler_info(n_workers=-1)["workers"]
print(f"{len(workers)} worker processes, 1 thread each; scheduler at {client.scheduler.address}")
print(f"Dashboard: {client.dashboard_link}")

# %% [markdown]
# Open the dashboard link in a browser now (on a remote machine: through an SSH tunnel, see episode
# 05) and keep it beside the notebook while you run the next cells.
#
# **A deadline on every wait.** `future.result()` waits as long as it takes, which is forever when a
# worker is stuck. In this course every wait on a cluster has a deadline: `result(timeout=...)`,
# `as_completed(..., timeout=...)`, and for whole computations `clusters.compute(x, client)`, which
# also notices paused and killed workers and says what happened (`DEADLINE` is
# `$COURSE_DEADLINE_S`, 600 s unless you set it).

# %%
#| label: futures-submit-map
chopped = client.submit(soup.chop, "onion")  # returns at once
print("just submitted:", chopped.status)
print("result:", chopped.result(timeout=DEADLINE))  # waits, at most DEADLINE s
chops = client.map(soup.chop, soup.VEGETABLES)  # one future per vegetable
fried = client.submit(soup.fry_onion, chops[0])  # a future as argument
print("fried:", fried.result(timeout=DEADLINE))
print("chopped:", [c.result(timeout=DEADLINE) for c in chops[1:]])

# %% [markdown]
# `as_completed` hands you futures in the order they **finish**, not the order you submitted them:
# handle each result as soon as it exists (plot it, save it, submit follow-up work).

# %%
#| label: as-completed
start = time.perf_counter()
steps = {client.submit(soup.boil_water): "boil water", client.submit(soup.fry_bacon): "fry bacon",
         client.submit(soup.dice_carrots): "dice carrots", client.submit(soup.rinse_peas): "rinse peas"}
steps.update({client.submit(soup.chop, v, pure=False): f"chop {v}" for v in soup.VEGETABLES})
finished = []
for future in as_completed(steps, timeout=DEADLINE):
    finished.append(steps[future])
    print(f"{time.perf_counter() - start:5.2f} s  {steps[future]:<12} → {future.result()}")

# %% [markdown]
# ### `scatter`: send big inputs once
#
# An argument of `submit` travels with the task. Pass the same 50 MiB array to six tasks and it is
# serialised and sent six times, through the scheduler (Dask warns about large graphs). `client.scatter`
# puts it on the workers once and gives you a future to pass around instead.

# %%
#| label: scatter
big = np.random.default_rng(2).standard_normal((500 * SCALE, 181 * 72))  # ~50 MiB × scale
quantiles = [0.1, 0.25, 0.5, 0.75, 0.9, 0.99]


def quantiles_without_scatter():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        futures = [client.submit(np.quantile, big, q) for q in quantiles]
        values = clusters.wait_for(futures, client, what="quantiles without scatter")  # gather, with a deadline
    return values, [str(w.message).splitlines()[0].split(". ")[0] for w in caught]  # first sentence


def quantiles_with_scatter():
    remote = client.scatter(big, broadcast=True)  # once, to every worker
    futures = [client.submit(np.quantile, remote, q) for q in quantiles]
    return clusters.wait_for(futures, client, what="quantiles with scatter")


(no_scatter, dask_warnings), no_scatter_s = timed(quantiles_without_scatter)
with_scatter, scatter_s = timed(quantiles_with_scatter)
print(f"{len(quantiles)} quantiles of a {big.nbytes / 2**20:.0f} MiB array")
print(f"array inside every task: {no_scatter_s:.2f} s")
print(f"scattered once         : {scatter_s:.2f} s")
print(f"Dask warned: {dask_warnings[0]}" if dask_warnings else "Dask did not warn")
print(course.hardware())

# %% [markdown]
# ## 4. Schedulers: threads, processes or distributed? *(core)*
#
# The graph says *what* to run; the scheduler decides *where*. Python's global interpreter lock
# (GIL) lets only one thread run Python code at a time, but NumPy, Numba and most I/O release it.
# So the right scheduler depends on the kind of work. We compute π by the midpoint rule in four
# slices, once with a plain Python loop (holds the GIL) and once with NumPy (releases it, block by
# block), under each scheduler. The two slice functions (from `course.pi`, so that worker processes
# can import them) are printed below the table.
#
# | scheduler | runs tasks in | good for | cost |
# |---|---|---|---|
# | `synchronous` | this thread, one by one | debugging (`pdb` works) | no parallelism |
# | `threads` (default for arrays) | a thread pool in this process | NumPy, Pandas, I/O: code that releases the GIL | pure Python stays serial |
# | `processes` | a pool of new processes | pure Python on one machine | start-up, pickling every input and result |
# | `distributed` | worker processes, here or on other machines | everything above; the dashboard; more than one machine | a cluster to start and stop |

# %%
print(inspect.getsource(pi.pi_slice_python))
print(inspect.getsource(pi.pi_slice_numpy))

# %%
N_PY, N_NP = 3_000_000 * SCALE, 400_000_000 * SCALE


def pi_graph(slice_function, n, parts=4):
    return delayed(sum)([delayed(slice_function)(a, b, n) for a, b in pi.slices(n, parts)])


schedulers = {  # how to compute a graph with each scheduler
    "synchronous": lambda graph: graph.compute(scheduler="synchronous"),
    "threads": lambda graph: graph.compute(scheduler="threads", num_workers=N_WORKERS),
    "processes": lambda graph: graph.compute(scheduler="processes", num_workers=N_WORKERS),
    "distributed": lambda graph: clusters.compute(graph, client, what="π on the cluster"),  # = compute(scheduler=client), with a deadline
}
scheduler_times, scheduler_pis = {}, {}
for name, run in schedulers.items():
    for work, function, n in (("pure Python", pi.pi_slice_python, N_PY), ("NumPy", pi.pi_slice_numpy, N_NP)):
        scheduler_pis[name, work], scheduler_times[name, work] = timed(run, pi_graph(function, n))

# %%
#| label: fig-schedulers
#| fig-cap: "π in four slices under each Dask scheduler: pure-Python work (holds the GIL) and NumPy work (releases it), measured here."
#| fig-alt: "Grouped bar chart of seconds per scheduler (synchronous, threads, processes, distributed), one bar for pure Python and one for NumPy work each."
fig, ax = plt.subplots(figsize=(10, 5))
names = list(schedulers)
xs = np.arange(len(names))
for k, work in enumerate(("pure Python", "NumPy")):
    values = [scheduler_times[name, work] for name in names]
    bars = ax.bar(xs + (k - 0.5) * 0.38, values, width=0.38, label=work)
    ax.bar_label(bars, fmt="%.2f", fontsize=11)
ax.set_xticks(xs, names)
ax.set_ylabel("seconds")
ax.set_title(f"π in 4 slices, {N_WORKERS} workers")
ax.legend()
fig.suptitle(course.hardware(), fontsize=10)
fig.tight_layout()

# %%
#| label: scheduler-table
course.table([{"scheduler": name} | {
    f"{w}, s (speed-up)": f"{scheduler_times[name, w]:.2f} ({scheduler_times['synchronous', w] / scheduler_times[name, w]:.1f}×)"
    for w in ("pure Python", "NumPy")} for name in names], align="lrr")
print(f"π to {N_PY:,} terms in pure Python, {N_NP:,} with NumPy · {course.hardware()}")

# %% [markdown]
# What to expect, and to check against the speed-ups in brackets: threads speed up NumPy but not
# the pure-Python loop (the GIL). Processes speed up both, minus the time to start the pool and
# pickle the data. The distributed workers are already running, so they pay no start-up: on one
# machine the distributed scheduler is often the best choice even without a cluster, and it brings
# the dashboard. (On a machine shared with other users, every speed-up shrinks.)

# %% [markdown]
# ### Threads inside processes: oversubscription
# NumPy's linear algebra (`A @ B`, `np.linalg.solve`) calls a BLAS library (OpenBLAS, MKL or
# Accelerate) that starts **its own threads**, by default one per core. Run several processes, Dask
# workers or joblib jobs that each do linear algebra, and the threads multiply: *P* processes × *T*
# BLAS threads each, on a machine with far fewer cores. They then fight for the cores, and every
# switch between them costs time (OpenBLAS threads even spin while they wait). Below: the same
# matrix products in a pool of as many processes as we may use cores, once with BLAS at its default
# and once limited to one thread per process with `threadpoolctl`, beside one process on its own.

# %%
#| label: oversubscription
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
import os

from threadpoolctl import threadpool_info

PROCS = max(2, course.usable_cores())
BLAS = next((i for i in threadpool_info() if i["user_api"] == "blas"), {})
BLAS_THREADS = BLAS.get("num_threads", 1)  # this process's default, inherited by the pool's
N_MM, REPS = 800, 6 * SCALE
CTX = multiprocessing.get_context(os.environ.get("COURSE_START_METHOD") or None)


def pool_seconds(procs, blas_threads):
    """Wall time of procs × REPS products, REPS in each of `procs` processes at once (pool already started)."""
    with ProcessPoolExecutor(procs, mp_context=CTX) as pool:
        list(pool.map(bench.matmul_seconds, [64] * procs, [1] * procs))  # start the workers first
        start = time.perf_counter()
        list(pool.map(bench.matmul_seconds, [N_MM] * procs, [REPS] * procs, [blas_threads] * procs))
        return time.perf_counter() - start


oversub = {  # (processes, BLAS threads each) -> best of two wall times
    (1, BLAS_THREADS): min(pool_seconds(1, None) for _ in range(2)) * PROCS,  # one process, PROCS× the work
    (PROCS, BLAS_THREADS): min(pool_seconds(PROCS, None) for _ in range(2)),
    (PROCS, 1): min(pool_seconds(PROCS, 1) for _ in range(2)),
}
course.table([{"processes × BLAS threads": f"{p} × {t}", "threads": p * t,
               f"seconds for {PROCS * REPS} products": f"{s:.2f}"} for (p, t), s in oversub.items()], align="lrr")
crowded, tidy = oversub[PROCS, BLAS_THREADS], oversub[PROCS, 1]
if BLAS_THREADS == 1:
    print("BLAS runs one thread per process here already: nothing to oversubscribe on this machine.")
else:
    verdict = ("slower than" if crowded > 1.1 * tidy else "about as fast as" if crowded > 0.9 * tidy else "faster than")
    print(f"{PROCS * BLAS_THREADS} threads on {course.usable_cores()} usable cores were {verdict} "
          f"{PROCS} threads ({crowded / tidy:.2f}× the time); BLAS: {BLAS.get('internal_api', '?')}")
print(f"one process alone is timed for {REPS} products and scaled to {PROCS * REPS} · {bench.load()}")
print(course.hardware())

# %% [markdown]
# The rule: **threads × processes ≤ cores.** Give the outer level the parallelism and the inner
# level one thread, or the other way round, never both:
#
# - **Environment variables** before Python starts (or before NumPy is imported in a worker):
#   `OMP_NUM_THREADS=1`, `OPENBLAS_NUM_THREADS=1`, `MKL_NUM_THREADS=1`. In a batch job, set them
#   in the job script.
# - **`threadpoolctl`** inside running code: `with threadpool_limits(limits=1, user_api="blas"):`.
# - **Dask's worker processes already do it**: the nanny starts every worker with
#   `OMP_NUM_THREADS=MKL_NUM_THREADS=OPENBLAS_NUM_THREADS=1` (the `distributed.nanny.pre-spawn-environ`
#   setting), so a worker's threads are Dask's `threads_per_worker`. joblib's default backend limits
#   its workers' inner threads too. A plain `multiprocessing` or `concurrent.futures` pool does not:
#   there it is up to you. Numba's `prange` (lab 03) counts as threads too: `numba.set_num_threads`.

# %% [markdown]
# ### Exercise 3: futures as they come (8 min)
# Submit `pi.pi_slice_python(a, b, n)` for 8 slices of `n = 4_000_000` with `client.map` and
# add the parts up with `as_completed`, printing the running estimate of π after each slice.
# The lab's cluster is closed by now: start one of your own for this, and close it at the end.

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# n = 4_000_000
# starts, stops = zip(*pi.slices(n, 8))
# with clusters.client(n_workers=2) as my_client:        # closed (with its workers) at the end of the block
#     futures = my_client.map(pi.pi_slice_python, starts, stops, n=n)
#     total = 0.0
#     for f in as_completed(futures, timeout=DEADLINE):  # a deadline, as always on a cluster
#         total += f.result()
#         print(total)          # climbs towards π as slices arrive, in whatever order they finish
# ```
# </details>

# %% [markdown]
# ## 5. The dashboard, a performance report and progress bars *(core)*
#
# The dashboard (link printed above) shows, live: the **task stream** (one row per worker thread,
# one coloured bar per task, red for communication), **progress** per kind of task, and each
# worker's **memory** (blue: held data, grey: unmanaged, orange: spilled to disk). We keep the
# cluster busy with a computation of a few hundred tasks, round after round, and meanwhile:
# - record everything into a self-contained HTML **performance report**, a file you can send to a
#   colleague or attach to a bug report,
# - take screenshots of the live dashboard with a headless browser (when one is installed).

# %%
#| label: performance-report
report_path = OUT / "performance-report.html"
work = da.random.default_rng(3).standard_normal((120 * SCALE, 181, 360), chunks=(4, 181, 360))
work = (abs(work) ** 1.5).mean(axis=(1, 2))  # one small series per time step: a few hundred tasks

status_png, workers_png = OUT / "dashboard-status.png", OUT / "dashboard-workers.png"
workers_page = client.dashboard_link.replace("/status", "/workers")
pages = {client.dashboard_link: status_png, workers_page: workers_png}
rounds = 0
with performance_report(filename=str(report_path)):
    with ThreadPoolExecutor(1) as pool:
        # the browser runs beside the work; the Workers picture is cut to its table (columns up to "managed")
        shooting = pool.submit(clusters.screenshots, pages, 1.0, tables={workers_page: ("managed", len(workers) + 1)})
        while rounds == 0 or not shooting.done():  # keep the dashboard busy until the pictures are taken
            clusters.compute(work, client, what="a round of the dashboard demo")
            rounds += 1
        shot_files, shot_note = shooting.result()
print(f"{rounds} rounds of {len(work.__dask_graph__())} tasks")
print(f"performance report: {report_path.relative_to(course.ROOT)} ({report_path.stat().st_size / 1e6:.1f} MB)")
print(shot_note)

# %% [markdown]
# **Progress bars.** In JupyterLab, `progress(future)` draws a live widget; in a script or a
# terminal, `notebook=False` prints a text bar. It returns when the work is done, and not before:
# it has no deadline. So we draw the bar in a thread of its own and wait with ours.

# %%
future = client.compute(work)
bar = threading.Thread(target=progress, args=(future,), kwargs={"notebook": False}, daemon=True)
bar.start()
clusters.wait_for(future, client, what="the progress-bar demo")
bar.join(timeout=10)
print()

# %% [markdown]
# Local schedulers (threads, processes) have no dashboard, but `dask.diagnostics.ProgressBar`
# shows their progress:

# %%
from dask.diagnostics import ProgressBar

with ProgressBar():
    time_mean.compute(scheduler="threads")

# %%
#| label: fig-dashboard-status
#| fig-cap: "The Dask dashboard's status page during the computation above, screenshotted by a headless browser."
#| fig-alt: "Dask dashboard status page: bytes stored per worker and task-processing bars at the left, the task stream with coloured bars per worker thread at the top right, and progress bars per task type below it."
Image(filename=status_png, width=960) if status_png in shot_files else print(shot_note)

# %%
#| label: fig-dashboard-workers
#| fig-cap: "The table at the top of the dashboard's Workers page: CPU and memory of each worker process, with its memory limit."
#| fig-alt: "Table of the workers: a total row, then one row per worker process, with columns for name, address, threads, CPU percent, memory, memory limit, memory percent and managed memory."
Image(filename=workers_png, width=1100) if workers_png in shot_files else print(shot_note)

# %% [markdown]
# ## 6. Three habits that save time, measured *(optional)*
#
# **Avoid too many tiny tasks.** Every task costs the scheduler some bookkeeping, whatever it does.
# How much? Time a graph of 2000 tasks that do nothing, on the threaded scheduler (in this process)
# and on the distributed one (a scheduler process that sends each task to a worker and hears back):

# %%
#| label: task-overhead
def do_nothing(x):
    return x


def empty_tasks(n):
    """A graph of n tasks that do nothing, with new names each time (no result can be reused)."""
    return delayed(len)([delayed(do_nothing, pure=False)(i) for i in range(n)])


N_TASKS = 2000
clusters.compute(empty_tasks(100), client, what="the warm-up")  # the first run also ships the function
overhead = {"threads": timed(empty_tasks(N_TASKS).compute, scheduler="threads")[1],
            "distributed": timed(clusters.compute, empty_tasks(N_TASKS), client, what="2000 empty tasks")[1]}
course.table([{"scheduler": name, f"{N_TASKS} empty tasks": f"{s:.2f} s", "per task": f"{s / N_TASKS * 1e3:.2f} ms"}
              for name, s in overhead.items()])
print(course.hardware())

# %% [markdown]
# A task that computes for a fraction of that is mostly overhead. A 4000 × 4000 array summed in
# chunks of 250 × 250 is 256 chunks and hundreds of tasks; in chunks of 1000 × 1000 it is 16 chunks.

# %%
#| label: fig-chunk-size
#| fig-cap: "Sum of a 4000 × 4000 random array on the local cluster for different chunk sizes: tiny chunks drown in per-task overhead, one chunk leaves cores idle."
#| fig-alt: "Line chart with logarithmic axes: seconds against chunk edge length from 250 to 4000; time is high for the smallest chunks, lowest in the middle, and rises again for a single chunk."
chunk_edges = [250, 500, 1000, 2000, 4000]
chunk_times, chunk_tasks, chunk_sums = {}, {}, {}
for edge in chunk_edges:
    a = da.random.default_rng(4).random((4000, 4000), chunks=(edge, edge))
    total = a.sum()
    chunk_tasks[edge] = len(total.__dask_graph__())
    chunk_sums[edge], chunk_times[edge] = timed(clusters.compute, total, client, what=f"the sum in {edge}² chunks")
fig, ax = plt.subplots(figsize=(9, 4.5))
ax.plot(chunk_edges, [chunk_times[e] for e in chunk_edges], "o-")
for e in chunk_edges:
    ax.annotate(f"{chunk_tasks[e]} tasks", (e, chunk_times[e]), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=11)
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xticks(chunk_edges, [str(e) for e in chunk_edges])
ax.xaxis.set_minor_locator(plt.NullLocator())
ax.set_xlabel("chunk edge (elements)")
ax.set_ylabel("seconds")
ax.set_title(f"sum of 4000 × 4000, {N_WORKERS} workers")
fig.suptitle(course.hardware(), fontsize=10)
fig.tight_layout()

# %% [markdown]
# **Persist what you reuse** and **never compute twice.** Each `.compute()` runs the whole graph
# from the start: ask for the mean, then the standard deviation, and the data are made twice. Either
# compute everything you need in **one** call, `dask.compute(a, b)`, so shared tasks run once; or
# `persist()` the shared part: it is computed once and kept in the workers' memory (if it fits!)
# for as many questions as you like. (`clusters.compute([a, b], client)` is `dask.compute(a, b)`
# with a deadline: the list goes to the cluster as one graph.)

# %%
#| label: best-practice-table
base = da.random.default_rng(5).standard_normal((160 * SCALE, 181, 360), chunks=(16, 181, 360))
base = np.exp(np.sin(base) ** 2)  # stands for expensive preprocessing
stats = [base.mean(), base.std(), base.max()]

separately, separately_s = timed(lambda: [clusters.compute(s, client, what="one statistic") for s in stats])
together, together_s = timed(clusters.compute, stats, client, what="three statistics in one graph")


def with_persist():
    kept = base.persist()  # starts at once; computed once, kept on the workers
    values = [clusters.compute(s, client, what="a statistic of the kept array") for s in (kept.mean(), kept.std(), kept.max())]
    del kept  # free the workers' memory
    return values


persisted, persist_s = timed(with_persist)
course.table([
    {"how": "three .compute()", "seconds": f"{separately_s:.2f}", "why": "makes the data three times"},
    {"how": "one dask.compute()", "seconds": f"{together_s:.2f}", "why": "shared tasks run once"},
    {"how": "persist, then three", "seconds": f"{persist_s:.2f}", "why": "makes it once, keeps it"},
], align="lrl")
print(f"mean, std and max of a {base.nbytes / 2**20:.0f} MiB preprocessed array")
print(course.hardware())

# %% [markdown]
# Done with this cluster. Closing it stops its worker processes; a notebook that forgets leaves them
# running (and holding memory) until the kernel stops. Before we close it, we note which addresses
# the scheduler, the dashboard and the workers listen on: all of them must be `127.0.0.1`.

# %%
#| label: cluster-close
import psutil

dask_ports = {int(client.scheduler.address.rsplit(":", 1)[1]), int(client.dashboard_link.split(":")[2].split("/")[0])}
worker_pids = [c.pid for c in psutil.Process().children(recursive=True)]
listening = [(pid, ip, port) for pid, ip, port in clusters.listening([psutil.Process().pid] + worker_pids)
             if pid in worker_pids or port in dask_ports]
print(f"{len(listening)} listening sockets: " + ", ".join(sorted({f'{ip}:{port}' for _, ip, port in listening})))
client.close()  # also stops the cluster that clusters.client started
print("cluster closed; processes left:", clusters.stray_children() or "none")

# %% [markdown]
# ## 7. Worker memory: a `KilledWorker` on purpose, and three fixes *(core)*
#
# Every distributed worker has a **memory limit**. The data it holds for later tasks is *managed*
# memory; everything else (the Python interpreter, libraries, the temporary arrays inside running
# tasks, memory not yet returned to the OS) is *unmanaged*. Even an idle worker uses a good part
# of a small limit; we measure how much below. The worker reacts at fixed fractions of its limit:
#
# | at | the worker |
# |---|---|
# | 60 % (managed) | starts **spilling** held data to disk (slow, but safe) |
# | 70 % (process) | spills more, oldest data first |
# | 80 % | **pauses**: runs no new tasks until memory drops |
# | 95 % | is **killed** by its nanny and restarted; its tasks are lost |
#
# Spilling can only move *held* data. Memory used *inside* running tasks cannot go to disk. A task
# needs its input chunk plus a few temporaries of the same size, and each thread runs one task.
# So a worker needs roughly
#
# > idle memory + threads × (a few × chunk size) + what it holds
#
# When a task kills its worker, the scheduler retries it elsewhere; after `allowed-failures` tries
# (default 3) it gives up with **`KilledWorker`**. We set it to 0 so the demonstration fails fast.
#
# The experiment: one worker with two threads (a small version of a node with a few GiB per core),
# and the deviation-from-the-mean computation from section 1, `(x - x.mean("time")).std("time")`,
# on an array larger than the whole worker.
#
# **Why the limit is computed, not typed.** What an idle worker uses depends on the machine, the
# operating system and the library versions: on two machines the same lab found idle workers a
# hundred MiB apart. A typed limit that leaves room on one machine leaves none on another: the worker
# sits above its pause line doing nothing, and the computation waits forever. So we measure the idle
# worker first, on a worker without a limit, and size the limit from that measurement plus a
# budget made from the chunk sizes the fixes use.

# %%
#| label: memory-setup
THREADS = 2
NT_MEM, NY, NX = 512, 256, 512  # 1 MiB per time step: a 512 MiB array, whatever the dataset size
FIX_CHUNK_MIB = 16  # the largest chunk the fixes use
FAIL_CHUNK_MIB = 64  # the chunk of the run that must fail


def field_like(time_chunk=None, latitude_chunk=None):
    """A stand-in for a gridded variable; chunked along time (default) or along latitude."""
    chunks = (time_chunk, NY, NX) if time_chunk else (NT_MEM, latitude_chunk, NX)
    data = da.random.default_rng(42).standard_normal((NT_MEM, NY, NX), chunks=chunks)
    return xr.DataArray(data, dims=("time", "latitude", "longitude"), name="field")


def chunk_mib(x):
    return np.prod(x.data.chunksize) * 8 / 2**20


def memory_client(limit_mib=None, threads=THREADS):
    """One worker process on this machine, with `threads` threads and a memory limit in MiB (None: none)."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):  # fail fast: no retries
        return clusters.client(n_workers=1, threads_per_worker=threads, local_only=True,
                               memory_limit=f"{limit_mib}MiB" if limit_mib else None, silence_logs=logging.CRITICAL)


def worker_memory_mib(c):
    """The worker's memory (RSS) as it reported it to the scheduler in its last heartbeat."""
    return sum(w["metrics"]["memory"] for w in c.scheduler_info(n_workers=-1)["workers"].values()) / 2**20


def warm_up(c, heartbeats=True):
    """Let the (new) worker import NumPy and friends, then wait for its heartbeats."""
    for attempt in range(3):  # just after a restart, the restart's notice may still cancel new work
        try:
            clusters.compute(field_like(time_chunk=32)[:2].std("time"), c, what="the warm-up", timeout=120)
            break
        except clusters.ClusterTrouble:
            if attempt == 2:
                raise
            time.sleep(1)
    time.sleep(1.5 if heartbeats else 0)


with memory_client(limit_mib=None) as probe:  # 1. the idle worker, measured without a limit
    warm_up(probe)
    idle_mib = worker_memory_mib(probe)

# 2. the budget: each thread runs a task on a chunk and ~3 temporaries of its size, and the worker
#    holds a few more chunks before it spills them: (threads × 4 + 4) chunks of the fixes' size
BUDGET_MIB = (THREADS * 4 + 4) * FIX_CHUNK_MIB
# 3. the rule: the worker pauses at 80 % of its limit, so limit = (idle + budget) / 0.8
LIMIT_MIB = clusters.worker_memory_limit(idle_mib, task_peak=4 * FIX_CHUNK_MIB, threads=THREADS,
                                         held=4 * FIX_CHUNK_MIB, below="pause")
mem_client = memory_client(LIMIT_MIB)
warm_up(mem_client)
course.table([
    {"": "idle worker (measured)", "MiB": f"{idle_mib:.0f}"},
    {"": f"budget: ({THREADS} threads × 4 + 4) × {FIX_CHUNK_MIB} MiB chunks", "MiB": f"{BUDGET_MIB}"},
    {"": "limit = (idle + budget) / 0.8", "MiB": f"{LIMIT_MIB}"},
    {"": "pauses at 80 % · killed at 95 %", "MiB": f"{0.8 * LIMIT_MIB:.0f} · {0.95 * LIMIT_MIB:.0f}"},
], align="lr")
print(f"1 worker, {THREADS} threads; the array: {field_like(32).nbytes / 2**20:.0f} MiB")

# %% [markdown]
# With this limit the fixes below fit under the pause line on any machine, and the failure still
# fails: chunks of 64 MiB need about threads × 4 × 64 MiB = 512 MiB inside running tasks, far more
# than the room left between the idle worker and the kill line.
#
# ### The failure
# With chunks of 64 MiB along time. Two samplers watch the worker while it runs:
# `distributed.diagnostics.MemorySampler` records what the worker reports to the scheduler (here:
# how much it spilled to disk), and `clusters.WorkerMemorySampler` reads the worker process's
# memory from the operating system 50 times a second, fast enough to see the moment it is killed.
# `clusters.compute` gives the run a deadline; when the worker is killed it raises `ClusterTrouble`,
# whose cause is Dask's `KilledWorker`.

# %%
#| label: killed-worker
rss_sampler, spill_sampler = clusters.WorkerMemorySampler(), MemorySampler()
runs = {}  # label -> outcome, seconds, result


def measured_run(label, make_result):
    start = time.perf_counter()
    try:
        with rss_sampler.sample(label), spill_sampler.sample(label, client=mem_client, measure="spilled", interval=0.1):
            value = clusters.compute(make_result(), mem_client, what=label)
        runs[label] = ("finished", time.perf_counter() - start, value)
    except clusters.ClusterTrouble as err:
        outcome = "KilledWorker" if isinstance(err.__cause__, KilledWorker) else "stopped"
        runs[label] = (outcome, time.perf_counter() - start, err)
        mem_client.restart()  # a fresh worker, nothing half-computed left on the cluster
        warm_up(mem_client, heartbeats=False)
    return runs[label]


x64 = field_like(time_chunk=FAIL_CHUNK_MIB)
FAILING = f"time, {chunk_mib(x64):.0f} MiB"
outcome, seconds, detail = measured_run(FAILING, lambda: (x64 - x64.mean("time")).std("time"))
if outcome == "KilledWorker":
    print(f"After {seconds:.1f} s: ClusterTrouble, caused by KilledWorker. What it says:")
    print(textwrap.fill(str(detail), 92, initial_indent="  ", subsequent_indent="  "))
    print(f"""
Why: two threads each ran a task on a {chunk_mib(x64):.0f} MiB chunk plus its temporaries, on top
of the {idle_mib:.0f} MiB idle worker and the chunks it held for the subtraction: past 95 % of
{LIMIT_MIB} MiB. Task memory cannot be spilled. The cluster was restarted: nothing is left running.""")
else:
    peak = max(b for _, b in rss_sampler.samples[FAILING]) / 2**20
    print(f"It {outcome} in {seconds:.1f} s this time, with the worker at up to {peak:.0f} MiB "
          f"(kill line: {0.95 * LIMIT_MIB:.0f} MiB).")
    print(detail if outcome == "stopped" else "")
    print("The nanny checks memory every 100 ms and can miss short peaks, more so on a busy machine, and memory "
          f"accounting differs between operating systems ({platform.system()}). Run the cell again.")

# %% [markdown]
# ### Three fixes
# 1. **Smaller chunks** (8 MiB): the same code; each task's temporaries shrink eightfold. The
#    chunks still wait for the mean, so the worker spills them to disk.
# 2. **Chunks that fit the question.** The reduction runs along `time`, so give each chunk the whole
#    time series of a few latitudes (`chunks={"time": -1, "latitude": 4}`; with real files, pass
#    the chunks when you open them). Mean, subtraction and std happen inside each chunk: nothing waits,
#    nothing spills. Rechunking an existing time-chunked array instead is an all-to-all shuffle that
#    itself needs memory, so choose the chunks when you read the data.
# 3. **Ask for what you mean: `x.std("time")`.** Subtracting a constant does not change a standard
#    deviation, so `(x - x.mean("time")).std("time")` is just `x.std("time")`, and Dask computes
#    that in **one** pass: each chunk is reduced to its count, mean and sum of squared deviations
#    from its own mean, and those partial results are combined exactly (the pairwise formula of
#    Chan, Golub and LeVeque). No chunk waits for a global mean, nothing spills, so the chunks can be
#    larger than in fix 1 (16 MiB here).

# %%
#| label: memory-fixes
x8 = field_like(time_chunk=8)
xs = field_like(latitude_chunk=4)
x16 = field_like(time_chunk=FIX_CHUNK_MIB)
fixes = {
    f"time, {chunk_mib(x8):.0f} MiB": lambda: (x8 - x8.mean("time")).std("time"),  # 1. smaller chunks
    f"latitude, {chunk_mib(xs):.0f} MiB": lambda: (xs - xs.mean("time")).std("time"),  # 2. chunks for the question
    f"x.std(), {chunk_mib(x16):.0f} MiB": lambda: x16.std("time"),  # 3. one pass
}
for label, make in fixes.items():
    measured_run(label, make)

spill_frame = spill_sampler.to_pandas(align=True)
peak_mib = {label: max(b for _, b in rss_sampler.samples[label]) / 2**20 for label in runs}
course.table([{"chunks": label, "outcome": outcome, "s": f"{seconds:.1f}", "peak": f"{peak_mib[label]:.0f}",
               "spilled": f"{spill_frame[label].max() / 2**20:.0f}",
               "answer": f"{float(value.mean()):.4f}" if outcome == "finished" else "-"}
              for label, (outcome, seconds, value) in runs.items()], align="llrrrr")
print(f"peak and spilled in MiB; answer: the mean std, 1 for this noise")
print(f"limit {LIMIT_MIB} MiB = (idle {idle_mib:.0f} + budget {BUDGET_MIB}) / 0.8")
print(course.hardware())

# %%
#| label: fig-memory-timeline
#| fig-cap: "Memory of the worker process over time (read from the OS 50 times a second) for the run that was killed and for the three fixes, against the worker's limit, which the lab computed from the measured idle worker."
#| fig-alt: "Line chart of worker process memory in MiB against seconds, one line per run, with dashed horizontal lines for the limit, the 95 percent kill threshold, the 80 percent pause threshold and the idle worker; the killed run ends early near the kill line, the fixes stay below it."
fig, ax = plt.subplots(figsize=(10, 5))
for label in runs:
    t, b = np.array(rss_sampler.samples[label]).T
    alive = b > 0  # after a kill, until the worker is back, there is no worker process to measure
    ax.plot(t[alive], b[alive] / 2**20, label=label + (" (killed)" if runs[label][0] == "KilledWorker" else ""))
lines = ((LIMIT_MIB, "limit", "-"), (0.95 * LIMIT_MIB, "killed at 95 %", "--"), (0.8 * LIMIT_MIB, "paused at 80 %", ":"),
         (idle_mib, "idle worker", "-."))
for level, name, style in lines:
    ax.axhline(level, color="#555555", linestyle=style, linewidth=1)
    ax.text(1.0, level, name + " ", transform=ax.get_yaxis_transform(), ha="right", va="top" if "95" in name else "bottom",
            fontsize=11, color="#555555")
for label, (outcome, seconds, _) in runs.items():
    if outcome == "KilledWorker":
        t, b = np.array(rss_sampler.samples[label]).T
        ax.annotate("✕ killed", (t[b.argmax()], b.max() / 2**20), xytext=(8, -4), textcoords="offset points",
                    ha="left", va="top", fontsize=13)
ax.set_ylim(0, max([LIMIT_MIB] + list(peak_mib.values())) * 1.08)
ax.set_xlabel("seconds")
ax.set_ylabel("worker memory (MiB)")
ax.legend(loc="lower center", fontsize=11, ncols=2)
fig.suptitle(course.hardware(), fontsize=10)
fig.tight_layout()

# %% [markdown]
# How to read it: the failing run climbs to the kill line within seconds, and its line ends
# there: the nanny killed the process. (Look at the table: it spilled what it held, and still
# died, because the memory *inside* the running tasks cannot be spilled.) The fixes stay below the
# pause line, or touch it briefly and recover.
#
# ### A warning: do not hand-roll the one-pass formula
# A tempting "streaming" standard deviation is `sqrt(mean(x²) − mean(x)²)`: two running sums, one
# pass. In floating point it subtracts two large, nearly equal numbers, and the digits that
# matter cancel. Temperatures are the worst case: near 280 K, `x²` is about 78 000 while the variance
# is a few K², and float32 (how many gridded files store data) keeps only about seven digits.
# Measured on a year of 12-hourly float32 fields: a 2 m temperature that varies by about 8 K, and
# a sea-surface temperature near 290 K that varies by 0.3 K; the error is relative to the float64 answer.

# %%
#| label: std-trap
trap_rng = np.random.default_rng(9)
trap_rows = []
for name, mean_k, spread_k in (("air", 280.0, 8.0), ("sea surface", 290.0, 0.3)):
    t = (mean_k + spread_k * trap_rng.standard_normal((730, 32, 64))).astype(np.float32)
    exact = t.astype(np.float64).std(axis=0)
    x = xr.DataArray(da.from_array(t, chunks=(73, 32, 64)), dims=("time", "latitude", "longitude"))
    for formula, result in (("√(E[x²] − E[x]²)", np.sqrt((x * x).mean("time") - x.mean("time") ** 2)),
                            ("x.std()", x.std("time"))):
        error = np.abs(result.compute(scheduler="threads").values - exact) / exact
        trap_rows.append({"float32 field": f"{name}, {mean_k:g} ± {spread_k:g} K", "formula": formula,
                          "typical error": f"{np.nanmedian(error):.0e}", "worst": f"{np.nanmax(error):.0e}"})
course.table(trap_rows, align="llrr")
print("relative error against the float64 answer; E[·] is the mean over time")

# %% [markdown]
# The hand-rolled formula loses several of float32's seven digits for the air temperature, and
# most of them for the sea surface; with a smaller spread still, the difference can even come out
# negative, and its square root is NaN. Dask's `std` stays close to float32's last digit. If you
# ever need the two running sums yourself, subtract a rough constant first (say 273.15 K), or
# accumulate in float64.
#
# What to do when *your* job dies with `KilledWorker`:
# 1. Open the dashboard and watch worker memory: is it data held (blue), spilled (orange), or
#    unmanaged (grey, i.e. inside tasks)?
# 2. Compute the budget: idle + threads × a few × chunk size, and remember that the worker pauses at
#    80 % of its limit. Use smaller chunks, or fewer threads per worker with more memory each
#    (`--nthreads`, `--memory-limit`).
# 3. Look at the graph: does something force chunks to wait (a mean that feeds back, a sort, a
#    rechunk)? Chunk along the dimension you reduce over, or use a one-pass reduction such as `std`.

# %%
#| label: memory-close
mem_client.close()
print("memory cluster closed; processes left:", clusters.stray_children() or "none")

# %% [markdown]
# ### Exercise 4: a memory budget (8 min)
# (a) Your node has 4 GiB of memory per worker and you run 4 threads per worker; you started one
# worker and measured it idle at 300 MiB, as this lab did. With the lab's rule (the worker pauses at
# 80 % of its limit; the budget is threads × 4 + 4 chunks), what is the largest chunk you should use?
# (b) On this lab's worker (`memory_client(LIMIT_MIB)`), run `(x - x.mean("time")).std("time")` with
# 16 MiB time chunks, the size the budget was made for. Predict first: will it finish, and will it spill?

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# (a) The pause line is 0.8 × 4096 = 3277 MiB; take away the idle 300 MiB and 2977 MiB are left for
# 4 × 4 + 4 = 20 chunks: about 150 MiB each. Choose 128 MiB and keep a margin.
# (b) It finishes: two threads with 16 MiB tasks need about 2 × 4 × 16 = 128 MiB, inside the budget.
# It spills, because every chunk must wait for the global mean before the subtraction, and the
# 512 MiB array does not fit. Fix 1 with 8 MiB chunks spilled for the same reason.
# ```python
# with memory_client(LIMIT_MIB) as c:
#     x = field_like(time_chunk=16)
#     print(clusters.compute((x - x.mean("time")).std("time"), c, what="exercise 4").mean().item())
# ```
# </details>

# %% [markdown]
# ## Key points
# - A Dask collection is a grid of chunks; one task per chunk per operation. Chunks are the unit
#   of parallelism and of memory.
# - Nothing runs until you `compute()` (or `persist()`); `.visualize()` shows the task graph.
# - `delayed` turns your own functions into a graph; futures (`submit`, `map`, `as_completed`,
#   `scatter`) run work as soon as you hand it over.
# - Threads for NumPy-like code that releases the GIL, processes for pure Python, distributed for
#   the dashboard and for more than one machine.
# - Watch the dashboard; save a performance report (`performance_report`) to share what happened.
# - Worker memory ≈ idle + threads × a few × chunk size + held data, and the worker pauses at 80 % of
#   its limit. Measure the idle worker; do not guess it. `KilledWorker` means the budget was exceeded:
#   smaller chunks, chunks along the reduced dimension, or a one-pass reduction such as `std`.
# - Give every wait on a cluster a deadline (`result(timeout=...)`, `clusters.compute`).
# - Avoid tiny tasks, persist what you reuse, and compute related results in one `dask.compute`.

# %% [markdown]
# ## Checks
# Run by `pytest labs/04_dask.py`; the slides never show this cell.

# %% tags=["checks"]
def test_dask_array_matches_numpy():
    data = np.random.default_rng(7).standard_normal((60, 20, 30))
    lazy = da.from_array(data, chunks=(7, 20, 30))
    np.testing.assert_allclose(lazy.mean(axis=0).compute(), data.mean(axis=0))
    np.testing.assert_allclose((lazy - lazy.mean(axis=0)).std(axis=0).compute(), data.std(axis=0))


def test_one_pass_std_equals_two_pass():
    data = xr.DataArray(np.random.default_rng(8).standard_normal((50, 4, 5)), dims=("time", "latitude", "longitude"))
    lazy = data.chunk(time=7)
    np.testing.assert_allclose(lazy.std("time").compute(), (data - data.mean("time")).std("time"))


def test_hand_rolled_std_loses_digits_and_dask_std_does_not():
    by = {(r["float32 field"], r["formula"]): float(r["typical error"]) for r in trap_rows}
    for data in {d for d, _ in by}:
        assert by[data, "x.std()"] < 1e-5, by
        assert by[data, "√(E[x²] − E[x]²)"] > 10 * by[data, "x.std()"], by


def test_soup_is_the_same_soup():
    assert dask_soup == serial_soup == soup.cook_serially()
    assert sorted(finished) == sorted(["boil water", "fry bacon", "dice carrots", "rinse peas"]
                                      + [f"chop {v}" for v in soup.VEGETABLES])


def test_every_scheduler_gives_pi():
    for key, value in scheduler_pis.items():
        assert abs(value - math.pi) < 1e-9, key


def test_scatter_gives_the_same_answer():
    np.testing.assert_allclose(no_scatter, with_scatter)
    np.testing.assert_allclose(with_scatter, np.quantile(big, quantiles))


def test_sums_and_statistics_are_right():
    n = 4000 * 4000  # uniform numbers in [0, 1): mean n/2, standard deviation sqrt(n/12)
    assert all(abs(s - n / 2) < 6 * math.sqrt(n / 12) for s in chunk_sums.values()), chunk_sums
    assert np.allclose(separately, together) and np.allclose(together, persisted)


def test_dashboards_bind_localhost_only():
    if cluster is None:  # we joined a batch job's cluster: its addresses are the job's to choose
        return
    assert listening, "found no listening sockets of the cluster"
    assert dask_ports <= {port for _, _, port in listening}
    assert {ip for _, ip, _ in listening} == {"127.0.0.1"}, listening


def test_performance_report_and_screenshots():
    assert report_path.exists() and report_path.stat().st_size > 10_000
    if clusters.find_browser() is not None:
        assert set(shot_files) == {status_png, workers_png}, shot_note
        assert all(p.stat().st_size > 10_000 for p in shot_files)


def test_killed_worker_caught_and_fixed():
    if platform.system() == "Linux":
        # killed, or (rarely, on a very busy machine) over the kill line between two checks of the nanny
        assert runs[FAILING][0] == "KilledWorker" or peak_mib[FAILING] > 0.95 * LIMIT_MIB
    for label in fixes:
        outcome, _, value = runs[label]
        assert outcome == "finished", label
        assert abs(float(value.mean()) - 1.0) < 0.02, label  # std of standard-normal noise
        assert peak_mib[label] < LIMIT_MIB, label


def test_memory_limit_comes_from_the_measured_idle_worker():
    assert 50 < idle_mib < 2000, idle_mib  # a worker process with NumPy and Dask loaded
    assert 0.8 * LIMIT_MIB >= idle_mib + BUDGET_MIB > 0.8 * (LIMIT_MIB - 1)


def test_nothing_left_running():
    assert client.status == "closed" and mem_client.status == "closed"
    assert cluster is None or cluster.status.name == "closed"
    assert clusters.stray_children() == []


course.run_checks(globals())
