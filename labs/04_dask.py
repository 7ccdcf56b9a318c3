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
import logging
import math
import platform
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
from dask.distributed import Client, KilledWorker, LocalCluster, as_completed, performance_report, progress, wait
from distributed.diagnostics import MemorySampler
from IPython.display import SVG, Image

import course
from course import clusters, pi, soup

OUT = course.BUILD / "04_dask"  # everything this lab writes
OUT.mkdir(parents=True, exist_ok=True)
SCALE = {"small": 1, "workshop": 4, "large": 16}.get(course.size(), 16)
N_WORKERS = min(4, max(2, course.usable_cores()))  # worker processes for the local cluster


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
# ## 1. Dask arrays: chunks are the unit of parallelism
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
# parallelism you can get, and every task costs the scheduler some bookkeeping (about a
# millisecond on the distributed scheduler), so chunks should be neither tiny nor huge:
# **tens to a few hundred MiB** is the usual advice for real data; this lab uses smaller ones.

# %%
#| label: chunk-facts
time_mean = field.mean(axis=0)
print(f"array: {field.shape}, {field.nbytes / 2**20:.0f} MiB in {field.npartitions} chunks of "
      f"{field.chunksize} = {np.prod(field.chunksize) * 8 / 2**20:.1f} MiB each")
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
# `.visualize()` draws the graph with Graphviz. Circles are tasks (functions), boxes are their
# results (one per chunk). Take the standard deviation of the deviations from the time mean,
# `(y - y.mean(axis=0)).std(axis=0)`, for a tiny array in four chunks:

# %%
#| label: fig-array-graph
#| fig-cap: "Task graph of (y - y.mean(axis=0)).std(axis=0) for an array in four chunks, drawn by Dask with Graphviz."
#| fig-alt: "Graph flowing left to right: four standard_normal tasks each feed a mean_chunk task and, by a long arrow, a sub task; the four mean_chunk results join in one mean_agg-aggregate whose result feeds all four sub tasks, then var tasks, a var-aggregate and sqrt."
y = da.random.default_rng(1).standard_normal((8, 6), chunks=(2, 6))
anomaly_std_graph = (y - y.mean(axis=0)).std(axis=0)
anomaly_std_graph.visualize(filename=str(OUT / "array-graph.png"), rankdir="LR")
Image(filename=OUT / "array-graph.png", width=900)

# %% [markdown]
# Follow a chunk from the left: it goes into a `mean_chunk` task **and** into a `sub` task. The
# `sub` cannot start until the aggregated mean exists, and the mean needs *every* chunk. So every
# chunk of `y` must be kept (or made again) until the last chunk has been read. Remember this
# graph: it is why the memory section at the end of the lab goes wrong.

# %% [markdown]
# ## 2. `dask.delayed`: a graph from your own functions (the pea soup again)
#
# Not everything is an array. `delayed` wraps ordinary function calls: the call is recorded,
# not run, and its arguments (other delayed results) become the edges of the graph. Here is the
# Dutch pea soup (*erwtensoep*) from episode 01, shortened to ten steps. The steps are plain
# functions in `labs/course/soup.py`; each sleeps for its recipe minutes, scaled down (one minute =
# 0.01 s), because cooking is mostly waiting for the pot.

# %%
peas = delayed(soup.cook_peas)(delayed(soup.rinse_peas)(), delayed(soup.boil_water)())
onion = delayed(soup.fry_onion)(delayed(soup.chop)("onion"))
carrots = delayed(soup.dice_carrots)()
bacon = delayed(soup.fry_bacon)()
pot = delayed(soup.add_vegetables)(peas, onion, carrots, bacon)
meal = delayed(soup.serve)(delayed(soup.simmer_soup)(pot))  # nothing has been cooked yet

# %%
#| label: fig-soup-graph
#| fig-cap: "The pea-soup recipe as a Dask task graph: rinsing, boiling, chopping, dicing and frying are independent and can run at the same time."
#| fig-alt: "Graph flowing left to right: rinse_peas and boil_water feed cook_peas; chop feeds fry_onion; cook_peas, fry_onion, dice_carrots and fry_bacon all feed add_vegetables, then simmer_soup, then serve."
meal.visualize(filename=str(OUT / "soup-graph.png"), rankdir="LR")
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
# ## 3. Futures: work that starts as soon as you submit it
#
# `delayed` builds the whole graph first, then runs it. **Futures** run at once: `client.submit(f, x)`
# sends one call to the cluster and returns a *future*, a ticket for a result that may not exist
# yet. Futures need the **distributed** scheduler, so we start a cluster of worker processes on
# this machine. It binds `127.0.0.1` only (nobody else on the network can reach it or run code on
# it) and lets the operating system pick free ports, so it never clashes with another cluster.

# %%
#| label: cluster-start
cluster = LocalCluster(n_workers=N_WORKERS, threads_per_worker=1, processes=True, memory_limit="1.5GiB",
                       host="127.0.0.1", dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
client = Client(cluster)
print(f"{N_WORKERS} worker processes, 1 thread each; scheduler at {client.scheduler.address}")
print(f"Dashboard: {client.dashboard_link}")

# %% [markdown]
# Open the dashboard link in a browser now (on a remote machine: through an SSH tunnel, see episode
# 05) and keep it beside the notebook while you run the next cells.

# %%
#| label: futures-submit-map
chopped = client.submit(soup.chop, "onion")  # returns at once
print("just submitted:", chopped)
print("result:", chopped.result())  # waits for it
chops = client.map(soup.chop, soup.VEGETABLES)  # one future per vegetable
fried = client.submit(soup.fry_onion, chops[0])  # a future as an argument: Dask wires it up
print("from futures:", fried.result(), "|", [c.result() for c in chops[1:]])

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
for future in as_completed(steps):
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
        values = client.gather(futures)
    return values, [str(w.message).split(".")[0] for w in caught]


def quantiles_with_scatter():
    remote = client.scatter(big, broadcast=True)  # once, to every worker
    return client.gather([client.submit(np.quantile, remote, q) for q in quantiles])


(no_scatter, dask_warnings), no_scatter_s = timed(quantiles_without_scatter)
with_scatter, scatter_s = timed(quantiles_with_scatter)
print(f"{len(quantiles)} quantiles of a {big.nbytes / 2**20:.0f} MiB array")
print(f"array inside every task: {no_scatter_s:.2f} s" + (f"  (Dask warned: {dask_warnings[0]})" if dask_warnings else ""))
print(f"scattered once         : {scatter_s:.2f} s")
print(course.hardware())

# %% [markdown]
# ## 4. Schedulers: threads, processes or distributed?
#
# The graph says *what* to run; the scheduler decides *where*. Python's global interpreter lock
# (GIL) lets only one thread run Python code at a time, but NumPy, Numba and most I/O release it.
# So the right scheduler depends on the kind of work. We compute π by the midpoint rule in four
# slices (`labs/course/pi.py`), once with a plain Python loop (holds the GIL) and once with NumPy
# (releases it), under each scheduler:
#
# | scheduler | runs tasks in | good for | cost |
# |---|---|---|---|
# | `synchronous` | this thread, one by one | debugging (`pdb` works) | no parallelism |
# | `threads` (default for arrays) | a thread pool in this process | NumPy, Pandas, I/O: code that releases the GIL | pure Python stays serial |
# | `processes` | a pool of new processes | pure Python on one machine | start-up, pickling every input and result |
# | `distributed` | worker processes, here or on other machines | everything above; the dashboard; more than one machine | a cluster to start and stop |

# %%
N_PY, N_NP = 3_000_000 * SCALE, 400_000_000 * SCALE


def pi_graph(slice_function, n, parts=4):
    return delayed(sum)([delayed(slice_function)(a, b, n) for a, b in pi.slices(n, parts)])


schedulers = {
    "synchronous": {"scheduler": "synchronous"},
    "threads": {"scheduler": "threads", "num_workers": N_WORKERS},
    "processes": {"scheduler": "processes", "num_workers": N_WORKERS},
    "distributed": {"scheduler": client},
}
scheduler_times, scheduler_pis = {}, {}
for name, options in schedulers.items():
    for work, function, n in (("pure Python", pi.pi_slice_python, N_PY), ("NumPy", pi.pi_slice_numpy, N_NP)):
        scheduler_pis[name, work], scheduler_times[name, work] = timed(pi_graph(function, n).compute, **options)

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
print(f"π to {N_PY:,} terms in pure Python and to {N_NP:,} terms with NumPy; seconds (speed-up over synchronous)")
print(f"{'scheduler':<12} {'pure Python':>16} {'NumPy':>16}")
for name in names:
    cells = [f"{scheduler_times[name, w]:.2f} ({scheduler_times['synchronous', w] / scheduler_times[name, w]:.1f}×)"
             for w in ("pure Python", "NumPy")]
    print(f"{name:<12} {cells[0]:>16} {cells[1]:>16}")
print(course.hardware())

# %% [markdown]
# What to expect, and to check against the speed-ups in brackets: threads speed up NumPy but not
# the pure-Python loop (the GIL). Processes speed up both, minus the time to start the pool and
# pickle the data. The distributed workers are already running, so they pay no start-up: on one
# machine the distributed scheduler is often the best choice even without a cluster, and it brings
# the dashboard. (On a machine shared with other users, every speed-up shrinks.)

# %% [markdown]
# ## 5. The dashboard, a performance report and progress bars
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
pages = {client.dashboard_link: status_png, client.dashboard_link.replace("/status", "/workers"): workers_png}
rounds = 0
with performance_report(filename=str(report_path)):
    with ThreadPoolExecutor(1) as pool:
        shooting = pool.submit(clusters.screenshots, pages, 1.0)  # the browser runs beside the work
        while rounds == 0 or not shooting.done():  # keep the dashboard busy until the pictures are taken
            client.compute(work).result()
            rounds += 1
        shot_files, shot_note = shooting.result()
print(f"{rounds} rounds of {len(work.__dask_graph__())} tasks")
print(f"performance report: {report_path.relative_to(course.ROOT)} ({report_path.stat().st_size / 1e6:.1f} MB, open it in a browser)")
print(shot_note)

# %% [markdown]
# **Progress bars.** In JupyterLab, `progress(future)` draws a live widget; in a script or a
# terminal, `notebook=False` prints a text bar. It returns when the work is done.

# %%
future = client.compute(work)
progress(future, notebook=False)
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
Image(filename=status_png, width=1000) if status_png in shot_files else print(shot_note)

# %%
#| label: fig-dashboard-workers
#| fig-cap: "The dashboard's Workers page: CPU and memory of each worker process, with its memory limit."
#| fig-alt: "Table of the workers, one row per worker process, with columns for name, threads, CPU percent, memory used against the memory limit, and network activity."
Image(filename=workers_png, width=1000) if workers_png in shot_files else print(shot_note)

# %% [markdown]
# ## 6. Three habits that save time, measured
#
# **Avoid too many tiny tasks.** Each task costs the scheduler roughly a millisecond, whatever it
# does. A 4000 × 4000 array summed in chunks of 250 × 250 is 256 chunks and hundreds of tasks;
# in chunks of 1000 × 1000 it is 16 chunks.

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
    chunk_sums[edge], chunk_times[edge] = timed(total.compute)
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
# for as many questions as you like.

# %%
#| label: best-practice-table
base = da.random.default_rng(5).standard_normal((160 * SCALE, 181, 360), chunks=(16, 181, 360))
base = np.exp(np.sin(base) ** 2)  # stands for expensive preprocessing
stats = [base.mean(), base.std(), base.max()]

separately, separately_s = timed(lambda: [s.compute() for s in stats])
together, together_s = timed(lambda: dask.compute(*stats))


def with_persist():
    kept = base.persist()  # computed once, kept on the workers
    wait(kept)
    values = [kept.mean().compute(), kept.std().compute(), kept.max().compute()]
    del kept  # free the workers' memory
    return values


persisted, persist_s = timed(with_persist)
print(f"mean, std and max of a {base.nbytes / 2**20:.0f} MiB preprocessed array")
print(f"three .compute() calls     : {separately_s:.2f} s  (the preprocessing runs three times)")
print(f"one dask.compute(...) call : {together_s:.2f} s  (shared tasks run once)")
print(f"persist, then three calls  : {persist_s:.2f} s  (runs once, then reads the kept chunks)")
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
client.close()
cluster.close()
print("cluster closed; processes left:", clusters.stray_children() or "none")

# %% [markdown]
# ## 7. Worker memory: a `KilledWorker` on purpose, and three fixes
#
# Every distributed worker has a **memory limit**. The data it holds for later tasks is *managed*
# memory; everything else (the Python interpreter, libraries, the temporary arrays inside running
# tasks, memory not yet returned to the OS) is *unmanaged*. An idle worker already uses about
# 200 MiB. The worker reacts at fixed fractions of its limit:
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
# The experiment: one worker with two threads and a 400 MiB limit (a small version of 2 GiB per core
# on an HPC node), and the deviation-from-the-mean computation from section 1,
# `(x - x.mean("time")).std("time")`, on an array larger than the whole worker.

# %%
#| label: memory-setup
LIMIT_MIB = 400
NT_MEM, NY, NX = 512, 256, 512  # 1 MiB per time step; fixed size: the lesson is the worker's budget


def field_like(time_chunk=None, latitude_chunk=None):
    """A stand-in for a gridded variable; chunked along time (default) or along latitude."""
    chunks = (time_chunk, NY, NX) if time_chunk else (NT_MEM, latitude_chunk, NX)
    data = da.random.default_rng(42).standard_normal((NT_MEM, NY, NX), chunks=chunks)
    return xr.DataArray(data, dims=("time", "latitude", "longitude"), name="field")


def chunk_mib(x):
    return np.prod(x.data.chunksize) * 8 / 2**20


with dask.config.set({"distributed.scheduler.allowed-failures": 0}):  # fail fast: no retries
    mem_cluster = LocalCluster(n_workers=1, threads_per_worker=2, memory_limit=f"{LIMIT_MIB}MiB", processes=True,
                               host="127.0.0.1", dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL)
mem_client = Client(mem_cluster)


def worker_memory_mib():
    info = mem_client.scheduler_info()["workers"]
    return sum(w["metrics"]["memory"] for w in info.values()) / 2**20


def warm_up(heartbeats=True):
    """Let the (new) worker import NumPy and friends, then wait for its heartbeats."""
    mem_client.compute(field_like(32)[:2].std("time")).result()
    time.sleep(1.2 if heartbeats else 0)


warm_up()
idle_mib = worker_memory_mib()
print(f"1 worker, 2 threads, limit {LIMIT_MIB} MiB; idle worker uses {idle_mib:.0f} MiB")
print(f"array: {field_like(32).nbytes / 2**20:.0f} MiB; dashboard: {mem_client.dashboard_link}")

# %% [markdown]
# ### The failure
# With chunks of 32 MiB along time. Two samplers watch the worker while it runs:
# `distributed.diagnostics.MemorySampler` records what the worker reports to the scheduler (here:
# how much it spilled to disk), and `clusters.WorkerMemorySampler` reads the worker process's
# memory from the operating system 50 times a second, fast enough to see the moment it is killed.

# %%
#| label: killed-worker
rss_sampler, spill_sampler = clusters.WorkerMemorySampler(), MemorySampler()
runs = {}  # label -> outcome, seconds, result


def measured_run(label, make_result):
    start = time.perf_counter()
    try:
        with rss_sampler.sample(label), spill_sampler.sample(label, client=mem_client, measure="spilled", interval=0.1):
            value = mem_client.compute(make_result()).result()
        runs[label] = ("finished", time.perf_counter() - start, value)
    except KilledWorker as err:
        runs[label] = ("KilledWorker", time.perf_counter() - start, err)
        mem_client.restart()  # a fresh worker, nothing half-computed left on the cluster
        warm_up(heartbeats=False)
    return runs[label]


x32 = field_like(time_chunk=32)
FAILING = f"time chunks of {chunk_mib(x32):.0f} MiB"
outcome, seconds, detail = measured_run(FAILING, lambda: (x32 - x32.mean("time")).std("time"))
if outcome == "KilledWorker":
    print(f"Caught KilledWorker after {seconds:.1f} s: {str(detail).split('.')[0]}.")
    print(f"""
Why: two threads each ran a task on a {chunk_mib(x32):.0f} MiB chunk plus its temporaries, on top of
the {idle_mib:.0f} MiB the idle worker needs and the chunks it was holding for the subtraction. That passed
95 % of {LIMIT_MIB} MiB, so the nanny killed the worker. Task memory cannot be spilled; with
allowed-failures = 0 the scheduler gave up at once instead of killing three more workers.
The cluster was restarted; nothing is left running.""")
else:
    peak = max(b for _, b in rss_sampler.samples[FAILING]) / 2**20
    print(f"It {outcome} in {seconds:.1f} s this time, although the worker reached {peak:.0f} MiB "
          f"(kill line: {0.95 * LIMIT_MIB:.0f} MiB).")
    print("The nanny checks memory every 100 ms and can miss short peaks, more so on a busy machine, and memory "
          f"accounting differs between operating systems ({platform.system()}). Run the cell again, or try "
          "48 MiB chunks (time_chunk=48).")

# %% [markdown]
# ### Three fixes
# 1. **Smaller chunks** (8 MiB): the same code; each task's temporaries shrink fourfold. The
#    chunks still wait for the mean, so the worker spills them to disk.
# 2. **Chunks that fit the question.** The reduction runs along `time`, so give each chunk the whole
#    time series of a few latitudes (`chunks={"time": -1, "latitude": 4}`; with real files, pass
#    the chunks when you open them). Mean, subtraction and std happen inside each chunk: nothing waits,
#    nothing spills. Rechunking an existing time-chunked array instead is an all-to-all shuffle that
#    itself needs memory, so choose the chunks when you read the data.
# 3. **A streaming reduction.** The standard deviation does not change when you subtract a constant,
#    so `(x - x.mean()).std()` equals `x.std()`, and `sqrt(mean(x²) − mean(x)²)` needs **one** pass:
#    each chunk adds to two running sums and is dropped at once. `xr.dot(x, x, dim="time")` sums
#    the squares without making `x²` first. Nothing waits and nothing spills, so the chunks can be
#    larger than in fix 1 (16 MiB here).
#    (For data far from zero, subtract a rough constant first: this form loses precision.)

# %%
#| label: memory-fixes
x8 = field_like(time_chunk=8)
xs = field_like(latitude_chunk=4)
x16 = field_like(time_chunk=16)
fixes = {
    f"smaller chunks, {chunk_mib(x8):.0f} MiB": lambda: (x8 - x8.mean("time")).std("time"),
    f"latitude chunks, {chunk_mib(xs):.0f} MiB": lambda: (xs - xs.mean("time")).std("time"),
    f"streaming, {chunk_mib(x16):.0f} MiB chunks": lambda: np.sqrt(xr.dot(x16, x16, dim="time") / NT_MEM - x16.mean("time") ** 2),
}
for label, make in fixes.items():
    measured_run(label, make)

spill_frame = spill_sampler.to_pandas(align=True)
peak_mib = {label: max(b for _, b in rss_sampler.samples[label]) / 2**20 for label in runs}
print(f"{'run':<26} {'outcome':<13} {'seconds':>7} {'peak MiB':>9} {'spilled MiB':>12} {'mean std':>9}")
for label, (outcome, seconds, value) in runs.items():
    peak, spilled = peak_mib[label], spill_frame[label].max() / 2**20
    mean_std = f"{float(value.mean()):.4f}" if outcome == "finished" else "-"
    print(f"{label:<26} {outcome:<13} {seconds:>7.1f} {peak:>9.0f} {spilled:>12.0f} {mean_std:>9}")
print(f"worker limit {LIMIT_MIB} MiB, idle {idle_mib:.0f} MiB; array {x32.nbytes / 2**20:.0f} MiB; {course.hardware()}")

# %%
#| label: fig-memory-timeline
#| fig-cap: "Memory of the worker process over time (read from the OS 50 times a second) for the run that was killed and for the three fixes, against the worker's 400 MiB limit."
#| fig-alt: "Line chart of worker process memory in MiB against seconds, one line per run, with dashed horizontal lines for the limit, the 95 percent kill threshold, the 80 percent pause threshold and the idle worker; the killed run ends early near the kill line, the fixes stay below it."
fig, ax = plt.subplots(figsize=(10, 5))
for label in runs:
    t, b = np.array(rss_sampler.samples[label]).T
    ax.plot(t, b / 2**20, label=label + (" (killed)" if runs[label][0] == "KilledWorker" else ""))
lines = ((LIMIT_MIB, "limit", "-"), (0.95 * LIMIT_MIB, "killed at 95 %", "--"), (0.8 * LIMIT_MIB, "paused at 80 %", ":"),
         (idle_mib, "idle worker", "-."))
for level, name, style in lines:
    ax.axhline(level, color="#555555", linestyle=style, linewidth=1)
    ax.text(1.0, level, name + " ", transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=11, color="#555555")
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
# there: the nanny killed the process. (Look at the table: it had spilled almost everything it
# held, and still died, because the memory *inside* the running tasks cannot be spilled.) The fixes
# stay below the pause line, or touch it briefly and recover.
#
# What to do when *your* job dies with `KilledWorker`:
# 1. Open the dashboard and watch worker memory: is it data held (blue), spilled (orange), or
#    unmanaged (grey, i.e. inside tasks)?
# 2. Compute the budget: idle + threads × a few × chunk size. Use smaller chunks, or fewer threads
#    per worker with more memory each (`--nthreads`, `--memory-limit`).
# 3. Look at the graph: does something force chunks to wait (a mean that feeds back, a sort, a
#    rechunk)? Chunk along the dimension you reduce over, or use a one-pass (streaming) reduction.

# %%
#| label: memory-close
mem_client.close()
mem_cluster.close()
print("memory cluster closed; processes left:", clusters.stray_children() or "none")

# %% [markdown]
# ## Exercises
#
# ### Exercise 1: chunks and tasks
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
# just adds overhead. With 120 time steps there are only two chunks: with more than two cores, some
# sit idle. A middle size wins; on a big machine the best size is larger than on a laptop.
# </details>

# %% [markdown]
# ### Exercise 2: sausage on the side
# Episode 01's recipe serves smoked sausage with the soup: `heat_sausage` (15 recipe minutes, needs
# nothing), then `slice_sausage` (3 minutes), which `serve` also needs. Write the two functions in
# `course/soup.py` (why there and not in the notebook?), add them to the graph, draw it, and predict
# the time before you measure it.

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# In `course/soup.py` (worker processes started with `spawn` import functions by name; they cannot
# import the notebook):
# ```python
# def heat_sausage():
#     _step("heat sausage"); return "hot sausage"      # RECIPE already has its minutes
# def slice_sausage(sausage):
#     _step("slice sausage"); return f"sliced {sausage}"
# def serve_with(soup, sausage):
#     _step("serve"); return f"erwtensoep: {soup} with {sausage}"
# ```
# Then `meal = delayed(soup.serve_with)(delayed(soup.simmer_soup)(pot),
# delayed(soup.slice_sausage)(delayed(soup.heat_sausage)()))`. The sausage (18 minutes)
# is ready long before the soup, so the time does not change: it is not on the critical path.
# </details>

# %% [markdown]
# ### Exercise 3: futures as they come
# Submit `pi.pi_slice_python(a, b, n)` for 8 slices of `n = 4_000_000` with `client.map` and
# add the parts up with `as_completed`, printing the running estimate of π after each slice.

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# n = 4_000_000
# starts, stops = zip(*pi.slices(n, 8))
# futures = client.map(pi.pi_slice_python, starts, stops, n=n)
# total = 0.0
# for f in as_completed(futures):
#     total += f.result()
#     print(total)          # climbs towards π as slices arrive, in whatever order they finish
# ```
# (Run it before the cluster is closed, or start a new `LocalCluster`.)
# </details>

# %% [markdown]
# ### Exercise 4: a memory budget
# With the 400 MiB worker, run the failing computation with **one** thread per worker instead of
# two (`threads_per_worker=1`). Predict first: will it survive? Then find the largest time chunk that
# survives with two threads.

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# With one thread only one task's temporaries exist at a time, so the budget roughly halves and
# 32 MiB chunks may just survive or just fail: idle + 4 × 32 MiB is close to the kill line (try it).
# With two threads the limit lies between 8 and 32 MiB here; try `time_chunk=12`, `16` and `24`. The
# rule of thumb:
# limit ≳ idle + threads × 4 × chunk, plus room for held data. On a real node the same reasoning
# tells you how many threads per worker and how much memory per worker to ask for.
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
# - Worker memory ≈ idle + threads × a few × chunk size + held data. `KilledWorker` means that
#   budget was exceeded: smaller chunks, chunks along the reduced dimension, or a streaming reduction.
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


def test_streaming_std_equals_two_pass():
    data = xr.DataArray(np.random.default_rng(8).standard_normal((50, 4, 5)), dims=("time", "latitude", "longitude"))
    lazy = data.chunk(time=7)
    streaming = np.sqrt(xr.dot(lazy, lazy, dim="time") / data.sizes["time"] - lazy.mean("time") ** 2)
    np.testing.assert_allclose(streaming.compute(), (data - data.mean("time")).std("time"))


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


def test_nothing_left_running():
    assert cluster.status.name == "closed" and mem_cluster.status.name == "closed"
    assert clusters.stray_children() == []


course.run_checks(globals())
