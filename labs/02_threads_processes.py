# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Threads, processes and the GIL
#
# **Teaching:** 40 min · **Exercises:** 25 min
#
# ## Objectives
# - Explain why pure-Python code gets no faster in threads but does in processes (the GIL), and
#   why NumPy code and waiting (I/O) do get faster in threads.
# - Use `concurrent.futures` (`map`, `submit`, `as_completed`), `multiprocessing` and `joblib`.
# - Recognise *map* and *reduce*, and a problem that cannot be parallelised.
# - Measure what parallelism costs (starting workers, tiny tasks, copying data) and find the task
#   size above which it pays off.
# - Know what free-threaded Python changes, and write code that works with the *spawn* start method
#   (macOS, Windows, Jupyter).
#
# ## Threads and processes
# A **process** is a running program with its own memory. A **thread** is a line of execution inside
# a process; all threads of a process share its memory. Starting a thread is cheap and it sees your
# arrays for free; starting a process costs more, and whatever it needs must be copied to it
# (*pickled*, sent through a pipe, unpickled).
#
# So why not always use threads? Because of the **GIL**, CPython's *global interpreter lock*: only
# the thread that holds it may run Python bytecode. Python code in two threads takes turns; it does
# not run side by side. Code that does not touch Python objects (NumPy's compiled loops, waiting for
# a disk or a network, `time.sleep`) *releases* the GIL while it works, so other threads can run.

# %%
import asyncio
import functools
import inspect
import math
import multiprocessing
import operator
import os
import pickle
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from contextlib import nullcontext

import matplotlib.pyplot as plt
import numpy as np

import course
from course import bench, pi

# One switch for the start method of every process pool in this lab: the platform's default, or the
# one named in $COURSE_START_METHOD (fork, spawn or forkserver). `COURSE_START_METHOD=spawn pytest ...`
# tests the lab the way macOS and Windows run it (the course's CI script, `.ci/run`, does so for this lab).
CTX = multiprocessing.get_context(os.environ.get("COURSE_START_METHOD") or None)

SCALE = {"small": 1, "workshop": 10}.get(course.size(), 100)
CORES = course.usable_cores()
WORKERS = [w for w in (1, 2, 4, 8, 16, 32, 64) if w <= max(2 * CORES, 2)]
CHUNKS = max(24, 4 * WORKERS[-1])  # π is cut into this many chunks; every worker count divides the work
print(course.hardware())
print(f"process start method: {CTX.get_start_method()}; worker counts tried: {WORKERS}")

# %% [markdown]
# ## 1. Shock and horror *(core)*
# The π darts from lab 01, cut into chunks. Chunk *i* always starts its random numbers from
# `pi.chunk_seed(base, i)`, so every run below counts the same hits whichever worker does which chunk.
# `pi.hits_of_chunk` takes one task `(kind, n, base, i)` and returns its hits; `kind` is `"python"`
# (a plain loop) or `"numpy"`.
# We run the chunks one after another, in a pool of threads, and in a pool of processes:

# %%
print(inspect.getsource(pi.count_hits_python))

# %%
N = {"python": 1_000_000 * SCALE, "numpy": 20_000_000 * SCALE}


def run(kind, executor, workers):
    """Best of three times and the total hits of N[kind] darts on `workers` threads or processes."""
    work = pi.tasks(kind, N[kind], CHUNKS)
    pool = {"serial": nullcontext, "threads": ThreadPoolExecutor,
            "processes": functools.partial(ProcessPoolExecutor, mp_context=CTX)}[executor]
    with (pool() if executor == "serial" else pool(max_workers=workers)) as p:
        mapper = map if p is None else p.map
        hits = sum(mapper(pi.hits_of_chunk, work))  # warm-up: starts the workers
        seconds = bench.best(lambda: sum(mapper(pi.hits_of_chunk, work)), repeat=3, warmup=0)
    return seconds, hits


results = {(kind, "serial", 1): run(kind, "serial", 1) for kind in N}
for kind in N:
    for executor in ["threads", "processes"]:
        for w in WORKERS:
            results[kind, executor, w] = run(kind, executor, w)
speedup = {key: results[key[0], "serial", 1][0] / t for key, (t, _) in results.items()}

# %%
#| label: shock-table
course.table([{f"π darts, {CHUNKS} chunks": executor + ("" if w == 1 else f" ({w})"),
               **{f"{label}": f"{results[k, executor, w][0]:.3f} s · {speedup[k, executor, w]:.2f}×"
                  for k, label in [("python", "Python loop"), ("numpy", "NumPy")]}}
              for executor, w in [("serial", 1), ("threads", CORES), ("processes", CORES)]], align="lrr")
print(f"({N['python']:,} darts with the loop, {N['numpy']:,} with NumPy; best of 3)")
print(course.hardware())
print(bench.load())

# %%
#| label: fig-shock
#| fig-cap: "The same π chunks run serially, in a pool of threads and in a pool of processes (one worker per core), measured on this machine."
#| fig-alt: "Two groups of three bars of speed-up over serial. For the pure-Python loop, threads stay near 1 while processes are faster. For NumPy, both threads and processes are faster than serial."
fig, ax = plt.subplots(figsize=(9, 5))
for j, executor in enumerate(["serial", "threads", "processes"]):
    w = 1 if executor == "serial" else CORES
    values = [speedup[k, executor, w] for k in N]
    bars = ax.bar(np.arange(2) + (j - 1) * 0.27, values, 0.27, label=f"{executor} ({w})")
    ax.bar_label(bars, [f"{v:.2f}×" for v in values], fontsize=12)
ax.set_xticks([0, 1], ["pure-Python loop", "NumPy"])
ax.set_ylabel("speed-up over serial")
ax.axhline(CORES, color="#000000", ls=":", lw=1)
ax.set_ylim(0, 1.2 * max(CORES, *(speedup[k, e, CORES] for k in N for e in ["threads", "processes"])))
ax.legend(loc="upper left", ncols=3, fontsize=11)
bench.stamp(fig, bench.load())

# %% [markdown]
# **The shock:** the pure-Python loop is no faster in threads; it can even be slower, because the
# threads keep handing the GIL to each other. In processes it is faster: each process has its own
# interpreter and its own GIL.
#
# **The relief:** NumPy in threads *is* faster. NumPy releases the GIL inside its compiled loops
# (and while its random generators fill arrays), so several threads really run at once, and they
# share memory, so nothing is copied. Most of the scientific Python stack (NumPy, SciPy, Numba,
# scikit-image, many I/O libraries) releases the GIL in its heavy parts: this is why Dask uses
# threads by default for arrays.

# %% [markdown]
# ## 2. Scaling: threads against processes *(core)*
# Now all worker counts, up to twice the number of cores. Beyond the core count, more workers only
# take turns on the same cores.

# %%
#| label: fig-scaling
#| fig-cap: "Speed-up against number of workers for the π chunks, threads against processes, measured on this machine."
#| fig-alt: "Line chart of speed-up against workers. The dotted line of perfect scaling stops rising at the number of cores. Pure-Python threads stay flat near 1; pure-Python processes and NumPy threads and processes rise up to the core count and then level off."
fig, ax = plt.subplots(figsize=(9, 5.5))
styles = {("python", "threads"): "o--", ("python", "processes"): "o-", ("numpy", "threads"): "s--",
          ("numpy", "processes"): "s-"}
for (kind, executor), style in styles.items():
    ax.plot(WORKERS, [speedup[kind, executor, w] for w in WORKERS], style, ms=9, lw=2,
            label=f"{'Python loop' if kind == 'python' else 'NumPy'}, {executor}")
ax.plot(WORKERS, np.minimum(WORKERS, CORES), ":", color="#000000", label=f"perfect on {CORES} cores")
ax.set(xscale="log", xlabel="workers", ylabel="speed-up over serial")
ax.minorticks_off()
ax.set_xticks(WORKERS, [str(w) for w in WORKERS])
ax.legend(fontsize=11)
bench.stamp(fig, bench.load())

# %% [markdown]
# ### Exercise 1: threads or processes? (5 min)
# For each, predict whether a thread pool speeds it up, then check one with `ThreadPoolExecutor`:
# (a) `sum(i * i for i in range(10**6))`, (b) `np.sort(np.random.random(10**7))`,
# (c) reading 100 files from a network drive, (d) a pure-Python flood model time step.
#
# <details><summary>Solution</summary>
#
# (a) No: pure Python holds the GIL; use processes. (b) Yes: NumPy's sort releases the GIL.
# (c) Yes: waiting for I/O releases the GIL (section 3), and threads are cheap. (d) No, unless it is
# rewritten with NumPy or compiled with Numba (lab 03); otherwise processes, one scenario each.
# </details>

# %% [markdown]
# ## 3. Waiting is different: I/O-bound work *(core)*
# Downloading files, querying a database or reading a slow disk is mostly *waiting*, and a waiting
# thread releases the GIL. We simulate 16 downloads of 50 ms each with `time.sleep`, then with
# `asyncio`, where one thread interleaves many waits: each `await` hands control back to the event
# loop, which resumes whichever wait has finished.

# %%
DOWNLOADS, DELAY = 16, 0.05


async def fetch(i, delay=DELAY):
    await asyncio.sleep(delay)  # a real program would await an HTTP client or a database here
    return i


async def fetch_all(n=DOWNLOADS):
    return await asyncio.gather(*(fetch(i) for i in range(n)))


def run_async(coroutine):
    """asyncio.run(), also inside Jupyter, whose own event loop already runs in the main thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as helper:  # run our event loop in a helper thread
        return helper.submit(asyncio.run, coroutine).result()


def download_with_threads(workers):
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(pi.sleep_then_return, [DELAY] * DOWNLOADS, range(DOWNLOADS)))


io_workers = [1, 2, 4, 8, 16]
io_times = {w: bench.best(download_with_threads, w, repeat=2, warmup=0) for w in io_workers}
io_async = bench.best(lambda: run_async(fetch_all()), repeat=2, warmup=0)
io_results = (download_with_threads(8), run_async(fetch_all()))

# %%
#| label: fig-io-bound
#| fig-cap: "Sixteen simulated downloads of 50 ms each: threads help far beyond the number of cores, and asyncio does it with one thread."
#| fig-alt: "Line chart of total time against number of threads, 1 to 16, both axes logarithmic: the time halves with every doubling of threads, well past the number of cores; a horizontal line shows asyncio at about the time of 16 threads."
fig, ax = plt.subplots(figsize=(9, 4.2))
ax.plot(io_workers, [io_times[w] for w in io_workers], "o-", ms=9, lw=2, label="thread pool")
ax.axhline(io_async, color="#D55E00", ls="--", lw=2, label="asyncio, one thread")
ax.axvline(CORES, color="#000000", ls=":", lw=1, label=f"{CORES} cores")
ax.set(xscale="log", yscale="log", xlabel="threads", ylabel="seconds for all downloads")
ax.minorticks_off()
ax.set_xticks(io_workers, [str(w) for w in io_workers])
ax.yaxis.set_major_formatter(lambda v, _: f"{v:g}")
ax.legend()
bench.stamp(fig)

# %% [markdown]
# Waiting uses no core, so sixteen threads wait at once on a machine with far fewer cores.
# `asyncio` does the same with one thread and no locks; it needs libraries written for it
# (`aiohttp`, `asyncpg`, …). Threads work with any library that releases the GIL while it waits.

# %% [markdown]
# ## 4. The tools *(core)*
# ### `concurrent.futures`
# `pool.map(f, items)` returns results in the order of the items. `pool.submit(f, *args)` returns a
# *future* at once, a placeholder for a result that is not there yet; `as_completed(futures)` yields
# them in the order they finish, which is what a progress report wants.

# %%
#| label: as-completed
delays = [0.3, 0.1, 0.2]
with ThreadPoolExecutor(3) as pool:
    futures = {pool.submit(pi.sleep_then_return, d, f"task {i} ({d} s)"): i for i, d in enumerate(delays)}
    finished = [f.result() for f in as_completed(futures)]
print("submitted:", ", ".join(f"task {i}" for i in range(len(delays))))
print("finished: ", ", ".join(finished))

# %% [markdown]
# ### `multiprocessing` and `joblib`
# `multiprocessing.Pool` is the older interface (`map`, `imap_unordered`, `starmap`). `joblib`
# (used by scikit-learn) switches between threads and processes with one argument; its default
# process backend, *loky*, keeps its workers alive between calls and can send functions defined in a
# notebook (it pickles them with *cloudpickle*).

# %%
#| label: tools-table
from joblib import Parallel, delayed
from joblib.externals.loky import get_reusable_executor

work = pi.tasks("python", N["python"], CHUNKS)
with CTX.Pool(CORES) as mp_pool:
    tool_hits = {"multiprocessing.Pool.map": sum(mp_pool.map(pi.hits_of_chunk, work)),
                 "multiprocessing.Pool.imap_unordered": sum(mp_pool.imap_unordered(pi.hits_of_chunk, work))}
    tool_times = {"multiprocessing.Pool.map": bench.best(lambda: sum(mp_pool.map(pi.hits_of_chunk, work)), repeat=3)}
for name, options in {"joblib, threads": {"prefer": "threads"}, "joblib, loky processes": {"backend": "loky"}}.items():
    run_joblib = lambda: sum(Parallel(n_jobs=CORES, **options)(delayed(pi.hits_of_chunk)(t) for t in work))
    tool_hits[name] = run_joblib()  # the first call also starts loky's workers
    tool_times[name] = bench.best(run_joblib, repeat=3, warmup=0)
get_reusable_executor().shutdown(wait=True)  # loky would keep its workers for later calls

serial_python = results["python", "serial", 1][0]
course.table([{f"pure-Python π, {CORES} workers": name, "best of 3": f"{t:.3f} s", "× serial": f"{serial_python / t:.2f}×"}
              for name, t in tool_times.items()], align="lrr")
print(f"{N['python']:,} darts in {CHUNKS} chunks")
print(course.hardware())
print(bench.load())

# %% [markdown]
# ### Exercise 2: a progress report (10 min)
# Submit the `work` chunks to a process pool with `pool.submit(pi.hits_of_chunk, task)` and
# print "*k* of *n* chunks done" as each finishes, then the π estimate.

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# with ProcessPoolExecutor(CORES, mp_context=CTX) as pool:
#     futures = [pool.submit(pi.hits_of_chunk, task) for task in work]
#     hits = 0
#     for k, future in enumerate(as_completed(futures), 1):
#         hits += future.result()
#         if k % 8 == 0 or k == len(futures):
#             print(f"{k} of {len(futures)} chunks done")
# print(f"π ≈ {pi.estimate(hits, N['python']):.5f}")
# ```
# </details>

# %% [markdown]
# ## 5. Patterns: map, reduce, and what cannot be parallelised *(core)*
# - **Map** (*embarrassingly parallel*): the same function on many independent inputs. Our chunks,
#   the files of a dataset, the members of an ensemble.
# - **Reduce**: combine many results into one, like summing the hits. Addition is associative, so
#   the partial sums can be added in pairs, in a tree: *n* numbers take log₂ *n* rounds, and the
#   pairs of each round are independent of each other.

# %%
#| label: tree-reduce
partial = [pi.hits_of_chunk(t) for t in pi.tasks("numpy", 1_000_000, 16)]
rounds = [partial]
with ThreadPoolExecutor(CORES) as pool:
    while len(rounds[-1]) > 1:
        level = rounds[-1]
        pairs = [level[i:i + 2] for i in range(0, len(level), 2)]
        rounds.append(list(pool.map(pi.total_of, pairs)))
for r, level in enumerate(rounds):
    print(f"round {r}: {len(level):2d} value{'s' if len(level) > 1 else ''}")
print(f"tree: {rounds[-1][0]:,}   functools.reduce: {functools.reduce(operator.add, partial):,}")

# %% [markdown]
# - **Not parallelisable**: a differential equation integrated step by step. Below, Newton's law of
#   cooling, $dT/dt = -k (T - T_\text{room})$, with Euler steps: each step needs the temperature of
#   the step before, so step 1000 cannot start before step 999 is done. This chain *is* the critical
#   path of lab 01, and no number of cores shortens it. What does parallelise is running *many* such
#   integrations: parameters, scenarios, polders, ensemble members: a map again.

# %%
#| label: ode
def cool(T0, k=0.1, room=20.0, dt=0.01, steps=10_000):
    T = T0
    for _ in range(steps):
        T = T + dt * (-k * (T - room))  # needs the T of the previous step
    return T


exact = 20.0 + (90.0 - 20.0) * math.exp(-0.1 * 100.0)
print(f"coffee at 90 °C after 100 min: Euler {cool(90.0):.3f} °C, exact {exact:.3f} °C")
ensemble = {T0: cool(T0) for T0 in (60.0, 75.0, 90.0)}  # independent runs: could be a pool.map
print("ensemble:", ", ".join(f"{T0:.0f} → {T:.2f} °C" for T0, T in ensemble.items()))

# %% [markdown]
# ## 6. Overhead: parallel is not always faster *(core)*
# Parallelism costs something every time: starting workers, sending each task and its data to a
# worker, sending the result back. It pays off only when each task carries enough work.
#
# ### Starting workers
# How long does a pool of processes take to start and run one trivial task? *fork* (Linux's default
# up to Python 3.13) copies the running process; *spawn* (macOS, Windows) starts a fresh Python that
# imports what it needs; *forkserver* (Linux's default from Python 3.14) forks from a small server
# process started once.

# %%
#| label: startup-table
def pool_startup(method, workers=CORES):
    start = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        list(pool.map(pi.nothing, range(workers)))
    return time.perf_counter() - start


startup = {m: min(pool_startup(m) for _ in range(2)) for m in multiprocessing.get_all_start_methods()}
with ThreadPoolExecutor(CORES) as pool:
    start = time.perf_counter()
    list(pool.map(pi.nothing, range(CORES)))
    startup["threads"] = time.perf_counter() - start
course.table([{f"start {CORES} workers, one empty task each": method, "time": f"{t * 1e3:.1f} ms"}
              for method, t in startup.items()], align="lr")
print(course.hardware())

# %% [markdown]
# ### Tasks that are too small
# 32 tasks of *s* darts each, for *s* from a hundred to a million: serially, in a thread pool and in
# a process pool (already started). Plotted is the time per task.

# %%
SIZES = [100, 1_000, 10_000, 100_000, 1_000_000]
TASKS = 32


def per_task(mapper, size):
    items = [("numpy", size, 0, i) for i in range(TASKS)]
    return bench.best(lambda: list(mapper(pi.hits_of_chunk, items)), repeat=3) / TASKS


with ProcessPoolExecutor(CORES, mp_context=CTX) as procs, ThreadPoolExecutor(CORES) as threads:
    overhead = {
        "serial": [per_task(map, s) for s in SIZES],
        f"{CORES} threads": [per_task(threads.map, s) for s in SIZES],
        f"{CORES} processes": [per_task(procs.map, s) for s in SIZES],
    }


def crossover(serial, pool):
    """Task size (log-interpolated) above which the pool's time per task drops below the serial one."""
    ratio = np.log(np.array(pool) / np.array(serial))  # > 0 where the pool is slower
    for i in range(len(SIZES) - 1):
        if ratio[i] > 0 >= ratio[i + 1]:
            f = ratio[i] / (ratio[i] - ratio[i + 1])
            return float(np.exp(np.log(SIZES[i]) + f * (np.log(SIZES[i + 1]) - np.log(SIZES[i]))))
    return None


# %%
#| label: overhead-crossover
course.table([{"darts/task": f"{size:,}", **{name: f"{overhead[name][j] * 1e3:.3f} ms" for name in overhead}}
              for j, size in enumerate(SIZES)], align="r" * (len(overhead) + 1))
print(f"time per task ({TASKS} tasks), best of 3")
for name in list(overhead)[1:]:
    x = crossover(overhead["serial"], overhead[name])
    if x is None:
        print(f"{name}: no crossover between {SIZES[0]:,} and {SIZES[-1]:,} darts per task")
    else:
        work_ms = np.interp(np.log(x), np.log(SIZES), overhead["serial"]) * 1e3
        print(f"{name} pay off above about {x:,.0f} darts per task (≈ {work_ms:.2f} ms of work)")
print(course.hardware())
print(bench.load())

# %%
#| label: fig-overhead
#| fig-cap: "Time per task against task size: serially, in a thread pool and in a process pool. Below the crossover the pool only adds overhead."
#| fig-alt: "Log-log chart of milliseconds per task against darts per task. For small tasks the process pool is slowest, a flat floor of overhead; as tasks grow, the serial line rises past it and the pools become faster."
fig, ax = plt.subplots(figsize=(9, 5.5))
for (name, times), style in zip(overhead.items(), ["o-", "s--", "^-"]):
    ax.plot(SIZES, np.array(times) * 1e3, style, ms=9, lw=2, label=name)
for name, colour in zip(list(overhead)[1:], ["#E69F00", "#009E73"]):
    x = crossover(overhead["serial"], overhead[name])
    if x:
        ax.axvline(x, color=colour, ls=":", lw=2, label=f"{name} pay off")
ax.set(xscale="log", yscale="log", xlabel="darts per task", ylabel="ms per task")
ax.legend()
bench.stamp(fig, bench.load())

# %% [markdown]
# Each task sent to a process is pickled, written to a pipe, read and unpickled by the worker, and
# its result travels back the same way: a fixed cost per task, whatever the task does (the floor of
# the process pool's line above).
# Threads skip the copying but not the hand-over. The cure for tiny tasks is **bigger tasks**: group
# items into chunks (`pool.map(f, items, chunksize=100)`, Dask chunks, one file per task).
#
# ### Sending data
# A task's arguments travel by pickle. Here arrays of growing size go to a worker that just sums
# them, against summing them where they are:

# %%
#| label: pickling-table
MB_SIZES = [1, 10, 100] + ([1000] if SCALE > 1 else [])
with ProcessPoolExecutor(1, mp_context=CTX) as proc, ThreadPoolExecutor(1) as thread:
    proc.submit(pi.nothing, 0).result()
    transfer = {}
    for mb in MB_SIZES:
        a = np.ones(mb * 2**20 // 8)
        t_here = bench.best(pi.array_sum, a, repeat=3)
        t_pickle = bench.best(pickle.dumps, a, repeat=3)
        t_thread = bench.best(lambda: thread.submit(pi.array_sum, a).result(), repeat=3)
        t_proc = bench.best(lambda: proc.submit(pi.array_sum, a).result(), repeat=3)
        transfer[mb] = (t_here, t_pickle, t_thread, t_proc, proc.submit(pi.array_sum, a).result())
        del a
course.table([{"array": f"{mb} MB", "sum here": f"{t[0] * 1e3:.2f} ms", "pickle.dumps": f"{t[1] * 1e3:.2f} ms",
               "to a thread": f"{t[2] * 1e3:.2f} ms", "to a process": f"{t[3] * 1e3:.2f} ms"}
              for mb, t in transfer.items()], align="rrrrr")
print(f"a process receives about {MB_SIZES[-1] / transfer[MB_SIZES[-1]][3]:.0f} MB/s here")
print(course.hardware())
print(bench.load())

# %% [markdown]
# Summing an array is far quicker than shipping it to another process. Send work to the data, not
# data to the work: pass a file name or a slice to read, not the array itself; or share memory
# (`multiprocessing.shared_memory`, memory-mapped files, Dask's workers that keep their chunks).
#
# ### Exercise 3: chunk the tiny tasks (10 min)
# Take the 100-dart tasks above and send them to the process pool with `procs.map(..., chunksize=8)`
# (open a new pool). How does the time per task change, and why?
#
# <details><summary>Solution</summary>
#
# ```python
# items = [("numpy", 100, 0, i) for i in range(TASKS)]
# with ProcessPoolExecutor(CORES, mp_context=CTX) as procs:
#     print(bench.best(lambda: list(procs.map(pi.hits_of_chunk, items, chunksize=8))) / TASKS)
# ```
# It drops several-fold: eight tasks travel in one message, so the per-message cost is paid once
# per eight tasks. The work per task is unchanged; only the overhead shrinks.
# </details>

# %% [markdown]
# ## 7. Free-threaded Python *(optional)*
# Since Python 3.13 there is a second build of CPython without the GIL, *free-threaded* Python
# (`python3.13t`, `python3.14t`; from 3.14 officially supported). In it, pure-Python code in threads
# runs on several cores at once, so section 1's shock goes away. The price: single-threaded code
# runs somewhat slower, and extension modules must be built for it (NumPy, Cython and others now
# are). Your code can ask which build it runs on:

# %%
#| label: gil-status
gil_enabled = getattr(sys, "_is_gil_enabled", lambda: True)()
build = "free-threaded" if sysconfig.get_config_var("Py_GIL_DISABLED") else "standard (with the GIL)"
print(f"Python {sys.version.split()[0]}: {build} build; GIL enabled now: {gil_enabled}")

FREE_THREADED_DEMO = """
import random, sys, time
from concurrent.futures import ThreadPoolExecutor

def hits(seed, n=400_000):
    rng, h = random.Random(seed), 0
    for _ in range(n):
        x, y = rng.random(), rng.random()
        h += x * x + y * y <= 1.0
    return h

for threads in (1, 2):
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(hits, range(4)))
    print(f"  pure-Python π on {threads} thread(s): {time.perf_counter() - start:.2f} s")
print(f"  (GIL enabled: {sys._is_gil_enabled()})")
"""
free_threaded = os.environ.get("COURSE_FREETHREADED_PYTHON") or next(
    (p for p in map(shutil.which, ["python3.14t", "python3.13t"]) if p), None)
if gil_enabled and not free_threaded:
    print("No free-threaded Python found: install one (`uv python install 3.14t`, or conda's\n"
          "`python-freethreading`) and set COURSE_FREETHREADED_PYTHON to try the demo.")
else:
    interpreter = free_threaded or sys.executable
    demo = subprocess.run([interpreter, "-c", FREE_THREADED_DEMO], capture_output=True, text=True, timeout=120)
    print(f"{interpreter}:")
    print(demo.stdout.rstrip() or f"  the demo failed: {demo.stderr.strip().splitlines()[-1]}")

# %% [markdown]
# ## 8. Spawn, and where worker functions must live *(core)*
# How does a new process get your function? With **fork** (Linux's default up to Python 3.13) the
# child is a copy of the parent and already has everything. Python 3.14 made **forkserver** Linux's
# default: a small server process, started once, forks each worker, so the workers do not inherit
# the notebook's state and, like spawn, receive your function by name. With **spawn** (the default on macOS and
# Windows, and what Jupyter on those systems uses) the child is a fresh Python: it receives the
# function by *name* (module and function), imports the module and looks the name up. Two rules
# follow:
#
# 1. **Worker functions live in an importable module** (here `labs/course/pi.py`), not in a
#    notebook: a notebook's `__main__` cannot be imported by a child.
# 2. **A script that starts processes guards its top level** with `if __name__ == "__main__":`,
#    because spawn imports the script again in every child, and unguarded top-level code would run
#    again there, starting processes of its own. (This lab is a notebook *and* a script, so it cannot
#    indent everything under a guard; instead `import course` gives the script the module spec a
#    notebook's `__main__` has, and children do not re-import it, exactly as for a notebook.)
#
# Here is rule 1 broken on purpose: a function defined in `__main__`, sent to a spawned process.

# %%
#| label: spawn-main-fails
BROKEN = """
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

def square(x):  # defined in __main__, as in a notebook
    return x * x

with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
    print(pool.submit(square, 3).result())
"""
broken = subprocess.run([sys.executable, "-c", BROKEN], capture_output=True, text=True, timeout=120)
child_error = next((line for line in broken.stderr.splitlines() if "Error" in line and ":" in line), "")
parent_error = broken.stderr.strip().splitlines()[-1] if broken.stderr.strip() else ""


def said(who, line):
    """An error line, its class without the module path (BrokenProcessPool), wrapped to fit a slide."""
    name, _, message = line.strip().partition(": ")
    text = f"{name.rsplit('.', 1)[-1]}: {message}" if message else (name or "no error")
    print(textwrap.fill(text, 96, initial_indent=f"{who:<12}", subsequent_indent=" " * 12))


said("child said:", child_error)
said("parent got:", parent_error)

# %% [markdown]
# And the rule kept: the same π chunks in a pool started with spawn explicitly, whatever this
# platform's default. The result is the same as the serial one.

# %%
#| label: spawn-check
spawn_ctx = multiprocessing.get_context("spawn")
start = time.perf_counter()
with ProcessPoolExecutor(CORES, mp_context=spawn_ctx) as pool:
    spawn_hits = sum(pool.map(pi.hits_of_chunk, pi.tasks("numpy", N["numpy"], CHUNKS)))
print(f"spawn pool: {spawn_hits:,} hits (serial: {results['numpy', 'serial', 1][1]:,}) "
      f"in {time.perf_counter() - start:.2f} s including start-up")
print(course.hardware())

# %% [markdown]
# ## Key points
# - Python threads share memory but take turns holding the GIL: pure-Python code gets no faster.
# - Processes each have their own GIL and run Python in parallel, at the cost of starting them and
#   copying data to and from them.
# - NumPy, compiled code and waiting for I/O release the GIL: threads help there (and asyncio for
#   many waits).
# - `concurrent.futures` (`map`, `submit`, `as_completed`), `multiprocessing.Pool` and `joblib` are
#   three faces of the same idea: a pool of workers and a queue of tasks.
# - Map and reduce parallelise; a chain of dependent steps (time integration) does not, but an
#   ensemble of chains does.
# - Every task pays an overhead: make tasks big enough, and send work to the data.
# - Worker functions belong in importable modules, and scripts guard their top level: then code
#   works under spawn on macOS, Windows and Jupyter.
# - Free-threaded Python (3.13t, 3.14t) removes the GIL; `sys._is_gil_enabled()` tells you.

# %% [markdown]
# ## Checks
# Run by `pytest labs/02_threads_processes.py`; the slides never show this cell.

# %% tags=["checks"]
def test_parallel_runs_count_the_same_hits():
    for kind in N:
        serial_hits = results[kind, "serial", 1][1]
        assert all(hits == serial_hits for (k, _, _), (_, hits) in results.items() if k == kind)


def test_pi_within_tolerance():
    for kind in N:
        estimate = pi.estimate(results[kind, "serial", 1][1], N[kind])
        assert abs(estimate - math.pi) < 5 * pi.stderr(N[kind])


def test_chunk_seeds_do_not_depend_on_the_split():
    # the same chunk i of the same seed gives the same darts, however the work is shared
    assert pi.count_hits_numpy(10_000, 3, 5) == pi.hits_of_chunk(("numpy", 10_000, 3, 5))
    assert pi.count_hits_numpy(10_000, 3, 5) != pi.count_hits_numpy(10_000, 3, 6)


def test_tools_agree():
    assert set(tool_hits.values()) == {results["python", "serial", 1][1]}


def test_spawn_pool_gives_the_serial_answer():
    assert spawn_hits == results["numpy", "serial", 1][1]


def test_function_from_main_fails_under_spawn():
    assert broken.returncode != 0 and "square" in broken.stderr


def test_io_results_in_order():
    assert io_results[0] == io_results[1] == list(range(DOWNLOADS))


def test_reductions_agree():
    assert rounds[-1] == [sum(partial)]


def test_ode_close_to_exact():
    assert abs(cool(90.0) - exact) < 0.05


def test_arrays_arrive_intact():
    assert all(result == mb * 2**20 // 8 for mb, (*_, result) in transfer.items())


course.run_checks(globals())
