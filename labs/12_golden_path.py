# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 12 · The golden path: from NetCDF on the NAS to a PyTorch model and a skill map
#
# **Teaching:** 65 min · **Exercises:** 55 min
#
# ## Objectives
# - Open a multi-file NetCDF dataset, say why it is slow, and work on it lazily: chunks, `sel`, a plot.
# - Reduce the whole dataset with `.mean("time")` on a local cluster with a measured memory limit per
#   worker, while the dashboard lights up.
# - Convert it once with `ds.to_zarr(..., consolidated=True)`, chunked (and sharded) for training, and
#   open it in milliseconds afterwards.
# - Feed PyTorch from Zarr: a plain `for batch in BatchGenerator(...)` loop, xbatcher's own
#   `MapDataset` in a `DataLoader`, and a faster feed, each measured against the raw read rate.
# - Evaluate the model per grid point with xskillscore on a period it never saw, against hard
#   baselines, with a significance test.
#
# ## Why this episode?
# *"Our NAS is full of ERA5 NetCDF; our scripts are slow, run out of memory and don't feed machine
# learning."* Episodes 07 and 09 take the first half apart piece by piece. This episode is the whole
# path in one script, in the three modules of the workshop brief: Xarray + Dask, Zarr, the ML
# workflow. N-D arrays only (no dataframes), Dask only through Xarray, one machine with a local
# `Client` for the dashboard. Every number is measured as the lab runs and printed with the machine
# that measured it; every rate called "from disk" is read after the files were dropped from the
# operating system's page cache.

# %%
import inspect
import json
import subprocess
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import dask
import matplotlib.pyplot as plt
import numpy as np
import psutil
import xarray as xr
import zarr

import course
from course import clusters, era5, feed  # noqa: F401  (era5: the data-access contract, course.era5)
from course.bench import evict, load

warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
warnings.filterwarnings("ignore", category=FutureWarning)  # xarray's notices about changing defaults

files = course.era5.files()
disk_bytes = sum(f.stat().st_size for f in files)
WORK = course.era5.writable(course.BUILD / "12_golden_path")  # everything this lab writes goes here
MiB, GiB = 2**20, 2**30
print(f"{len(files)} NetCDF files, {disk_bytes / MiB:.0f} MiB on disk "
      f"({'your own data' if course.era5.own_data() else course.size() + ' size'})")
course.era5.report()  # own files only (COURSE_ERA5): what they are and what normalising did
print(course.hardware())

# %% [markdown]
# ## Module 1 · The Xarray + Dask "Aha!" moment · Teaching: 20 min · Exercises: 15 min
#
# ### The pain: `open_mfdataset` is slow to parse
# `xr.open_mfdataset` opens every file, reads its header and coordinates, checks that the files fit
# together and concatenates them along `time`. With its classic defaults it also compares every
# variable *without* a time dimension across files and copies it along time (the land-sea mask `lsm`
# and orography `z` become 3-D). The minimal options skip that work: concatenate only what has a time
# dimension (`data_vars="minimal"`, `coords="minimal"`) and take the rest from the first file
# (`compat="override"`).
#
# A fair timing of an *open* needs care: the second open in one Python process finds the libraries
# imported and the files' headers in the page cache. So each open runs in a **fresh process** (which
# imports the libraries first and times only the open), after the files were dropped from the page
# cache, and the two options take turns (A B B A), so that neither always goes first.

# %%
#| label: open-options
OPEN_IN_FRESH_PROCESS = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import dask.array, netCDF4, numcodecs, xarray as xr, xarray.backends.zarr, zarr, zarr.codecs
sys.path.insert(0, sys.argv[1])
import course.era5
kind, paths = sys.argv[2], sys.argv[3:]
xr.backends.list_engines()  # imports and finding the backends: once per process, not part of an open
start = time.perf_counter()
if kind == "zarr":
    ds = xr.open_zarr(paths[0], consolidated=True)
elif kind == "minimal":
    ds = xr.open_mfdataset(paths, **course.era5.OPEN,
                           data_vars="minimal", coords="minimal", compat="override")
else:
    ds = xr.open_mfdataset(paths, **course.era5.OPEN)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "lsm": list(ds["lsm"].dims) if "lsm" in ds else None}))
"""


def open_cold_in_fresh_process(kind, paths):
    """Seconds one open takes in a new Python process, the files first dropped from the page cache."""
    cold = evict(*paths)
    out = subprocess.run([sys.executable, "-c", OPEN_IN_FRESH_PROCESS, str(course.ROOT / "labs"), kind,
                          *map(str, paths)], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"opening {kind} in a fresh process failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]) | {"cold": cold}


opens = {"default": [], "minimal": []}
for kind in ("default", "minimal", "minimal", "default"):  # A B B A
    opens[kind].append(open_cold_in_fresh_process(kind, files))
t_open = {kind: np.mean([o["seconds"] for o in runs]) for kind, runs in opens.items()}
course.table([{"open_mfdataset options": "classic defaults", "seconds (mean of 2)": f"{t_open['default']:.2f}",
               "lsm dims": str(tuple(opens["default"][0]["lsm"] or ()))},
              {"open_mfdataset options": "minimal", "seconds (mean of 2)": f"{t_open['minimal']:.2f}",
               "lsm dims": str(tuple(opens["minimal"][0]["lsm"] or ()))}])
faster = "faster" if t_open["minimal"] < t_open["default"] else "not faster"
print(f"minimal options: {faster} here ({t_open['default'] / t_open['minimal']:.1f}× the default's speed) · "
      f"fresh process each, A B B A, {'cold' if opens['default'][0]['cold'] else 'page cache NOT dropped (this OS)'}")
print(load(), "·", course.hardware())

# %% [markdown]
# Why is it slow at all? NetCDF-4 is HDF5: each file has its metadata *inside* it, spread over the
# file. Opening means one HDF5 open per file, reading B-trees and attributes, decoding the time axis of
# every file, then comparing and concatenating in Python. A few dozen files on a local disk take a
# second or two; thousands of files on a NAS, where every small read waits for the network, take
# minutes, and every script, every kernel restart, pays it again.
#
# In this kernel we open once, with the minimal options, and keep the time chunks one **training
# block** long (32 time steps of the whole grid): module 2 writes the Zarr store in those blocks.

# %%
#| label: open-netcdf
BLOCK = 32  # time steps per training block; also the Zarr shard along time
ds = xr.open_mfdataset(files, **course.era5.OPEN, chunks=course.era5.chunks({"time": BLOCK}),  # own: valid_time
                       data_vars="minimal", coords="minimal", compat="override")
time_vars = [v for v in ds.data_vars if "time" in ds[v].dims]
print(f"{len(time_vars)} variables along time: {', '.join(time_vars)}; static: "
      f"{', '.join(v for v in ds.data_vars if v not in time_vars) or 'none'}")
print(f"{ds.time.size} time steps every {int((ds.time[1] - ds.time[0]) / np.timedelta64(1, 'h'))} h, "
      f"{ds.latitude.size} × {ds.longitude.size} grid")

# %% [markdown]
# What each module needs from the files: modules 1 and 2 any variables with a time dimension (here
# all of them); module 3 forecasts `t2m`, from `t2m`, `sst`, `tp`, `u10` and `v10` and the land-sea mask
# `lsm`. With your own files (`COURSE_ERA5`), module 3 uses whichever of its inputs they have and says
# which are missing; without `t2m` it stops with a sentence saying so.

# %%
#| label: needs
INPUTS, TARGET, STATIC = ["t2m", "sst", "tp", "u10", "v10"], "t2m", ["lsm"]
course.era5.needs(ds, INPUTS + STATIC, "part of module 3's inputs")
course.era5.require(ds, [TARGET], "module 3 (it forecasts t2m)")
INPUTS, STATIC = [v for v in INPUTS if v in ds], [v for v in STATIC if v in ds]
print(f"module 3: inputs {', '.join(INPUTS + STATIC)}; target {TARGET}")

# %% [markdown]
# ### The solution: lazy Dask arrays, and chunks
# What came back is **lazy**: each variable is a Dask array, a grid of chunks, each a NumPy array read
# only when needed. `ds.chunks` lists the chunk sizes along each dimension. Chunks are the unit of
# parallelism (one task per chunk) and of memory (a worker holds a few chunks at a time). Each file
# starts a new chunk, so a month of 62 steps is one chunk of 32 and one of 30.

# %%
#| label: chunks
chunk_bytes = max(ds[v].data.nbytes / ds[v].data.npartitions for v in time_vars)
print("ds.chunks:")
for dim, sizes in ds.chunks.items():
    print(f"  {dim:<10} {len(sizes):4d} chunk(s), sizes {sorted(set(sizes))[:4]}")
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
# ### A local cluster with a measured memory limit
# At home you type `client = Client()` and Dask picks workers and limits from your machine. Here the
# limit is **measured, not typed**, so that it says something about the work: we start one worker, let
# it do one small piece of each job it will get (a mean, a Zarr write), and read its idle memory. A
# worker pauses when it passes 80 % of its limit, so idle memory, half as much again for what grows
# while it works (buffers, caches, Dask's bookkeeping) and 16 chunks in flight must stay below that
# line. Each worker gets that, or its share of a quarter of the dataset if that is more.
# `local_only=True` keeps this lab's own cluster even inside a batch job that offers another. The
# dashboard link is printed: open it now and keep it in view.

# %%
#| label: cluster
SHARDS = (BLOCK, -(-ds.latitude.size // 32) * 32, -(-ds.longitude.size // 32) * 32)  # see module 2
ENCODING = {v: {"chunks": (BLOCK, 32, 32), "shards": SHARDS} for v in time_vars}


def idle_worker_bytes():
    """Memory (RSS) of one worker process after one piece of each job (a mean, a Zarr write), now idle."""
    with clusters.client(n_workers=1, threads_per_worker=1, memory_limit=0, local_only=True) as probe:
        piece = ds[time_vars].isel(time=slice(0, BLOCK)).chunk({"time": BLOCK})
        clusters.compute(piece.mean(), probe, what="a warm-up mean")
        warm_up = piece.to_zarr(WORK / f"warm-up_{course.size()}.zarr", mode="w", consolidated=True, encoding=ENCODING,
                                compute=False)
        clusters.compute(warm_up, probe, what="a warm-up write")
        return max(probe.run(lambda: __import__("psutil").Process().memory_info().rss).values())


N_WORKERS = max(1, min(2, course.usable_cores()))
idle_bytes = idle_worker_bytes()
PAUSE = dask.config.get("distributed.worker.memory.pause")  # 0.8: a worker above it stops running tasks
worker_limit = int(max((1.5 * idle_bytes + 16 * chunk_bytes) / PAUSE, ds.nbytes / 4 / N_WORKERS))
client = clusters.client(n_workers=N_WORKERS, threads_per_worker=1, memory_limit=worker_limit, local_only=True)
workers = client.scheduler_info(n_workers=-1)["workers"]
total_limit = sum(w["memory_limit"] for w in workers.values())
print(f"Dask dashboard: {client.dashboard_link}")
print(f"{len(workers)} workers × 1 thread; each may use {worker_limit / MiB:.0f} MiB "
      f"(idle {idle_bytes / MiB:.0f} MiB; chunks of {chunk_bytes / MiB:.1f} MiB)")
share = total_limit / ds.nbytes
print(f"all workers together: {total_limit / MiB:.0f} MiB, {share:.2f}× the decoded dataset "
      f"({ds.nbytes / MiB:.0f} MiB):")
print("  less than the data" if share < 1 else "  more than the data at this size: the floor (idle memory) dominates")
print(course.hardware())

# %% [markdown]
# ### The practical win: `.mean("time")` over everything
# At home: `ds.mean("time").compute()`. Watch the dashboard: *Task Stream* fills with one bar per chunk
# (open, decode, reduce), *Workers* shows each worker's memory staying flat. Two things differ here, once:
# the computation goes through `clusters.compute(obj, client, what=...)`, the course's
# `client.compute(obj).result()` with a deadline (a paused or killed worker ends in a message, never an
# endless wait), and `PeakMemory` samples every worker process's memory from the operating system 50
# times a second, so we know each worker's peak. The files are first dropped from the page cache, so
# the rate is a **disk** rate.
#
# Two changes from the one-liner, both measured by the course benchmark (`python tests/benchmark.py`,
# its *Out-of-core* rows, against plain processes doing the same work from the same cold files):
#
# - **`skipna` only where there are gaps.** `mean` skips NaN by default, which costs a NaN-aware sum and
#   a count per chunk. Only sst has gaps (it is undefined over land), so the other variables get
#   `skipna=False`: `ds[no_gaps].mean("time", skipna=False)` and `ds[gaps].mean("time")`.
# - **The files' own layout for a reduction.** The training blocks of 32 steps suit `to_zarr`, but they
#   cut every monthly file into four reads and four tasks; a mean over time reads best with one chunk per
#   file (at most 128 MB), so it opens the files once more that way (`by_file`, a fraction of a second).
#
# Measured at workshop size on a quiet AMD EPYC with 2 cores (2026-12-03), as shares of what two plain
# processes reach (median of three cold runs each): `ds.mean("time")` in one chunk per file 59 %; with
# `skipna` only for sst 74 %; the same in the 32-step training blocks 35 %. Episode 07 times the
# `skipna` part on your machine, and `python tests/benchmark.py` all three.

# %%
print(inspect.getsource(clusters.PeakMemory))

# %%
#| label: full-mean
time_bytes = sum(ds[v].nbytes for v in time_vars)
# a reduction reads best in the files' own layout: chunks of up to 128 MB, never more than a file
mean_chunk = int(max(1, min(ds.sizes["time"], 128e6 // (4 * ds.latitude.size * ds.longitude.size))))
by_file = xr.open_mfdataset(files, **course.era5.OPEN, chunks=course.era5.chunks({"time": mean_chunk}),
                            data_vars="minimal", coords="minimal", compat="override")  # one chunk per file
first_step = by_file[time_vars].isel(time=0).compute()  # NaN handling only where there are gaps (episode 07)
gaps = [v for v in time_vars if bool(first_step[v].isnull().any())]
no_gaps = [v for v in time_vars if v not in gaps]
mean_cold = evict(*files)
with clusters.PeakMemory(client) as mean_memory, warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # sst has no value over land: "mean of empty slice"
    start = time.perf_counter()
    parts = clusters.compute([by_file[no_gaps].mean("time", skipna=False)]
                             + ([by_file[gaps].mean("time")] if gaps else []),
                             client, what='ds.mean("time") over every file')
    time_mean = xr.merge(parts)
    t_mean = time.perf_counter() - start
mean_peak = max(mean_memory.peak.values())
print(f'ds.mean("time") on {N_WORKERS} workers · {load()}')
print(f"  {t_mean:.1f} s · {disk_bytes / MiB / t_mean:.0f} MiB/s of files "
      f"{'from disk (page cache dropped first)' if mean_cold else 'from the page cache maybe (this OS cannot drop it)'}"
      f" · {time_bytes / MiB / t_mean:.0f} MiB/s decoded")
print(f"  peak worker memory {mean_peak / MiB:.0f} MiB of its {worker_limit / MiB:.0f} MiB limit "
      f"({100 * mean_peak / worker_limit:.0f} %)")
print(course.hardware())

# %% [markdown]
# The memory a worker needs is set by chunk size × threads, not by the dataset's length: the same code
# with a longer record runs within the same kind of limit.

# %%
#| label: sizes
if not course.era5.own_data():
    gen = course.generator()
    small, workshop = gen.parse_size("small"), gen.parse_size("workshop")
    print(f"COURSE_SIZE=workshop holds {workshop.total_bytes() / small.total_bytes():.1f}× the bytes of the "
          f"default size (the generator's own sizes); this run is the {course.size()} size")

# %% [markdown]
# ### Exercises (module 1)
# **1.1** Time `xr.open_mfdataset(files, parallel=True, data_vars="minimal", coords="minimal",
# compat="override")` in this kernel. Faster or slower here? When would you expect it to help?
#
# **1.2** Before you compute anything, how many bytes will `ds.t2m.sel(time="2000-07").mean("time")`
# read? (Hint: which chunks does the selection touch? `.data.npartitions` and `.chunks` help.)
#
# <details><summary>Solutions</summary>
#
# **1.1** `parallel=True` opens the files in Dask tasks on the workers. With a few dozen files on a local
# disk the task overhead and sending each opened dataset back can cost more than it saves; with
# hundreds or thousands of files on a network file system, where each open waits for metadata, it helps.
# (This kernel has the files in its page cache by now: a fair comparison runs it in a fresh process.)
#
# **1.2** The July selection touches every chunk that overlaps July along time, at full latitude and
# longitude: the chunks' sizes, not the selection's, decide what is read. `ds.t2m.sel(time="2000-07").data`
# shows the chunks it needs; whole chunks are read even when you need part of one.
# </details>

# %% [markdown]
# ## Module 2 · Storage for parallel readers: Zarr · Teaching: 10 min · Exercises: 10 min
#
# ### Why Zarr? What lab 09 measured
# NetCDF-4/HDF5 is one file with its metadata inside it. In one process the HDF5 library is not
# thread-safe, so Xarray reads through a lock: **threads** of one process read one chunk at a time.
# Worker **processes** each have their own library and lock, and there NetCDF on a local disk holds
# its own (episode 09 measures it; believe the measurement for your machine). A Zarr store is a
# directory, or a bucket, of independent objects: small JSON metadata (consolidated into one document
# at the top) and the chunks. Where that wins:
#
# - **cheap opens**: one small JSON read instead of parsing every file's header (measured below);
# - **object stores** (S3 and friends): every chunk is one independent request, with no file to open
#   and no header to seek through (episode 09 runs a local S3 store);
# - **many readers** on network and parallel file systems, and readers that are threads;
# - **parallel writes**: different tasks write different objects, with no lock and no shared file
#   (below: every Dask task writes its own shard).
#
# ### One `.chunk()`, chosen for how training reads
# Training reads **time blocks**: 32 steps of the whole grid, one block per mini-batch (module 3). So
# the Dask chunks become exactly that, with one `.chunk()`, and `to_zarr` writes one Zarr **shard**
# per Dask chunk: a shard is one object holding many small **inner chunks**, here windows of 32 steps ×
# 32 × 32 grid points, with an index at its end.
#
# - **The shard is the unit of writing and of files**: one per block and variable, at least a MiB, so
#   the store holds few objects (Zarr's guidance: chunks of about 1 MB or more), and every Dask task
#   writes whole shards that no other task touches. Nothing needs writing in slabs, region by region.
# - **The inner chunk is the unit of reading**: a reader that wants one 32 × 32 window (xbatcher's
#   windows below) reads and decompresses only that chunk from inside the shard.
# - **The rechunk is cheap**: the NetCDF chunks are already whole maps; `.chunk({"time": 32})` only
#   regroups time steps across month boundaries, so each Dask chunk is built from at most two file
#   chunks and a worker never holds more than a few blocks.
#
# A shard's shape must be a whole number of inner chunks, so along latitude and longitude it is
# rounded up past the grid's edge; the part beyond the grid is never written.

# %%
#| label: shards
print("ds.chunk({'time': BLOCK}).to_zarr(STORE, consolidated=True, encoding=ENCODING)")
print(f"ENCODING for each of {', '.join(time_vars)}:")
print(f"  {ENCODING[time_vars[0]]}")
inner_bytes = 4 * BLOCK * 32 * 32
shard_bytes = 4 * BLOCK * ds.latitude.size * ds.longitude.size
print(f"inner chunk {inner_bytes / MiB:.3f} MiB (float32, before compression) · "
      f"shard = one block of the whole grid, {shard_bytes / MiB:.1f} MiB")

# %%
#| label: to-zarr
STORE = WORK / f"era5_{course.size()}.zarr"
PARTIAL = STORE.with_name(STORE.name + ".partial")  # renamed when complete: a killed run leaves no half store
to_write = ds.chunk({"time": BLOCK})  # one Dask chunk = one shard: whole maps of 32 steps
with clusters.PeakMemory(client) as zarr_memory:
    start = time.perf_counter()
    writing = to_write.to_zarr(PARTIAL, mode="w", consolidated=True, encoding=ENCODING, compute=False)
    clusters.compute(writing, client, what="writing the Zarr store")
    t_to_zarr = time.perf_counter() - start
if STORE.exists():
    import shutil

    shutil.rmtree(STORE)
PARTIAL.rename(STORE)
zarr_peak = max(zarr_memory.peak.values())
store_files = [f for f in STORE.rglob("*") if f.is_file()]
store_bytes = sum(f.stat().st_size for f in store_files)
print(f"to_zarr, once: {t_to_zarr:.1f} s for {time_bytes / MiB:.0f} MiB decoded "
      f"({time_bytes / MiB / t_to_zarr:.0f} MiB/s) on {N_WORKERS} workers · {load()}")
print(f"  store {STORE.name}: {store_bytes / MiB:.0f} MiB in {len(store_files)} files "
      f"({len(to_write.t2m.data.chunks[0])} shards per variable)")
print(f"  peak worker memory {zarr_peak / MiB:.0f} MiB of its {worker_limit / MiB:.0f} MiB limit "
      f"({100 * zarr_peak / worker_limit:.0f} %)")
print(course.hardware())

# %% [markdown]
# ### The payoff: open it again after a "kernel restart"
# Each open in a fresh process, cold, in turns, as in module 1.

# %%
#| label: open-times
zarr_opens = [open_cold_in_fresh_process("zarr", [STORE]) for _ in range(2)]
t_open["zarr"] = np.mean([o["seconds"] for o in zarr_opens])
course.table([
    {"how": f"open_mfdataset, {len(files)} NetCDF files, minimal options", "seconds": f"{t_open['minimal']:.3f}"},
    {"how": "open_zarr, consolidated", "seconds": f"{t_open['zarr']:.3f}"},
    {"how": "to_zarr, once", "seconds": f"{t_to_zarr:.1f}"},
])
gain = t_open["minimal"] - t_open["zarr"]
print(f"open_zarr: {t_open['minimal'] / t_open['zarr']:.1f}× as fast as open_mfdataset here;\n"
      f"  the conversion costs as much as {t_to_zarr / gain:.0f} opens save" if gain > 0 else
      "open_zarr: not faster than open_mfdataset here\n  (a few local files, a busy machine)")
print(f"fresh process each, cold, mean of 2 · {load()}")
print(course.hardware())

# %% [markdown]
# ### Or no copy at all: a virtual store
# Episode 09 builds a **virtual** Zarr store: VirtualiZarr reads each NetCDF file's chunk index once
# and keeps those references in an Icechunk repository; `xr.open_zarr` on the repository then reads the
# NetCDF files' own bytes. Nothing is copied, so the store keeps the files' chunking: good for the
# reads the files were written for (whole maps here), no help for any other. The same open, full mean
# and one point's series, each in a fresh process from a cold cache, on both stores:
#
# ```python
# vds = open_virtual_mfdataset(paths, parser=HDFParser(), registry=registry)  # chunk indexes, once
# vds.vz.to_icechunk(session.store); session.commit("references")             # episode 09 shows each step
# ds = xr.open_zarr(session.store, consolidated=False)                         # the same call as any Zarr
# ```

# %%
#| label: virtual-store
import shutil

from course import virtual

VSTORE = WORK / "era5_virtual.icechunk"
shutil.rmtree(VSTORE, ignore_errors=True)
disk = lambda path: sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
try:
    start = time.perf_counter()
    virtual.build(files, VSTORE)
    t_virtual = time.perf_counter() - start
except virtual.NotVirtual as err:  # e.g. files of different formats: the converted store is the route
    virtual_reads = None
    print(f"no virtual store over these files: {err}")
else:
    steps = virtual.time_block(files)  # the references' chunk along time (a day for monthly files)
    point = {"latitude": 52.0, "longitude": 5.0}
    virtual_reads = {
        "virtual (Icechunk)": virtual.cold_read_in_fresh_process(
            "icechunk", VSTORE, files, max(steps, BLOCK // steps * steps), point) | {"build": t_virtual},
        "converted (to_zarr)": virtual.cold_read_in_fresh_process(
            "zarr", STORE, files, BLOCK, point) | {"build": t_to_zarr},
    }
    course.table([{"store": name, "built in s": f"{r['build']:.1f}", "open s": f"{r['open s']:.3f}",
                   "full mean s": f"{r['mean s']:.2f}", "one point s": f"{r['point s']:.2f}",
                   "disk MiB": f"{disk(VSTORE if 'virtual' in name else STORE) / MiB:.2f}"}
                  for name, r in virtual_reads.items()], align="lrrrrr")
    v, z = virtual_reads.values()
    print(f"virtual store: {v['mean s'] / z['mean s']:.1f}× the converted store's full-mean time, "
          f"{v['point s'] / z['point s']:.1f}× its point time;")
    print(f"  it cost {t_virtual:.1f} s to build against {t_to_zarr:.1f} s for to_zarr, and copies no data")
    print(f"fresh process each, {'cold' if v['cold'] and z['cold'] else 'WARM (no posix_fadvise here)'} · {load()}")
print(course.hardware())

# %% [markdown]
# ### Exercises (module 2)
# **2.1** *(write code)* A colleague reads **time series at single grid points**. Write the `to_zarr`
# line that stores `t2m` for them in `WORK / "points.zarr"`, with chunks of your choice, and time
# reading one point's whole series from it and from our store.
#
# **2.2** Open the store with `consolidated=False`. What does the reader have to do instead, and
# what would that cost on object storage?
#
# <details><summary>Solutions</summary>
#
# **2.1** All of `time` in one chunk and a small spatial tile:
#
# ```python
# points = ds[["t2m"]].chunk({"time": -1, "latitude": 10, "longitude": 10})
# points.to_zarr(WORK / "points.zarr", mode="w", consolidated=True,
#                encoding={"t2m": {"chunks": (ds.time.size, 10, 10)}})
# for path in (WORK / "points.zarr", STORE):
#     start = time.perf_counter()
#     xr.open_zarr(path).t2m.isel(latitude=40, longitude=50).values
#     print(path.name, f"{time.perf_counter() - start:.3f} s")
# ```
#
# Our store makes the point's series read one inner chunk per block (every block); the point store
# reads one chunk. No chunking is best for everything; keep a second copy for the other access
# pattern (episode 09 rechunks).
#
# **2.2** Without consolidated metadata the reader lists the store and reads one `zarr.json` per array:
# a few small reads locally, but one request each (tens of milliseconds) on S3.
# </details>

# %% [markdown]
# ## Module 3 · The ML application workflow · Teaching: 35 min · Exercises: 30 min
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
print("verdict:", "it would not fit in the workers" if need > total_limit else "it fits in the workers, at this size only",
      "·", "it would not fit in this machine" if need > free else "this machine could hold it, a NAS-sized one not")

# %% [markdown]
# The cluster's job is done; we close it so the DataLoader's workers get the cores.

# %%
client.close()

# %% [markdown]
# ### A period the model never sees
# Before any batch is drawn we set the **held-out period** aside: the last quarter of the record (in
# whole blocks), with a gap of one day before it so that no training sample is the day before a test
# sample. Training reads only the steps before the gap; everything we monitor during training and
# everything we evaluate comes from the held-out period. The normalisation statistics come from
# training steps only.

# %%
#| label: split
n_time = zr.time.size
step_hours = int((zr.time[1] - zr.time[0]) / np.timedelta64(1, "h"))
steps_per_day = 24 // step_hours
test_start = (n_time - n_time // 4) // BLOCK * BLOCK
train_slice, test_slice = slice(0, test_start - steps_per_day), slice(test_start, n_time)
no_dask = xr.open_zarr(STORE, consolidated=True, chunks=None)  # Xarray indexes Zarr itself: no Dask
sample_steps = no_dask[INPUTS + STATIC].isel(time=slice(0, train_slice.stop, 5)).load()
stats = {v: (float(sample_steps[v].mean()), float(sample_steps[v].std())) for v in INPUTS + STATIC}
print(f"training: steps 0–{train_slice.stop - 1} ({str(zr.time.values[0])[:10]} to "
      f"{str(zr.time.values[train_slice.stop - 1])[:10]}); gap of one day")
print(f"held out: steps {test_start}–{n_time - 1} ({str(zr.time.values[test_start])[:10]} to "
      f"{str(zr.time.values[-1])[:10]})")

# %% [markdown]
# ### xbatcher: the plain `for batch in generator:` loop
# `xbatcher.BatchGenerator(ds, input_dims=...)` cuts the dataset into windows, here 32 steps of a
# 32 × 32 patch (one inner chunk of the store), and hands them out one at a time, lazy until you ask
# for values. This is the loop of the workshop brief, as you would type it:

# %%
#| label: plain-loop
import xbatcher

WINDOW = {"time": BLOCK, "latitude": min(32, zr.latitude.size), "longitude": min(32, zr.longitude.size)}  # a coarse own grid: all of it
train = zr.isel(time=train_slice)
generator = xbatcher.BatchGenerator(train[INPUTS], input_dims=WINDOW)
N_WINDOWS = min(len(generator), 40)
loop_cold = evict(STORE)
start = time.perf_counter()
for k, batch in enumerate(generator):
    x = batch.to_dataarray("variable").values  # (variable, time, latitude, longitude), NumPy
    if k + 1 == N_WINDOWS:
        break
t_loop = time.perf_counter() - start
window_bytes = x.nbytes
n_y, n_x = zr.latitude.size // WINDOW["latitude"], zr.longitude.size // WINDOW["longitude"]
covered = n_y * WINDOW["latitude"] * n_x * WINDOW["longitude"] / (zr.latitude.size * zr.longitude.size)
print(f"{len(generator)} windows; each batch: {type(batch).__name__} → NumPy {x.shape}, {window_bytes / MiB:.2f} MiB")
print(f"{N_WINDOWS} windows in {t_loop:.2f} s: {N_WINDOWS / t_loop:.0f} windows/s, "
      f"{N_WINDOWS * window_bytes / MiB / t_loop:.0f} MiB/s · {load()}")
print(f"whole windows cover {100 * covered:.1f} % of the grid: xbatcher drops the partial ones at the edges")

# %% [markdown]
# Two things to know about xbatcher 0.4.0 before we build on it:
#
# 1. `concat_input_dims=True` on a **DataArray with dimension coordinates** gives patches padded with
#    NaN (the coordinates of the patches do not line up when they are concatenated). Pass a Dataset,
#    or drop the coordinates first. We measure it on a small piece of `t2m`:

# %%
#| label: xbatcher-nan-bug
piece = zr.t2m.isel(time=slice(0, 2), latitude=slice(0, 16), longitude=slice(0, 16)).load()
ways = {"DataArray with coordinates": piece,
        "DataArray without coordinates": piece.drop_vars(["time", "latitude", "longitude"]),
        "Dataset": piece.to_dataset()}
nan_share = {}
for name, obj in ways.items():
    b = xbatcher.BatchGenerator(obj, input_dims={"latitude": 8, "longitude": 8}, concat_input_dims=True)[0]
    values = (b.t2m if isinstance(b, xr.Dataset) else b).values
    nan_share[name] = float(np.isnan(values).mean())
    print(f"{name:<30} batch shape {values.shape}: {100 * nan_share[name]:5.1f} % NaN")

# %% [markdown]
# 2. `cache=` is meant to keep generated batches in a Zarr store for the next epoch. It looks for
#    `.zgroup`, a Zarr **2** file; Zarr 3 writes `zarr.json` instead, so the cache never hits and every
#    batch is generated and written again. The check, from the installed xbatcher's source:

# %%
#| label: xbatcher-cache-bug
print(inspect.getsource(xbatcher.BatchGenerator._batch_in_cache).strip())
print(f"zarr {zarr.__version__} writes", sorted(p.name for p in STORE.iterdir() if p.is_file()), "at the top of a store")

# %% [markdown]
# ### xbatcher's own PyTorch loader, in a `DataLoader`
# `xbatcher.loaders.torch.MapDataset(X_generator, y_generator)` turns two generators into a
# `torch.utils.data.Dataset`: item `i` is window `i` of each, computed with Dask and converted to tensors.
# The inputs are the five variables at steps *t*, the target `t2m` one step later: the same windows,
# shifted by one step. A `DataLoader` with worker processes computes items side by side, each in its
# own process (no GIL). `multiprocessing_context="forkserver"` (Windows: `spawn`) starts the workers
# from a clean process: plain `fork` copies a parent that runs threads (Dask, torch, Zarr's event
# loop), a recipe for deadlocks.

# %%
#| label: map-dataset
import torch
from xbatcher.loaders.torch import MapDataset

LOADER_WORKERS = N_WORKERS
X_generator = xbatcher.BatchGenerator(
    zr[INPUTS].isel(time=slice(0, train_slice.stop - 1)).to_dataarray("variable"), input_dims=WINDOW)
y_generator = xbatcher.BatchGenerator(zr[TARGET].isel(time=slice(1, train_slice.stop)), input_dims=WINDOW)
windows = MapDataset(X_generator, y_generator)
order = [int(i) for i in np.random.default_rng(0).permutation(len(windows))[:N_WINDOWS]]
window_loader = torch.utils.data.DataLoader(windows, batch_size=None, sampler=order,
                                            num_workers=LOADER_WORKERS,
                                            multiprocessing_context=feed.loader_context())
xw, yw = windows[0]
print(f"{len(windows)} items: x {tuple(xw.shape)}, y {tuple(yw.shape)} · "
      f"{LOADER_WORKERS} workers, {feed.loader_context()}")

# %% [markdown]
# ### Measured: each reader against its own ceiling
# A rate means little alone. Each reader gets a **ceiling**: plain `zarr` reading exactly the same
# slices (same items, same variables) in the same number of processes, one pass, decoding nothing
# else. Before each reader and each ceiling the store is dropped from the page cache, so both read from
# disk. Rates count the float32 bytes of the slices read. A DataLoader's first item per worker waits
# for the worker to start (import torch, xarray); that start-up is reported apart, and those items
# are left out of both sides.

# %%
#| label: rate-helpers
def ceiling(pieces, processes):
    """Bytes per second plain zarr reads ``pieces`` from the cold store, one pass, in ``processes``
    processes (1: this process), each reading its share."""
    if processes == 1:
        evict(STORE)
        start = time.perf_counter()
        return 4 * feed.read_pieces(STORE, pieces) / (time.perf_counter() - start)
    with ProcessPoolExecutor(processes, mp_context=get_context(feed.loader_context())) as pool:
        list(pool.map(feed.read_pieces, [STORE] * processes, [[]] * processes))  # start-up, imports
        evict(STORE)
        start = time.perf_counter()
        values = sum(pool.map(feed.read_pieces, [STORE] * processes, [pieces[i::processes] for i in range(processes)]))
        return 4 * values / (time.perf_counter() - start)


def through_loader(loader, skip):
    """Items per second through one pass of ``loader``, cold, after its first ``skip`` items; start-up s."""
    evict(STORE)
    start = time.perf_counter()
    for k, _ in enumerate(loader):
        if k == skip - 1:  # every worker has started and delivered
            startup, steady = time.perf_counter() - start, time.perf_counter()
    return (k + 1 - skip) / (time.perf_counter() - steady), startup


def window_pieces(items, variables, shift=0):
    """The plain-zarr slices of xbatcher windows ``items`` (numbered along time, latitude, longitude)."""
    T, Y, X = WINDOW["time"], WINDOW["latitude"], WINDOW["longitude"]
    out = []
    for i in items:
        t, y, x = np.unravel_index(i, (len(generator) // (n_y * n_x), n_y, n_x))
        out += [(v, slice(t * T + shift, (t + 1) * T + shift), slice(y * Y, (y + 1) * Y), slice(x * X, (x + 1) * X))
                for v in variables]
    return out

# %%
#| label: feed-seed
map_rate, map_startup = through_loader(window_loader, LOADER_WORKERS)
del window_loader  # stops its workers
map_bytes = window_bytes + window_bytes // len(INPUTS)  # inputs and the target
rows = [
    {"reader": "for batch in BatchGenerator(...)", "processes": 1,
     "MiB/s": N_WINDOWS * window_bytes / MiB / t_loop,
     "ceiling MiB/s": ceiling(window_pieces(range(N_WINDOWS), INPUTS), 1) / MiB},
    {"reader": "MapDataset → DataLoader", "processes": LOADER_WORKERS, "MiB/s": map_rate * map_bytes / MiB,
     "ceiling MiB/s": ceiling(window_pieces(order[LOADER_WORKERS:], INPUTS)
                              + window_pieces(order[LOADER_WORKERS:], [TARGET], shift=1), LOADER_WORKERS) / MiB},
]
course.table([r | {"MiB/s": f"{r['MiB/s']:.0f}", "ceiling MiB/s": f"{r['ceiling MiB/s']:.0f}",
                   "of its ceiling": f"{100 * r['MiB/s'] / r['ceiling MiB/s']:.0f} %"} for r in rows])
print("the window readers reach " + " and ".join(f"{100 * r['MiB/s'] / r['ceiling MiB/s']:.0f} %" for r in rows)
      + " of their ceilings")
print(f"windows of {WINDOW['time']}×{WINDOW['latitude']}×{WINDOW['longitude']}, cold store each time")
print(f"DataLoader start-up {map_startup:.1f} s not counted · {load()}")
print(course.hardware())

# %% [markdown]
# Where a reader falls short of its ceiling, the time goes into work that is paid **per item**,
# whatever its size: xbatcher's indexing, a Dask graph built and run for
# every window (sliced out of a graph with one task per chunk of the whole store, so it grows with
# the store), Xarray's bookkeeping and the conversion to tensors. A window of 32 × 32 points is too
# small to hide it.
#
# ### The remedy: fewer, larger items, and no Dask for the read
# `course.feed.TimeBlocks` keeps xbatcher (its windows are now whole **time blocks**: 32 steps of the
# whole grid, one shard per variable) and changes three things:
#
# 1. **No Dask for the read.** A block is one Zarr read per variable, so Dask has nothing to
#    parallelise: the store is opened with `chunks=None` and Xarray indexes the Zarr arrays itself.
# 2. **One item is a mini-batch.** Every step of the block is a sample, on the whole grid (so every
#    grid cell is trained on, unlike the windows above), and the per-item work is paid once per block.
# 3. **One pass over the bytes.** The inputs are normalised straight into one float32 array, with the
#    land-sea mask and the local time of day (the diurnal cycle the forecast needs) as extra channels.
#
# It is a class in a module because DataLoader workers started with `forkserver` or `spawn` import it by
# name (a class defined in a notebook cannot be found there). Its core:

# %%
#| label: blocks-source
print(inspect.getsource(feed.TimeBlocks._open))
print(inspect.getsource(feed.TimeBlocks.pair))

# %%
#| label: feed-remedy
blocks = feed.TimeBlocks(STORE, INPUTS, TARGET, BLOCK, time_slice=train_slice, stats=stats,
                         static=STATIC, local_time=True)
block_bytes = 4 * len(INPUTS) * BLOCK * zr.latitude.size * zr.longitude.size
EPOCHS, BLOCKS_PER_EPOCH = 3, min(len(blocks), 24)
rng = np.random.default_rng(0)
block_order = [int(i) for i in rng.permutation(len(blocks))[:BLOCKS_PER_EPOCH]]  # reshuffled per epoch
loader = torch.utils.data.DataLoader(  # the training below reuses its workers
    blocks, batch_size=None, sampler=block_order, num_workers=LOADER_WORKERS,
    multiprocessing_context=feed.loader_context(), worker_init_fn=feed.worker_init, persistent_workers=True)
blocks_rate, blocks_startup = through_loader(loader, LOADER_WORKERS)
full = (slice(None), slice(None))
block_pieces = [(v, slice(i * BLOCK, (i + 1) * BLOCK), *full) for i in block_order[LOADER_WORKERS:] for v in INPUTS]
rows.append({"reader": "TimeBlocks → DataLoader", "processes": LOADER_WORKERS,
             "MiB/s": blocks_rate * block_bytes / MiB, "ceiling MiB/s": ceiling(block_pieces, LOADER_WORKERS) / MiB})
feed_fraction = rows[-1]["MiB/s"] / rows[-1]["ceiling MiB/s"]
map_fraction = rows[1]["MiB/s"] / rows[1]["ceiling MiB/s"]
course.table([r | {"MiB/s": f"{r['MiB/s']:.0f}", "ceiling MiB/s": f"{r['ceiling MiB/s']:.0f}",
                   "of its ceiling": f"{100 * r['MiB/s'] / r['ceiling MiB/s']:.0f} %"} for r in rows])
print(f"TimeBlocks: {100 * feed_fraction:.0f} % of its ceiling, MapDataset {100 * map_fraction:.0f} % of its own: "
      + ("the larger items pay" if feed_fraction > map_fraction else "no gain here: look at the load"))
print(f"{len(blocks)} blocks of {BLOCK - 1} samples on the whole grid · cold store each time")
print(f"start-up {blocks_startup:.1f} s not counted · {load()}")
print(course.hardware())

# %% [markdown]
# Compare the last row with its ceiling, and with the rows above. What is left between a feed and its
# ceiling: normalising into float32, building the extra channels, and
# copying every tensor from the workers to the main process (through shared memory); and cores: with
# as many workers as cores, the main process that receives the tensors competes with them, and where
# other work holds the cores, workers queue too (the load average is printed with the table).
#
# ### A small model, trained on the whole grid
# A two-layer convolutional network predicts the *change* of `t2m` over one step from the inputs at step
# *t*; adding the current `t2m` gives the forecast. Each mini-batch is one time block; each epoch visits
# blocks in a new random order. We monitor the loss on blocks of the **held-out** period, never trained
# on, and change nothing because of it (no early stopping): so the evaluation below stays honest.

# %%
#| label: train
torch.manual_seed(0)


class StepAhead(torch.nn.Module):
    def __init__(self, channels, hidden=16):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(channels, hidden, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(hidden, 1, 3, padding=1))

    def forward(self, x):  # x: (samples, channels, lat, lon); channel 0 is t2m
        return x[:, :1] + self.net(x)


model = StepAhead(blocks.channels)
optimiser = torch.optim.Adam(model.parameters(), lr=5e-3)
held_out = feed.TimeBlocks(STORE, INPUTS, TARGET, BLOCK, time_slice=test_slice, stats=stats,
                           static=STATIC, local_time=True)
monitored = [held_out[i] for i in np.linspace(0, len(held_out) - 1, min(3, len(held_out))).astype(int)]


def held_out_loss():
    with torch.no_grad():
        return float(np.mean([torch.nn.functional.mse_loss(model(x), y).item() for x, y in monitored]))


monitor = [held_out_loss()]
losses, epoch_rates = [], []
for epoch in range(EPOCHS):
    block_order[:] = [int(i) for i in rng.permutation(len(blocks))[:BLOCKS_PER_EPOCH]]  # a new order
    start, seen = time.perf_counter(), 0
    for x, y in loader:
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        seen += x.shape[0]
    epoch_rates.append(seen / (time.perf_counter() - start))
    monitor.append(held_out_loss())
    print(f"epoch {epoch + 1}: training loss {np.mean(losses[-BLOCKS_PER_EPOCH:]):.4f} · held-out "
          f"{monitor[-1]:.4f} · {epoch_rates[-1]:.0f} samples/s (model and feed together)")
del loader  # stops the persistent workers
print(f"held-out loss {monitor[0]:.4f} before training, {monitor[-1]:.4f} after · {load()}")
print(course.hardware())

# %% [markdown]
# Is the feed still what we wait for? Put the training rate next to what the loader delivered on its
# own, measured above:

# %%
#| label: train-vs-feed
feed_samples_per_s = blocks_rate * (BLOCK - 1)
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
#| fig-cap: "Training loss (mean squared error of normalised t2m one step ahead) for every mini-batch, and the loss on held-out blocks after each epoch."
#| fig-alt: "Line chart of the loss against the mini-batch number on a log scale: the training loss falls in the first epoch and then levels off; dots mark the held-out loss at the end of each epoch; dotted vertical lines separate the epochs."
fig, ax = plt.subplots(figsize=(10, 4.5))
ax.plot(losses, color="#0072B2", linewidth=1.5, label="training mini-batches")
ax.plot([e * BLOCKS_PER_EPOCH for e in range(EPOCHS + 1)], monitor, "o--", color="#D55E00",
        label="held-out blocks")
for e in range(1, EPOCHS):
    ax.axvline(e * BLOCKS_PER_EPOCH, color="#999999", linestyle=":")
ax.set_yscale("log")
ax.set_xlabel(f"mini-batch ({BLOCK - 1} samples: one time block of the whole grid)")
ax.set_ylabel("MSE (normalised)")
ax.legend(loc="upper right")
ax.set_title(f"{EPOCHS} epochs of {BLOCKS_PER_EPOCH} time blocks", loc="left")
fig.text(0.01, 0.01, course.hardware(), fontsize=10, color="#555555")
fig.tight_layout(rect=(0, 0.04, 1, 1))
plt.show()

# %% [markdown]
# ### Exercises (training)
# **3.1** *(write code)* Write your own training loop with the plain generator: a fresh
# `StepAhead(blocks.channels)`, a `for batch in xbatcher.BatchGenerator(...)` loop over time blocks of
# the training period (`input_dims` of 32 steps and the whole grid), `blocks.pair(batch.load())` to make
# the tensors, and an optimiser step per batch. Stop after five batches and print the losses.
#
# **3.2** Run `through_loader` on a `DataLoader` over `blocks` with `num_workers=0`, then with one
# worker. Where does the time go in each case?
#
# <details><summary>Solutions</summary>
#
# **3.1**
#
# ```python
# mine = StepAhead(blocks.channels)
# opt = torch.optim.Adam(mine.parameters(), lr=5e-3)
# whole = {"time": BLOCK, "latitude": zr.latitude.size, "longitude": zr.longitude.size}
# for k, batch in enumerate(xbatcher.BatchGenerator(no_dask[INPUTS].isel(time=train_slice), input_dims=whole)):
#     x, y = blocks.pair(batch.load())
#     opt.zero_grad()
#     loss = torch.nn.functional.mse_loss(mine(x), y)
#     loss.backward()
#     opt.step()
#     print(k, loss.item())
#     if k == 4:
#         break
# ```
#
# Reading and training now take turns in one process; the DataLoader's workers read the next blocks
# while the model trains.
#
# **3.2** With no workers the main process reads, normalises and (in training) computes in turn; with
# one worker reading overlaps the main process but is still one core. Compare with the table: near the
# ceiling, the disk (or Zarr's decompression) is the limit; far below it, the per-item work or the cores.
# </details>
#
# ### Evaluation: the pain of one number
# The model is convolutional, so it runs on the whole grid at once. We forecast every step of the
# held-out period from the step before. `sklearn.metrics.mean_squared_error` wants flat arrays: it
# answers, and loses latitude, longitude and time. Was the model bad over the Himalaya, or over the sea?

# %%
#| label: predict
mean_t2m, std_t2m = stats[TARGET]
pieces = []
for t0 in range(test_start, n_time - 1, BLOCK):  # the held-out period, one block (+1 step) at a time
    w = no_dask[INPUTS].isel(time=slice(t0, min(t0 + BLOCK + 1, n_time))).load()
    with torch.no_grad():
        pieces.append(model(blocks.pair(w)[0]).numpy()[:, 0] * std_t2m + mean_t2m)
obs = no_dask.t2m.isel(time=slice(test_start + 1, n_time)).load()  # every forecast's valid time
pred = obs.copy(data=np.concatenate(pieces))
print(f"{obs.time.size} forecasts, one step ({step_hours} h) ahead, on the whole "
      f"{obs.latitude.size} × {obs.longitude.size} grid: every cell was trained on")

# %%
#| label: sklearn-one-number
from sklearn.metrics import mean_squared_error

one_number = mean_squared_error(obs.values.ravel(), pred.values.ravel()) ** 0.5
print(f"sklearn RMSE, model: {one_number:.3f} K: one number, no map, no time")

# %% [markdown]
# ### Baselines a forecast must beat
# A forecast that beats a weak baseline proves little. Three, each using nothing from the held-out
# period that the model could not have used:
#
# - **persistence at the step**: the next step equals this one;
# - **24-hour persistence**: equals the same hour yesterday. At a step of several hours the diurnal
#   cycle dominates the change over one step; yesterday at the same hour has the same phase of it;
# - **climatology with its diurnal cycle**: at every grid point, a fitted mean, seasonal harmonic and
#   diurnal harmonic, fitted to the **training period only** (least squares, `np.linalg.lstsq`).

# %%
#| label: baselines
import xskillscore as xs


def harmonics(times):
    """Design matrix: a constant, the annual and the diurnal cycle (cosine and sine of each)."""
    t = times.values
    day = 2 * np.pi * ((t - t.astype("datetime64[Y]")) / np.timedelta64(1, "D")) / 365.25
    hour = 2 * np.pi * ((t - t.astype("datetime64[D]")) / np.timedelta64(1, "h")) / 24
    return np.stack([np.ones_like(day), np.cos(day), np.sin(day), np.cos(hour), np.sin(hour)], axis=1)


fit = no_dask.t2m.isel(time=slice(0, train_slice.stop, 5)).load()  # every 5th step: all hours of the day
coef = np.linalg.lstsq(harmonics(fit.time), fit.values.reshape(fit.time.size, -1), rcond=None)[0]
lag = steps_per_day
forecasts = {
    "model": pred,
    "persistence at the step": obs.copy(data=no_dask.t2m.isel(time=slice(test_start, n_time - 1)).values),
    "24-hour persistence": obs.copy(data=no_dask.t2m.isel(time=slice(test_start + 1 - lag, n_time - lag)).values),
    "climatology (season + diurnal cycle)": obs.copy(
        data=(harmonics(obs.time) @ coef).reshape(obs.shape).astype(np.float32)),
}
print(f"climatology fitted to {fit.time.size} training steps; 24-hour persistence = {lag} steps back")

# %% [markdown]
# ### The solution: `xskillscore.rmse(..., dim="time")` keeps the map
# `xs.rmse(forecast, obs, dim="time")` gives the error at every grid point, with its coordinates. For one
# global number, grid cells must count by their area: a cell's area shrinks with the cosine of its
# latitude, so `weights=` gets `cos(latitude)` (without it the many small polar cells count as much
# as the tropics).
#
# Is the model better than a baseline at a grid point, or lucky? `xs.sign_test` counts, step by step,
# which forecast has the smaller absolute error: a random walk that drifts up where the model is better.
# Two corrections make it hold:
#
# - **autocorrelation**: consecutive forecasts win and lose together (weather lasts days), so there are
#   fewer independent trials than forecasts. We widen the walk's spread by the lag-1 autocorrelation of
#   the wins, (1 + ρ) / (1 − ρ), before we turn it into a p-value;
# - **multiple testing**: with thousands of grid points, 5 % of them pass a 5 % test by chance. The
#   Benjamini–Hochberg procedure keeps the share of false discoveries among the points called
#   significant at 5 %. It must see **all** p-values at once. `xs.multipletests` in the installed
#   xskillscore hands them to statsmodels one at a time (no core dimension, `vectorize=True`), which
#   corrects nothing (and fails under NumPy 2), so we call statsmodels, which xskillscore depends on,
#   on all grid points together:

# %%
#| label: xskillscore-multipletests
source = inspect.getsource(xs.multipletests)
print(source[source.index("xr.apply_ufunc("):source.index("dask=")].strip())

# %%
#| label: skill
import scipy.stats
from statsmodels.stats.multitest import multipletests

coslat = np.cos(np.deg2rad(obs.latitude)).clip(min=0).broadcast_like(obs.isel(time=0))  # cos(±90°) is −0


def significantly_better(forecast, baseline):
    """Grid points where ``forecast`` has a smaller absolute error than ``baseline``, significantly."""
    _, walk, _ = xs.sign_test(forecast, baseline, obs, time_dim="time", metric="mae", orientation="negative")
    wins = walk - walk.shift(time=1, fill_value=0)  # each step: +1 forecast better, −1 baseline, 0 a tie
    rho = xr.corr(wins.isel(time=slice(1, None)), wins.isel(time=slice(None, -1)).assign_coords(
        time=wins.time[1:]), dim="time").fillna(0).clip(0, 0.95)
    spread = np.sqrt((wins**2).sum("time") * (1 + rho) / (1 - rho))
    p = xr.DataArray(2 * scipy.stats.norm.sf(np.abs(walk.isel(time=-1)) / spread.where(spread > 0)),
                     coords=spread.coords).fillna(1.0)
    reject = p.copy(data=multipletests(p.values.ravel(), alpha=0.05, method="fdr_bh")[0].reshape(p.shape))
    return reject & (walk.isel(time=-1) > 0), reject & (walk.isel(time=-1) < 0)


rmse_map = {name: xs.rmse(f, obs, dim="time") for name, f in forecasts.items()}
rows, better_than = [], {}
for name, f in forecasts.items():
    per_step = xs.rmse(f, obs, dim=["latitude", "longitude"], weights=coslat)
    row = {"forecast": name, "RMSE, K (area-weighted)": f"{float(np.sqrt((per_step**2).mean())):.2f}",
           "model significantly better at": "", "significantly worse at": ""}
    if name != "model":
        better, worse = significantly_better(pred, f)
        better_than[name] = better
        row |= {"model significantly better at": f"{100 * float(better.mean()):.0f} % of points",
                "significantly worse at": f"{100 * float(worse.mean()):.0f} %"}
    rows.append(row)
course.table(rows)
print(f"{obs.time.size} held-out forecasts at every point; sign test on absolute errors,")
print(f"AR(1)-widened, Benjamini–Hochberg at 5 % · rmse_model: {dict(rmse_map['model'].sizes)}")

# %%
#| label: fig-rmse-maps
#| fig-cap: "Root-mean-square error of t2m one step ahead over the held-out period at every grid point: the model (left) and 24-hour persistence (right), on the same colour scale."
#| fig-alt: "Two global maps in the viridis colour map with coastlines, sharing one colour bar in kelvin; errors are largest over land, especially in the interior of the continents, and smallest over the oceans."
import cartopy.crs as ccrs

shown = ("model", "24-hour persistence")
vmax = float(np.nanpercentile(np.maximum(*(rmse_map[n] for n in shown)), 99))
fig, axes = plt.subplots(1, 2, figsize=(14, 4.8), subplot_kw={"projection": ccrs.PlateCarree()})
for ax, name in zip(axes, shown):
    im = rmse_map[name].plot(ax=ax, transform=ccrs.PlateCarree(), cmap="viridis", vmin=0, vmax=vmax,
                             add_colorbar=False)
    ax.coastlines(linewidth=0.6)
    ax.set_title(f"{name}: mean RMSE {float(rmse_map[name].weighted(coslat).mean()):.2f} K", loc="left")
fig.colorbar(im, ax=axes, orientation="horizontal", shrink=0.5, pad=0.06, label="RMSE [K]")
fig.text(0.01, 0.01, course.hardware(), fontsize=10, color="#555555")
plt.show()

# %% [markdown]
# ### Exercises (evaluation)
# **3.3** *(write code)* Plot where the model is significantly better than 24-hour persistence
# (`better_than["24-hour persistence"]`), with coastlines. Where is it, and why there?
#
# **3.4** Use `xs.pearson_r` on the predicted and observed *changes* over one step (`pred - persistence`
# and `obs - persistence`) along time. Where does the model have skill beyond persistence?
#
# <details><summary>Solutions</summary>
#
# **3.3**
#
# ```python
# ax = plt.axes(projection=ccrs.PlateCarree())
# better_than["24-hour persistence"].plot(ax=ax, transform=ccrs.PlateCarree(), cmap="cividis")
# ax.coastlines()
# ```
#
# Read the map against the RMSE maps: the model wins where the weather changes within a day (it sees the
# winds and the current state), 24-hour persistence where the day repeats itself.
#
# **3.4** `persistence = forecasts["persistence at the step"]`, then
# `xs.pearson_r(pred - persistence, obs - persistence, dim="time")`: a map of correlations between
# forecast and observed change. Well above zero, the model predicts which way t2m moves (the diurnal
# cycle over land, above all); near zero it only copies persistence.
# </details>
#
# ## Key points
# - `open_mfdataset` pays for parsing every file's header on every open; pass the minimal options, and
#   time opens in fresh processes on cold files.
# - Lazy Dask: `sel` and `isel` are instant; chunks are the unit of work and of memory.
# - One `.chunk()` for how training reads, then `ds.to_zarr(..., consolidated=True)`: shards of a MiB
#   or more are written whole by one task each, and hold window-sized inner chunks for small reads.
# - Never `ds.load()` blindly: compare `ds.nbytes` with what you have.
# - `for batch in BatchGenerator(...)` and xbatcher's `MapDataset` work, but small windows are
#   Python-bound: measure each reader against plain Zarr with the same processes, on a cold store.
#   Read without Dask and make items large (a time block per item).
# - Evaluate on a held-out period against persistence, 24-hour persistence and climatology, with
#   area-weighted RMSE and a significance test corrected for autocorrelation and multiple testing.

# %% [markdown]
# ## Checks
# Run by `pytest labs/12_golden_path.py`; the slides never show this cell.

# %% tags=["checks"]
def test_minimal_open_keeps_static_fields_2d():
    assert ds.lsm.dims == ("latitude", "longitude") and opens["minimal"][0]["lsm"] == ["latitude", "longitude"]


def test_time_mean_is_right():
    points = dict(latitude=slice(10, 12), longitude=slice(0, 3))  # a few grid points, recomputed here
    expected = ds.t2m.isel(points).mean("time").compute(scheduler="synchronous")
    np.testing.assert_allclose(time_mean.t2m.isel(points).values, expected.values, rtol=1e-5)


def test_no_worker_over_its_limit():
    assert mean_peak < worker_limit and zarr_peak < worker_limit


def test_zarr_store_equals_netcdf_in_whole_shards():
    assert not PARTIAL.exists()
    np.testing.assert_allclose(zr.t2m.isel(time=slice(0, 4)).values, ds.t2m.isel(time=slice(0, 4)).values)
    array = zarr.open_group(STORE, mode="r")["t2m"]
    assert array.chunks == (BLOCK, 32, 32) and array.shards == SHARDS
    assert all(len(set(c)) <= 2 for c in to_write.t2m.data.chunks[:1])  # one size (the last may be shorter)


def test_virtual_store_reads_what_the_converted_store_holds():
    if virtual_reads is None:
        return  # files that cannot be referenced (the lab said why)
    v, z = virtual_reads.values()
    assert v["means"].keys() == z["means"].keys()
    for name, value in z["means"].items():
        np.testing.assert_allclose(v["means"][name], value, rtol=1e-4, err_msg=name)


def test_xbatcher_dataset_has_no_nan_padding():
    assert nan_share["Dataset"] == 0.0


def test_window_pieces_are_xbatcher_windows():
    k = N_WINDOWS - 1
    expected = np.stack([zarr.open_group(STORE, mode="r")[v][t, y, x] for v, t, y, x in window_pieces([k], INPUTS)])
    np.testing.assert_array_equal(generator[k].to_dataarray("variable").values, expected)


def test_blocks_are_step_ahead_pairs_on_the_whole_grid():
    x, y = blocks[0]
    assert x.shape == (BLOCK - 1, blocks.channels, zr.latitude.size, zr.longitude.size)
    np.testing.assert_allclose(x[1:, 0].numpy(), y[:-1, 0].numpy(), rtol=1e-6)
    t2m = (zr.t2m.isel(time=slice(1, BLOCK)).values - stats["t2m"][0]) / stats["t2m"][1]
    np.testing.assert_allclose(y[:, 0].numpy(), t2m, rtol=1e-5, atol=1e-5)


def test_held_out_period_never_trained_on():
    assert blocks.time_slice.stop + steps_per_day <= test_start
    assert len(blocks) * BLOCK <= blocks.time_slice.stop and held_out.time_slice.start == test_start


def test_training_reduced_the_held_out_loss():
    assert monitor[-1] < monitor[0]


def test_skill_maps_keep_the_grid():
    assert rmse_map["model"].dims == ("latitude", "longitude") and rmse_map["model"].shape == obs.shape[1:]
    assert abs(float(((pred - obs) ** 2).mean()) ** 0.5 - one_number) < 1e-3


def test_persistence_baselines_are_the_past():
    np.testing.assert_array_equal(forecasts["persistence at the step"].values[1:], obs.values[:-1])
    np.testing.assert_array_equal(forecasts["24-hour persistence"].values[lag:], obs.values[:-lag])


course.run_checks(globals())
