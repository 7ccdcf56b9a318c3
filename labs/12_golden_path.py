# %% [markdown]
# # 12 · The golden path: from NetCDF on the NAS to a PyTorch model and a skill map
#
# **Teaching:** 90 min · **Exercises:** 60 min
#
# ## Objectives
# - Open a multi-file NetCDF dataset, say why it is slow, and work on it lazily: chunks, `sel`, a plot.
# - Reduce the whole dataset with `.mean("time")` on a local cluster whose workers are allowed far less
#   memory than the data, while the dashboard lights up.
# - Convert it once to a consolidated Zarr store with chunks chosen for training, and open it in
#   milliseconds afterwards.
# - Feed PyTorch from Zarr with xbatcher and a `DataLoader`, and measure the feed rate against the raw
#   read rate of the same store.
# - Evaluate the model per grid point with xskillscore, against persistence, on a map.
#
# ## Why this episode?
# *"Our NAS is full of ERA5 NetCDF; our scripts are slow, run out of memory and don't feed machine
# learning."* Episodes 07 and 09 take the first half apart piece by piece. This episode is the whole
# path in one script, in order, for people who know Dask's basics: N-D arrays only (no dataframes),
# Dask only through Xarray, one machine with a local `Client` for the dashboard. The workers are given
# a fraction of the dataset's size in memory, so nothing here works by accident of a big machine.
# Every number is measured as the lab runs and printed with the machine that measured it.

# %%
import inspect
import json
import os
import shutil
import subprocess
import sys
import time
import warnings

import dask
import matplotlib.pyplot as plt
import numpy as np
import psutil
import xarray as xr
import zarr

import course
from course import clusters, feed

warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
warnings.filterwarnings("ignore", category=FutureWarning)  # xarray's notices about changing defaults

DATA_DIR = course.dataset()
files = sorted(DATA_DIR.glob("era5_*.nc"))
disk_bytes = sum(f.stat().st_size for f in files)
WORK = course.BUILD / "12_golden_path"  # everything this lab writes goes here
WORK.mkdir(parents=True, exist_ok=True)
MiB, GiB = 2**20, 2**30


def load():
    """The machine's load average over the last minute: timings mean little when it exceeds the cores."""
    return f"load {psutil.getloadavg()[0]:.1f} on {psutil.cpu_count()} cores"


print(f"{len(files)} monthly NetCDF files, {disk_bytes / MiB:.0f} MiB on disk ({course.size()} size)")
print(course.hardware())

# %% [markdown]
# ## Module 1 · The Xarray + Dask "Aha!" moment · Teaching: 25 min · Exercises: 15 min
#
# ### The pain: `open_mfdataset` is slow to parse
# `xr.open_mfdataset` opens every file, reads its header and coordinates, checks that the files fit
# together and concatenates them along `time`. With its classic defaults it also compares every
# variable *without* a time dimension across files and copies it along time (the land-sea mask `lsm`
# and orography `z` become 3-D). The minimal options skip that work: concatenate only what has a time
# dimension (`data_vars="minimal"`, `coords="minimal"`) and take the rest from the first file
# (`compat="override"`). We time both, and keep the time chunks a multiple of the training window we
# will use in module 2 (at most one window of time steps per chunk), so that each Zarr chunk later
# gathers at most two NetCDF chunks.

# %%
#| label: open-netcdf
WINDOW = {"time": 32, "latitude": 32, "longitude": 32}  # one training window: 32 steps of a 32 × 32 patch
with xr.open_dataset(files[0]) as first:
    step_bytes = 4 * first.latitude.size * first.longitude.size  # one time step of one variable, float32
    steps_per_file = first.time.size
time_chunk = min(WINDOW["time"], steps_per_file)  # time chunks of one window: the Zarr store's chunks split them
CHUNKS = {"time": time_chunk}
MINIMAL = dict(data_vars="minimal", coords="minimal", compat="override")

start = time.perf_counter()
ds_default = xr.open_mfdataset(files, chunks=CHUNKS)
t_open_default = time.perf_counter() - start
start = time.perf_counter()
ds = xr.open_mfdataset(files, chunks=CHUNKS, inline_array=True, **MINIMAL)  # inline_array: see module 2
t_open_minimal = time.perf_counter() - start
print(f"open_mfdataset, {len(files)} files · {load()}")
print(f"  classic defaults: {t_open_default:6.2f} s   lsm {ds_default.lsm.dims}")
print(f"  minimal options:  {t_open_minimal:6.2f} s   lsm {ds.lsm.dims}")
ds_default.close()
print(course.hardware())

# %% [markdown]
# Why is it slow at all? NetCDF-4 is HDF5: each file has its metadata *inside* it, spread over the
# file, behind a library lock. Opening means one HDF5 open per file, reading B-trees and attributes,
# decoding the time axis of every file, then comparing and concatenating in Python. Thirty-six files on
# a local disk take seconds; thousands of files on a NAS, where every small read waits for the
# network, take minutes, and every script, every kernel restart, pays it again.
#
# ### The solution: lazy Dask arrays, and chunks
# What came back is **lazy**: each variable is a Dask array, a grid of chunks, each a NumPy array read
# only when needed. `ds.chunks` lists the chunk sizes along each dimension. Chunks are the unit of
# parallelism (one task per chunk) and of memory (a worker holds a few chunks at a time).

# %%
#| label: chunks
time_vars = [v for v in ds.data_vars if "time" in ds[v].dims]
chunk_bytes = max(ds[v].data.nbytes / ds[v].data.npartitions for v in time_vars)
print("ds.chunks:")
for dim, sizes in ds.chunks.items():
    print(f"  {dim:<10} {len(sizes):4d} chunk(s) of {sorted(set(sizes))[-3:]}")
print(f"{sum(ds[v].data.npartitions for v in time_vars)} chunks; the largest {chunk_bytes / MiB:.1f} MiB; "
      f"dataset {ds.nbytes / MiB:.0f} MiB decoded, {disk_bytes / MiB:.0f} MiB on disk")

# %% [markdown]
# `.sel` only writes down which part of which chunks you want: it is instant, whatever the size.

# %%
#| label: lazy-sel
start = time.perf_counter()
europe = ds.t2m.sel(latitude=slice(70, 35), longitude=slice(0, 40))
sel_ms = 1000 * (time.perf_counter() - start)
print(f"ds.t2m.sel(Europe): {sel_ms:.2f} ms; {europe.nbytes / MiB:.1f} MiB described, nothing read")
print(course.hardware())

# %% [markdown]
# A plot is a small, concrete computation: `.plot()` on one time step reads one slice of one file.

# %%
#| label: fig-slice
#| fig-cap: "2 m temperature at the first time step, read from its file only when plotted."
#| fig-alt: "Global map of 2 metre temperature in the cividis colour map: warm in the tropics, cold towards the poles and over high mountains."
start = time.perf_counter()
fig, ax = plt.subplots(figsize=(10, 5))
ds.t2m.isel(time=0).plot(ax=ax, cmap="cividis", cbar_kwargs={"label": "t2m [K]"})
plot_s = time.perf_counter() - start
ax.set_title("")
ax.set_title(f"t2m at {str(ds.time.values[0])[:16].replace('T', ' ')} UTC, read and drawn in {plot_s:.2f} s", loc="left")
fig.text(0.01, 0.01, course.hardware(), fontsize=10, color="#555555")
fig.tight_layout(rect=(0, 0.04, 1, 1))
plt.show()

# %% [markdown]
# ### A local cluster with less memory than the data
# The workers' memory limit is **measured, not typed**: we start one worker, let it do one small piece of
# each job it will get (a mean, a Zarr write: so it has imported and initialised Xarray, netCDF4, HDF5
# and Zarr) and read its idle memory. A worker pauses when it passes 80 % of its limit, so idle memory,
# half as much again for what grows while it works (buffers, caches, Dask's bookkeeping), and 16 chunks
# in flight must stay below that line. Each worker gets that, or its share of a quarter of the dataset if
# that is more: all workers together hold at most a quarter of the data whenever the data is large.
# What stays free below the pause line, once idle memory and growth are counted, is the worker's
# **room** for data: module 2 sizes its work from it. The dashboard link is printed: open it now and keep it in view.

# %%
#| label: cluster
def for_zarr(obj):
    """``obj`` rechunked into training windows, without the NetCDF layout in its encoding."""
    out = obj.chunk(WINDOW)
    for variable in out.variables.values():
        for key in ("chunks", "preferred_chunks", "chunksizes", "zlib", "complevel", "shuffle", "contiguous"):
            variable.encoding.pop(key, None)  # the NetCDF layout must not decide the Zarr layout
    return out


def idle_worker_bytes():
    """Memory (RSS) of one worker process after one piece of each job (a mean, a Zarr write), now idle."""
    with clusters.client(n_workers=1, threads_per_worker=1, memory_limit=0, local_only=True) as probe:
        piece = ds[time_vars].isel(time=slice(0, time_chunk))
        clusters.compute(piece.mean(), probe, what="a warm-up mean")
        warm_up = for_zarr(piece).to_zarr(WORK / "warm-up.zarr", mode="w", consolidated=True, compute=False)
        clusters.compute(warm_up, probe, what="a warm-up write")
        shutil.rmtree(WORK / "warm-up.zarr", ignore_errors=True)
        return max(probe.run(lambda: __import__("psutil").Process().memory_info().rss).values())


N_WORKERS = max(1, min(2, course.usable_cores()))
idle_bytes = idle_worker_bytes()
PAUSE = dask.config.get("distributed.worker.memory.pause")  # 0.8: a worker above it stops running tasks
# idle, half as much again for what grows while it works, and 16 chunks must stay below the pause line
worker_limit = int(max((1.5 * idle_bytes + 16 * chunk_bytes) / PAUSE, ds.nbytes / 4 / N_WORKERS))
room = PAUSE * worker_limit - 1.5 * idle_bytes  # data one worker may hold before it pauses
client = clusters.client(n_workers=N_WORKERS, threads_per_worker=1, memory_limit=worker_limit)
workers = client.scheduler_info(n_workers=-1)["workers"]
total_limit = sum(w["memory_limit"] for w in workers.values())
print(f"Dask dashboard: {client.dashboard_link}")
print(f"{len(workers)} workers × 1 thread; each may use {worker_limit / MiB:.0f} MiB "
      f"(idle {idle_bytes / MiB:.0f} MiB; chunks of {chunk_bytes / MiB:.1f} MiB)")
print(f"room for data in each worker, below its pause line: {room / MiB:.0f} MiB")
print(f"all workers together: {total_limit / MiB:.0f} MiB = {100 * total_limit / ds.nbytes:.0f} % "
      f"of the decoded dataset ({ds.nbytes / MiB:.0f} MiB)")
print(course.hardware())

# %% [markdown]
# ### The practical win: `.mean("time")` over everything
# Watch the dashboard: *Task Stream* fills with one bar per chunk (open, decode, reduce), *Workers*
# shows each worker's memory staying flat. A thread samples every worker process's memory from the
# operating system 50 times a second, so we know each worker's peak, not just the total.

# %%
from course.clusters import PeakMemory  # the sampler below lives in course/clusters.py (labs 12 and others)

print(inspect.getsource(PeakMemory))

# %%
#| label: full-mean
time_bytes = sum(ds[v].nbytes for v in time_vars)
with PeakMemory(client) as mean_memory, warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # sst has no value over land: "mean of empty slice"
    start = time.perf_counter()
    time_mean = clusters.compute(ds[time_vars].mean("time"), client, what='ds.mean("time") over every file')
    t_mean = time.perf_counter() - start
mean_peak = max(mean_memory.peak.values())
print(f'ds.mean("time") on {N_WORKERS} workers · {load()}')
print(f"  {t_mean:.1f} s · {disk_bytes / MiB / t_mean:.0f} MiB/s from disk · {time_bytes / MiB / t_mean:.0f} MiB/s decoded")
print(f"  peak worker memory {mean_peak / MiB:.0f} MiB of its {worker_limit / MiB:.0f} MiB limit "
      f"({100 * mean_peak / worker_limit:.0f} %)")
print(course.hardware())

# %% [markdown]
# The memory a worker needs is set by chunk size × threads, not by the dataset: the same code with
# `COURSE_SIZE=workshop` (about a hundred times more data) runs within the same kind of limit.
#
# ### Exercises (module 1)
# **1.1** Time `xr.open_mfdataset(files, chunks=CHUNKS, parallel=True, **MINIMAL)`. Faster or slower
# here? When would you expect it to help?
#
# **1.2** Before you compute anything, how many bytes will `ds.t2m.sel(time="2000-07").mean("time")`
# read? (Hint: which chunks does the selection touch? `europe.data.npartitions` and `chunks` help.)
#
# <details><summary>Solutions</summary>
#
# **1.1** `parallel=True` opens the files in Dask tasks on the workers. With a few dozen files on a local
# disk the task overhead and sending each opened dataset back can cost more than it saves; with
# hundreds or thousands of files on a network file system, where each open waits for metadata, it helps.
#
# **1.2** The July selection touches every chunk that overlaps July along time, at full latitude and
# longitude: the chunks' sizes, not the selection's, decide what is read. `ds.t2m.sel(time="2000-07").data`
# shows the chunks it needs; whole chunks are read even when you need part of one.
# </details>

# %% [markdown]
# ## Module 2 · The storage revolution: Zarr · Teaching: 15 min · Exercises: 10 min
#
# NetCDF/HDF5 is one file with its metadata inside it, behind a lock: parallel readers queue, and
# every open re-parses headers. A Zarr store is a **directory**: one small JSON document per array
# (consolidated into one at the top) and one file per chunk. Any number of processes read different
# chunks at once, with no lock and no header to parse.
#
# We choose the chunks for what comes next, training: one chunk is exactly one training window
# (32 time steps of a 32 × 32 patch), so a window reads one chunk per variable and nothing else.
# The conversion is a **one-time cost**: it reads every NetCDF chunk once, splits it and writes it,
# on the same workers under the same memory limit.
#
# ### Why in slabs: rechunking holds both layouts at once
# A NetCDF chunk here is 32 time steps of the *whole* grid; a Zarr chunk is 32 steps of a 32 × 32
# patch, and the months (and so the NetCDF chunks) do not start where the Zarr chunks do. Every Zarr
# chunk is cut from one or two NetCDF chunks, and a NetCDF chunk can only be dropped when every patch
# cut from it has been written. In between, a worker holds data in **both layouts**. Given the whole
# dataset as one graph, Dask reads ahead (reading is the first task of every branch) faster than the
# small writes drain, and at the workshop size every worker filled up to its pause line and stopped.
#
# So we convert in **slabs of time**: one Dask computation per slab, each through `clusters.compute`
# with its deadline, one after the other. A slab's two layouts must fit in the room the workers have
# for data (measured above: limit × pause fraction, less idle memory and growth), so the slab size is
# *computed*: room of all workers ÷ (2 × bytes of one time step of every variable), rounded down to
# whole Zarr chunks along time, so that no two slabs ever write the same chunk.
#
# How the pieces fit: `to_zarr(..., compute=False)` on the whole dataset writes only the metadata
# (every array's shape, chunks, encoding) and the coordinates; each slab then fills its rows with
# `to_zarr(..., region={"time": slice(...)})`. Everything goes to a `.partial` folder, renamed only
# when the last slab is in: a killed run never leaves a half store that a later run trusts.
# (`inline_array=True` at the open gives every slab's tasks their own names; without it, the chunks
# two slabs share are sent to the scheduler twice under one name, and it warns.)

# %%
#| label: to-zarr
STORE = WORK / f"era5_{course.size()}.zarr"
PARTIAL = STORE.with_name(STORE.name + ".partial")
shutil.rmtree(PARTIAL, ignore_errors=True)
n_time, T = ds.time.size, WINDOW["time"]
step_bytes = sum(ds[v].nbytes // n_time for v in time_vars)  # one time step of every variable
slab_steps = max(1, int(N_WORKERS * room / (2 * step_bytes)) // T) * T  # both layouts fit; whole chunks
slabs = [slice(t0, min(t0 + slab_steps, n_time)) for t0 in range(0, n_time, slab_steps)]
print(f"slabs of {slab_steps} steps ({slab_steps * step_bytes / MiB:.0f} MiB decoded): {len(slabs)} slabs; "
      f"room for data {N_WORKERS} × {room / MiB:.0f} MiB")
to_write = for_zarr(ds[time_vars])
with PeakMemory(client) as zarr_memory:
    start = time.perf_counter()
    to_write.to_zarr(PARTIAL, mode="w", consolidated=True, compute=False)  # metadata and coordinates
    for k, rows in enumerate(slabs):
        slab = for_zarr(ds[time_vars].isel(time=rows).drop_vars(["time", "latitude", "longitude"]))
        writing = slab.to_zarr(PARTIAL, region={"time": rows}, compute=False)
        clusters.compute(writing, client, what=f"writing slab {k + 1} of {len(slabs)} of the Zarr store")
    t_to_zarr = time.perf_counter() - start
shutil.rmtree(STORE, ignore_errors=True)
PARTIAL.rename(STORE)  # complete: only now does it get its real name
zarr_peak = max(zarr_memory.peak.values())
store_bytes = sum(f.stat().st_size for f in STORE.rglob("*") if f.is_file())
print(f"to_zarr, once: {t_to_zarr:.1f} s for {time_bytes / MiB:.0f} MiB decoded · {load()}")
print(f"  store {STORE.relative_to(course.ROOT)}: {store_bytes / MiB:.0f} MiB on disk")
print(f"  peak worker memory {zarr_peak / MiB:.0f} MiB of its {worker_limit / MiB:.0f} MiB limit")
print(course.hardware())

# %% [markdown]
# ### The payoff: open it again after a "kernel restart"
# A fair comparison needs a fresh Python process for each (nothing cached in this kernel): a child
# process imports the libraries first, then times only the open.

# %%
#| label: open-times
OPEN_IN_FRESH_PROCESS = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import netCDF4, xarray as xr, zarr
kind, paths = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
if kind == "zarr":
    ds = xr.open_zarr(paths[0], consolidated=True)
else:
    ds = xr.open_mfdataset(paths, chunks={}, data_vars="minimal", coords="minimal", compat="override")
print(json.dumps({"seconds": time.perf_counter() - start, "variables": len(ds.data_vars)}))
"""


def open_in_fresh_process(kind, paths):
    out = subprocess.run([sys.executable, "-c", OPEN_IN_FRESH_PROCESS, kind, *map(str, paths)],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"opening {kind} in a fresh process failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


t_fresh_netcdf = open_in_fresh_process("netcdf", files)
t_fresh_zarr = open_in_fresh_process("zarr", [STORE])
course.table([
    {"how": f"open_mfdataset, {len(files)} NetCDF files", "seconds": f"{t_fresh_netcdf:.3f}"},
    {"how": "open_zarr, consolidated", "seconds": f"{t_fresh_zarr:.3f}"},
    {"how": "to_zarr, once", "seconds": f"{t_to_zarr:.1f}"},
])
print(f"fresh process each · {load()}")
print(course.hardware())

# %% [markdown]
# ### Exercises (module 2)
# **2.1** Open the store with `consolidated=False`. What does the reader have to do instead, and
# what would that cost on object storage?
#
# **2.2** Our chunks suit training windows. Which chunks would suit a time series at one grid point?
#
# <details><summary>Solutions</summary>
#
# **2.1** Without consolidated metadata the reader lists the store and reads one `zarr.json` per array:
# a few small reads locally, but one request each (tens of milliseconds) on S3.
#
# **2.2** All of `time` in one chunk and a small spatial tile, e.g. `{"time": -1, "latitude": 10,
# "longitude": 10}`: one point's series is then one chunk. No chunking is best for everything; keep a
# second copy for the other access pattern (episode 09 rechunks).
# </details>

# %% [markdown]
# ## Module 3 · Feeding PyTorch · Teaching: 35 min · Exercises: 20 min
#
# ### The pain, shown without crashing
# The usual first attempt is `ds.load().to_numpy()`. We do not run it: we ask the lazy dataset what it
# would need (`nbytes`) and compare with what the workers are allowed and what this machine has free.

# %%
#| label: load-pain
zr = xr.open_zarr(STORE, consolidated=True)
need = zr.nbytes
free = psutil.virtual_memory().available
print(f"ds.load().to_numpy() would need     {need / GiB:8.2f} GiB")
print(f"all Dask workers together may use   {total_limit / GiB:8.2f} GiB")
print(f"this machine has available now      {free / GiB:8.2f} GiB of {psutil.virtual_memory().total / GiB:.1f} GiB")
print("verdict:", "it would not fit in the workers" if need > total_limit else "it fits, at this size only",
      "·", "it would not fit in this machine" if need > free else "this machine could hold it, a NAS-sized one not")

# %% [markdown]
# The cluster's job is done; we close it so the DataLoader's workers get the cores.

# %%
client.close()

# %% [markdown]
# ### xbatcher: windows of a lazy dataset
# `xbatcher.BatchGenerator(ds, input_dims=...)` cuts the dataset into windows (here 32 steps of a
# 32 × 32 patch) and hands them out one at a time, still lazy. Two bugs in xbatcher 0.4.0 shape how we
# use it:
#
# 1. `concat_input_dims=True` on a **DataArray with dimension coordinates** gives patches padded with
#    NaN (the coordinates of the patches do not line up when they are concatenated). Pass a Dataset,
#    or drop the coordinates first. We measure it on a small piece of `t2m`:

# %%
#| label: xbatcher-nan-bug
import xbatcher

piece = zr.t2m.isel(time=slice(0, 2), latitude=slice(0, 16), longitude=slice(0, 16)).load()
ways = {"DataArray with coordinates": piece,
        "DataArray without coordinates": piece.drop_vars(["time", "latitude", "longitude"]),
        "Dataset": piece.to_dataset()}
nan_share = {}
for name, obj in ways.items():
    batch = xbatcher.BatchGenerator(obj, input_dims={"latitude": 8, "longitude": 8}, concat_input_dims=True)[0]
    values = (batch.t2m if isinstance(batch, xr.Dataset) else batch).values
    nan_share[name] = float(np.isnan(values).mean())
    print(f"{name:<30} batch shape {values.shape}: {100 * nan_share[name]:5.1f} % NaN")

# %% [markdown]
# 2. `cache=` is meant to keep generated batches in a Zarr store for the next epoch. It looks for
#    `.zgroup`, a Zarr **2** file; Zarr 3 writes `zarr.json` instead, so the cache never hits and every
#    batch is generated and written again. The check, from xbatcher's source:

# %%
#| label: xbatcher-cache-bug
print(inspect.getsource(xbatcher.BatchGenerator._batch_in_cache).strip())
print(f"zarr {zarr.__version__} writes", sorted(p.name for p in STORE.iterdir() if p.is_file()), "at the top of a store")

# %% [markdown]
# ### A torch Dataset over the windows
# `course.feed.PatchWindows` is a `torch.utils.data.Dataset`: item `i` is window `i`, loaded and turned
# into tensors. Inputs: all five variables at step `t`; target: `t2m` at `t + 1`, **one time step
# ahead** (12 h at the default size, 6 h at the workshop size). Every pair of consecutive steps inside a
# window is one sample, so one item is a ready mini-batch of 31 samples. It lives in a module because
# DataLoader workers started with `forkserver` or `spawn` import it by name. Its core:

# %%
#| label: dataset-source
print(inspect.getsource(feed.PatchWindows.window_ds))
print(inspect.getsource(feed.PatchWindows.__getitem__))

# %% [markdown]
# Four choices make it work in parallel, and each has a reason:
#
# - **`preload_batch=False` and `.load()` per item.** We load exactly the window the model needs, when
#   it needs it, in the process that needs it; nothing is loaded ahead in the parent.
# - **DataLoader workers with `multiprocessing_context="forkserver"`** (`spawn` on Windows, which has
#   no forkserver): decoding and copying run in parallel with training, in separate processes (no GIL).
#   Plain `fork` copies a parent that runs threads (Dask, torch, Zarr's event loop): a recipe for
#   deadlocks.
# - **Dask's synchronous scheduler in the workers.** A window is one chunk per variable: a handful of
#   tasks. A thread pool per DataLoader worker only adds start-up and locking, and oversubscribes cores.
# - **Zarr opened in each worker.** Zarr 3 does its I/O on an asyncio event loop in a background thread;
#   a handle inherited across `fork` refers to a loop whose thread did not survive, and hangs. The
#   Dataset pickles only its recipe (`__getstate__`) and `worker_init` opens the store again.
#
# Normalisation needs each variable's mean and spread; a few dozen time steps spread over the training
# period give them well enough (the model does not care about the third decimal).

# %%
#| label: split
INPUTS = ["t2m", "sst", "tp", "u10", "v10"]
n_time = zr.time.size
n_test = max(2 * WINDOW["time"], n_time // 12)  # the last month or so: the test period
train_slice, test_slice = slice(0, n_time - n_test), slice(n_time - n_test, n_time)
sample_steps = zr.isel(time=slice(0, n_time - n_test, max(1, (n_time - n_test) // 48)))[INPUTS].load()
stats = {v: (float(sample_steps[v].mean()), float(sample_steps[v].std())) for v in INPUTS}
train_set = feed.PatchWindows(STORE, INPUTS, "t2m", WINDOW, time_slice=train_slice, stats=stats)
x0, y0 = train_set[0]
window_bytes = 4 * len(INPUTS) * WINDOW["time"] * WINDOW["latitude"] * WINDOW["longitude"]  # as float32
print(f"training: {train_slice.stop} steps → {len(train_set)} windows of {x0.shape[0]} samples; "
      f"test: the last {n_test} steps")
print(f"one item: x {tuple(x0.shape)}, y {tuple(y0.shape)}; "
      f"it reads {window_bytes / MiB:.2f} MiB (as float32)")

# %% [markdown]
# ### Where does an item's time go?
# Before we make anything faster, we measure. We take the same windows and time each layer on its
# own, in this process: plain `zarr` reading exactly the window's chunks (decoding nothing); Xarray
# reading the window from Zarr **without Dask** (`xr.open_zarr(..., chunks=None)`: Xarray indexes the
# Zarr arrays itself); xbatcher's window through Dask (synchronous); and the whole `__getitem__`, which
# also normalises and builds tensors.

# %%
#| label: item-breakdown
def ms_per_item(read_one, items):
    read_one(items[0])  # warm-up
    start = time.perf_counter()
    for i in items[1:]:
        read_one(int(i))
    return 1000 * (time.perf_counter() - start) / (len(items) - 1)


group = zarr.open_group(STORE, mode="r")
no_dask = feed.PatchWindows(STORE, INPUTS, "t2m", WINDOW, time_slice=train_slice, stats=stats, use_dask=False)
T, Y, X = (WINDOW[d] for d in ("time", "latitude", "longitude"))
n_y, n_x = zr.latitude.size // Y, zr.longitude.size // X
items = np.random.default_rng(1).permutation(len(train_set))[:min(len(train_set), 21)]


def plain_zarr_window(i):  # xbatcher numbers windows along time, then latitude, then longitude (C order)
    t, y, x = np.unravel_index(i, (len(train_set) // (n_y * n_x), n_y, n_x))
    return [group[v][t * T:(t + 1) * T, y * Y:(y + 1) * Y, x * X:(x + 1) * X] for v in INPUTS]


with dask.config.set(scheduler="synchronous"):
    breakdown = {
        "plain zarr, the window's chunks": ms_per_item(plain_zarr_window, items),
        "Xarray on Zarr, no Dask, .load()": ms_per_item(no_dask.window_ds, items),
        "xbatcher + Dask, .load()": ms_per_item(train_set.window_ds, items),
        "the whole __getitem__ (+ tensors)": ms_per_item(train_set.__getitem__, items),
    }
course.table([{"one window": k, "ms": f"{v:.1f}",
               "MiB/s": f"{window_bytes / MiB / (v / 1000):.0f}"} for k, v in breakdown.items()])
print(f"{len(items) - 1} windows, one process · {load()}")
print(course.hardware())

# %% [markdown]
# Reading a window's chunks with plain `zarr` is a small part of an item's time. Most of it is per-item
# Python work: Xarray's indexing, xbatcher's, building and running a small Dask graph, converting. It
# costs about the same for a window of a few kB as for one of a few MB, and no disk can make it
# faster. Worse, the Dask row grows with the *store*: every window is sliced out of a graph with one
# task per chunk of the whole store, so at the workshop size (fifty times more chunks) it is many
# times slower than at the default size, while plain `zarr` and Xarray without Dask stay the same. Three remedies follow:
#
# 1. **No Dask for the read.** A window is one chunk per variable, so Dask has nothing to parallelise:
#    open the store with `chunks=None` and Xarray turns the window into one Zarr read per variable.
# 2. **Fewer, larger items.** Pay the per-item work once for many windows: one item is one xbatcher
#    window of a whole **time block** (32 steps of the whole grid, cropped to whole patches). Zarr
#    fetches all of its chunks in one call per variable, and NumPy cuts the block into the 32 × 32
#    patches (a reshape, no Python loop). One item is then a mini-batch of every patch of that block.
# 3. **Fewer passes over the bytes.** Once the Python work is paid per block, NumPy's passes over the
#    data count. The store holds int16 with a `scale_factor` and an `add_offset` (as ERA5 does);
#    Xarray decodes them into float64 (the attributes are float64), then we would convert, normalise
#    and copy each patch. Reading the integers as stored (`mask_and_scale=False`) and decoding,
#    normalising and cutting in one go into a float32 array touches every value twice, not ten times.
#
# `course.feed.PatchBlocks` does all three; the windows it cuts are exactly `PatchWindows`' windows
# (the checks at the end compare them):

# %%
#| label: blocks-source
print(inspect.getsource(feed.PatchBlocks._input_dims))
print(inspect.getsource(feed.PatchBlocks.__getitem__))
print(inspect.getsource(feed.PatchBlocks._decode_into))

# %%
#| label: blocks
blocks = feed.PatchBlocks(STORE, INPUTS, "t2m", WINDOW, time_slice=train_slice, stats=stats)
patches_per_block = n_y * n_x
block_bytes = patches_per_block * window_bytes
xb, yb = blocks[0]
print(f"{len(blocks)} time blocks of {patches_per_block} patches: x {tuple(xb.shape)}, y {tuple(yb.shape)}")
print(f"one item reads {block_bytes / MiB:.1f} MiB (as float32): {patches_per_block} windows at once")

# %% [markdown]
# ### Measured: the raw read rate and the feed rate
# The ceiling is what plain `zarr` reads from the same store: every chunk of every variable, one
# window-sized block of time at a time (Zarr fetches the chunks of a block concurrently), counted as
# float32 values, decoding nothing, shared among as many processes as the DataLoader below has
# workers (a one-process ceiling would be beaten by two workers, and prove nothing); best of two passes. Every reader below is counted the same way: the float32 bytes of
# the windows it delivers (not the tensors, which repeat `t2m` as the target). First one window per
# item in this process: as xbatcher's defaults do it; with our `.load()` and the synchronous scheduler;
# without Dask. Then one time block per item, in this process and through a DataLoader with worker
# processes. Rates are measured after the first items (start-up is reported apart).

# %%
#| label: feed-rates
def raw_read_rate(store, variables, block, processes):
    """float32-equivalent bytes per second that plain zarr reads from the store, whole chunks only,
    in as many processes as the DataLoader has workers (each reads its share); best of two passes."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    group = zarr.open_group(store, mode="r")
    pieces = [(v, t0, t0 + block) for v in variables for t0 in range(0, group[v].shape[0], block)]
    shares = [pieces[i::processes] for i in range(processes)]
    with ProcessPoolExecutor(processes, mp_context=get_context(feed.loader_context())) as pool:
        list(pool.map(feed.read_chunks, [store] * processes, [[]] * processes))  # start-up, imports
        best = 0.0
        for _ in range(2):
            start = time.perf_counter()
            values = sum(pool.map(feed.read_chunks, [store] * processes, shares))
            best = max(best, 4 * values / (time.perf_counter() - start))
    return best


def rate_in_process(dataset, n_items, scheduler=None):
    order = np.random.default_rng(0).permutation(len(dataset))[:n_items]
    with dask.config.set(scheduler=scheduler) if scheduler else dask.config.set({}):
        dataset[int(order[0])]  # warm-up
        start = time.perf_counter()
        for i in order[1:]:
            dataset[int(i)]
    return (len(order) - 1) / (time.perf_counter() - start)


def make_loader(dataset, workers, n_items):
    """A DataLoader over ``n_items`` random items per pass, its workers kept between passes."""
    import torch

    return torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=workers, worker_init_fn=feed.worker_init,
        multiprocessing_context=feed.loader_context() if workers else None, persistent_workers=workers > 0,
        sampler=torch.utils.data.RandomSampler(dataset, num_samples=n_items))


def rate_through_loader(loader, warm_up=2):
    """Items per second through ``loader`` for one pass, after the first ``warm_up`` items; start-up seconds."""
    start = time.perf_counter()
    for k, _ in enumerate(loader):
        if k == warm_up - 1:  # the workers have started and delivered
            startup, steady = time.perf_counter() - start, time.perf_counter()
    return (k + 1 - warm_up) / (time.perf_counter() - steady), startup


N_ITEMS, N_BLOCKS = min(len(train_set) - 1, 40), min(len(blocks), 12)
LOADER_WORKERS = N_WORKERS
EPOCHS, BLOCKS_PER_EPOCH = 3, min(len(blocks), 24)
raw_rate = raw_read_rate(STORE, INPUTS, WINDOW["time"], LOADER_WORKERS)
raw_one = raw_read_rate(STORE, INPUTS, WINDOW["time"], 1)  # one process: compare the in-process rows
xbatcher_defaults = feed.PatchWindows(STORE, INPUTS, "t2m", WINDOW, time_slice=train_slice, stats=stats,
                                      preload_batch=True)
window_loader = make_loader(train_set, LOADER_WORKERS, 32)
loader = make_loader(blocks, LOADER_WORKERS, BLOCKS_PER_EPOCH)  # the training below reuses it
readers = {  # name: (items per second, bytes per item)
    "window · xbatcher defaults": (rate_in_process(xbatcher_defaults, N_ITEMS), window_bytes),
    "window · .load(), synchronous Dask": (rate_in_process(train_set, N_ITEMS, "synchronous"), window_bytes),
    "window · no Dask": (rate_in_process(no_dask, N_ITEMS), window_bytes),
    f"window · DataLoader, {LOADER_WORKERS} workers": (rate_through_loader(window_loader, 2 * LOADER_WORKERS)[0],
                                                       window_bytes),
    "time block · no Dask": (rate_in_process(blocks, N_BLOCKS), block_bytes),
}
del window_loader  # stops its workers
loader_rate, loader_startup = rate_through_loader(loader, warm_up=2 * LOADER_WORKERS)
readers[f"time block · DataLoader, {LOADER_WORKERS} workers"] = (loader_rate, block_bytes)
rows = [{"one item is a …": f"plain zarr, {LOADER_WORKERS} processes (ceiling)", "samples/s": "",
         "MiB/s": f"{raw_rate / MiB:.0f}", "of raw": "100 %"},
        {"one item is a …": "plain zarr, 1 process", "samples/s": "",
         "MiB/s": f"{raw_one / MiB:.0f}", "of raw": f"{100 * raw_one / raw_rate:.0f} %"}]
for name, (items_per_s, nbytes) in readers.items():
    samples = (T - 1) * nbytes // window_bytes  # samples in one item
    rows.append({"one item is a …": name, "samples/s": f"{items_per_s * samples:.0f}",
                 "MiB/s": f"{items_per_s * nbytes / MiB:.0f}",
                 "of raw": f"{100 * items_per_s * nbytes / raw_rate:.0f} %"})
feed_fraction = loader_rate * block_bytes / raw_rate
course.table(rows)
print(f"{feed.loader_context()} DataLoader workers, start-up {loader_startup:.1f} s not counted · {load()}")
print(course.hardware())

# %% [markdown]
# Read the table from the top. One window per item, the per-item work caps the rate whatever we do:
# the synchronous scheduler saves Dask's thread pool, dropping Dask saves the graph, and DataLoader
# workers run items side by side, but each item still pays its Python overhead for a small window.
# One time block per item pays it once for a whole block of windows, and the rate jumps towards the
# ceiling. The DataLoader's workers then read and cut blocks in parallel with each other and with the
# training in the main process: the feed rate to compare with the raw read rate is the last row.
#
# What is left between the two? Compare like with like: the rows read in this process go with plain
# zarr in one process (the second row), the DataLoader rows with the ceiling. Then count the work
# the ceiling does not do: decoding int16 to float32 while normalising and cutting patches, and
# copying every tensor from the workers to the main process (through shared memory). And cores: with
# as many workers as cores, the main process that receives the tensors competes with the workers,
# while the ceiling had the cores to itself; where other work holds the cores, workers queue for them
# too (the load average is printed with the table). Start-up (a fresh interpreter per worker,
# importing torch and xarray) is paid once per `DataLoader`; `persistent_workers=True` keeps the
# workers across passes, so the training below reuses the same workers.
#
# ### A small model, trained for a few epochs
# A two-layer convolutional network predicts the *change* of `t2m` over one step from the five fields
# on the patch; adding the current `t2m` gives the forecast. Each mini-batch is every patch of one time
# block; each epoch visits time blocks in a random order.

# %%
#| label: train
import torch

torch.manual_seed(0)


class StepAhead(torch.nn.Module):
    def __init__(self, n_inputs, hidden=16):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(n_inputs, hidden, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(hidden, 1, 3, padding=1))

    def forward(self, x):  # x: (samples, variables, lat, lon); variable 0 is t2m
        return x[:, :1] + self.net(x)


model = StepAhead(len(INPUTS))
optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
held_out = [train_set[i] for i in np.linspace(0, len(train_set) - 1, 8).astype(int)]  # the same 8 windows


def held_out_loss():
    with torch.no_grad():
        return float(np.mean([torch.nn.functional.mse_loss(model(x), y).item() for x, y in held_out]))


loss_before = held_out_loss()
losses, epoch_rates = [], []
for epoch in range(EPOCHS):
    start, seen = time.perf_counter(), 0
    for x, y in loader:
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        seen += x.shape[0]
    epoch_rates.append(seen / (time.perf_counter() - start))
    print(f"epoch {epoch + 1}: mean loss {np.mean(losses[-BLOCKS_PER_EPOCH:]):.4f} · "
          f"{epoch_rates[-1]:.0f} samples/s (model and feed together)")
del loader  # stops the persistent workers
loss_after = held_out_loss()
print(f"loss on 8 fixed windows: {loss_before:.4f} before training, {loss_after:.4f} after")
print(f"{load()} · {course.hardware()}"[:100])

# %% [markdown]
# Is the feed still what we wait for? Put the training rate next to what the loader delivered on its
# own, measured above:

# %%
#| label: train-vs-feed
feed_samples_per_s = loader_rate * ((T - 1) * block_bytes // window_bytes)
model_bound = feed_samples_per_s > 2 * epoch_rates[-1]
print(f"the loader alone: {feed_samples_per_s:.0f} samples/s · training: {epoch_rates[-1]:.0f} samples/s")
print("the model sets the pace now, not the data" if model_bound else "the data still set the pace")

# %% [markdown]
# Where the loader delivers several times what the training consumes, the model is the bottleneck:
# more loader workers or a faster store would change nothing, and the next step is a faster model
# step (a GPU, episode 11, or a smaller network). Where the two are close, the feed is still worth
# tuning. This is the question to ask of any training loop before optimising either side.

# %%
#| label: fig-loss
#| fig-cap: "Training loss (mean squared error of normalised t2m one step ahead) for every mini-batch: every patch of one time block."
#| fig-alt: "Line chart of the loss against the mini-batch number, falling quickly in the first epoch and then levelling off; vertical dotted lines separate the epochs."
fig, ax = plt.subplots(figsize=(10, 4.5))
ax.plot(losses, color="#0072B2", linewidth=1.5)
for e in range(1, EPOCHS):
    ax.axvline(e * BLOCKS_PER_EPOCH, color="#999999", linestyle=":")
ax.set_yscale("log")
ax.set_xlabel(f"mini-batch ({xb.shape[0]} samples: every patch of one time block)")
ax.set_ylabel("MSE (normalised)")
ax.set_title(f"{EPOCHS} epochs of {BLOCKS_PER_EPOCH} time blocks", loc="left")
fig.text(0.01, 0.01, course.hardware(), fontsize=10, color="#555555")
fig.tight_layout(rect=(0, 0.04, 1, 1))
plt.show()

# %% [markdown]
# ### Exercises (module 3)
# **3.1** Run `rate_through_loader(make_loader(blocks, 0, 8))` (no worker processes) and with one
# worker. Where does the time go in each case?
#
# **3.2** One item of `PatchBlocks` is a mini-batch of every patch of one time block. Your model wants
# mini-batches of 64 samples drawn from many blocks. What would you change, without giving back the
# feed rate?
#
# <details><summary>Solutions</summary>
#
# **3.1** With no workers the main process reads, decodes and trains in turn; with one worker reading
# overlaps with training but reading and cutting is still one core. Compare with the table: if the
# loader is close to the raw read rate, the disk is the limit; if not, the per-item work or the cores.
#
# **3.2** Keep reading in blocks and shuffle afterwards: split each item into mini-batches in the
# training loop, or keep a buffer of a few blocks and draw random samples from it (a shuffle buffer).
# What must stay large is the unit of *reading*, not the unit of *training*.
# </details>

# %% [markdown]
# ## Module 4 · Evaluation per grid point · Teaching: 15 min · Exercises: 15 min
#
# The model is convolutional, so it runs on the whole grid at once. We forecast every step of the test
# period from the step before, and compare with **persistence** (tomorrow equals today: the baseline a
# forecast must beat).

# %%
#| label: predict
test = zr[INPUTS].isel(time=test_slice).load()
x_test = np.stack([np.nan_to_num((test[v].values - stats[v][0]) / stats[v][1]) for v in INPUTS], axis=1)
with torch.no_grad():
    pred_norm = model(torch.from_numpy(x_test[:-1].astype(np.float32))).numpy()[:, 0]
mean_t2m, std_t2m = stats["t2m"]
obs = test.t2m.isel(time=slice(1, None))
pred = obs.copy(data=pred_norm * std_t2m + mean_t2m)
persistence = obs.copy(data=test.t2m.values[:-1])
print(f"forecasts for {obs.time.size} test steps on the whole {obs.latitude.size} × {obs.longitude.size} grid")

# %% [markdown]
# ### The pain: one number
# `sklearn.metrics.mean_squared_error` wants flat arrays. It answers, and loses latitude, longitude and
# time: was the model bad over the Himalaya, or over the sea ice?

# %%
#| label: sklearn-one-number
from sklearn.metrics import mean_squared_error

one_number = mean_squared_error(obs.values.ravel(), pred.values.ravel()) ** 0.5
print(f"sklearn RMSE, model:       {one_number:.3f} K")
print(f"sklearn RMSE, persistence: {mean_squared_error(obs.values.ravel(), persistence.values.ravel()) ** 0.5:.3f} K")

# %% [markdown]
# ### The solution: `xskillscore.rmse(..., dim="time")` keeps the map

# %%
#| label: skill
import xskillscore as xs

rmse_model = xs.rmse(pred, obs, dim="time")
rmse_persistence = xs.rmse(persistence, obs, dim="time")
better = float((rmse_model < rmse_persistence).mean())
print(f"rmse_model: a {type(rmse_model).__name__} of {dict(rmse_model.sizes)}")
print(f"  its mean {float(rmse_model.mean()):.3f} K")
print(f"the model beats persistence at {100 * better:.0f} % of grid points")

# %%
#| label: fig-rmse-maps
#| fig-cap: "Root-mean-square error of t2m one step ahead over the test period at every grid point: the model (left) and persistence (right), same colour scale."
#| fig-alt: "Two global maps in the viridis colour map with coastlines, sharing one colour bar in kelvin; errors are largest over land, especially in the interior of the continents, and smallest over the oceans."
import cartopy.crs as ccrs

vmax = float(np.nanpercentile(np.maximum(rmse_model, rmse_persistence), 99))
fig, axes = plt.subplots(1, 2, figsize=(14, 4.8), subplot_kw={"projection": ccrs.PlateCarree()})
for ax, field, name in zip(axes, (rmse_model, rmse_persistence), ("model", "persistence")):
    im = field.plot(ax=ax, transform=ccrs.PlateCarree(), cmap="viridis", vmin=0, vmax=vmax, add_colorbar=False)
    ax.coastlines(linewidth=0.6)
    ax.set_title(f"{name}: mean RMSE {float(field.mean()):.2f} K", loc="left")
fig.colorbar(im, ax=axes, orientation="horizontal", shrink=0.5, pad=0.06, label="RMSE [K]")
fig.text(0.01, 0.01, course.hardware(), fontsize=10, color="#555555")
plt.show()

# %% [markdown]
# ### Exercises (module 4)
# **4.1** Compute `xs.rmse(pred, obs, dim=["latitude", "longitude"], weights=...)` with
# `cos(latitude)` weights. What does that give, and why the weights?
#
# **4.2** Use `xs.pearson_r` on the predicted and observed *changes* (`pred - persistence` and
# `obs - persistence`) along time. Where does the model have skill beyond persistence?
#
# <details><summary>Solutions</summary>
#
# **4.1** A time series: one RMSE per test step, for the whole globe. Grid cells shrink towards the
# poles; without weights the many small polar cells count as much as the large tropical ones.
# `weights = np.cos(np.deg2rad(obs.latitude)).broadcast_like(obs.isel(time=0))`.
#
# **4.2** `xs.pearson_r(pred - persistence, obs - persistence, dim="time")`: a map of correlations
# between forecast and observed change. Where it is well above zero, the model predicts which way
# t2m moves (typically the diurnal cycle over land); near zero, it only copies persistence.
# </details>
#
# ## Key points
# - `open_mfdataset` pays for parsing every file's header on every open; pass the minimal options.
# - Lazy Dask arrays: `sel` and `isel` are instant; chunks are the unit of work and of memory.
# - A reduction over everything runs in workers allowed far less memory than the data.
# - Convert to a consolidated Zarr store once, chunked for how you will read it; reopening is instant.
# - Never `ds.load()` blindly: compare `ds.nbytes` with what you have.
# - Feed PyTorch from Zarr with xbatcher windows: `.load()` per item, forkserver workers, synchronous
#   Dask in the workers, Zarr opened per worker; measure the feed rate against plain zarr.
# - Per-item Python work, not the disk, limits a feed of small windows: read without Dask
#   (`chunks=None`) and make items large (a time block of many patches), then shuffle for training.
# - Rechunking holds both layouts at once: convert in slabs sized from the workers' measured room.
# - Evaluate with `xskillscore` along `time`: a map of skill, against a baseline.

# %% [markdown]
# ## Checks
# Run by `pytest labs/12_golden_path.py`; the slides never show this cell.

# %% tags=["checks"]
def test_minimal_open_keeps_static_fields_2d():
    assert ds.lsm.dims == ("latitude", "longitude")


def test_time_mean_is_right():
    points = dict(latitude=slice(10, 12), longitude=slice(0, 3))  # a few grid points, recomputed here
    expected = ds.t2m.isel(points).mean("time").compute(scheduler="synchronous")
    np.testing.assert_allclose(time_mean.t2m.isel(points).values, expected.values, rtol=1e-5)


def test_no_worker_over_its_limit():
    assert mean_peak < worker_limit and zarr_peak < worker_limit


def test_zarr_store_equals_netcdf():
    assert not PARTIAL.exists()
    a = zr.t2m.isel(time=slice(0, 4)).values
    b = ds.t2m.isel(time=slice(0, 4)).values
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-3)
    assert zr.t2m.encoding["chunks"] == tuple(WINDOW[d] for d in zr.t2m.dims)


def test_xbatcher_dataset_has_no_nan_padding():
    assert nan_share["Dataset"] == 0.0


def test_items_are_step_ahead_pairs():
    w = train_set.window_ds(0)
    t2m = (w.t2m.transpose("time", "latitude", "longitude").values - stats["t2m"][0]) / stats["t2m"][1]
    x, y = train_set[0]
    np.testing.assert_allclose(x[1:, 0].numpy(), y[:-1, 0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(y[:, 0].numpy(), t2m[1:], rtol=1e-5, atol=1e-5)


def test_blocks_cut_the_same_windows():
    x, y = blocks[1]
    for k in (0, patches_per_block - 1):
        xw, yw = train_set[patches_per_block + k]
        rows = slice(k * (T - 1), (k + 1) * (T - 1))
        np.testing.assert_allclose(x[rows].numpy(), xw.numpy(), atol=1e-4)  # float32 vs float64 decoding
        np.testing.assert_allclose(y[rows].numpy(), yw.numpy(), atol=1e-4)


def test_store_written_in_slabs_of_whole_chunks():
    assert all(rows.start % WINDOW["time"] == 0 for rows in slabs) and slabs[-1].stop == ds.time.size


def test_training_reduced_the_loss():
    assert loss_after < loss_before


def test_skill_maps_keep_the_grid():
    assert rmse_model.dims == ("latitude", "longitude") and rmse_model.shape == obs.shape[1:]
    assert abs(float(((pred - obs) ** 2).mean()) ** 0.5 - one_number) < 1e-3


course.run_checks(globals())
