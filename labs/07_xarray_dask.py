# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Xarray + Dask: NetCDF, lazy loading and out-of-core analysis
#
# **Teaching:** 40 min · **Exercises:** 30 min
#
# ## Objectives
# - Read a NetCDF file's header: dimensions, variables, attributes, and how the values are stored.
# - Measure what `open_dataset` and `open_mfdataset` cost, and open many files the cheap way.
# - Explain lazy loading and chunks; select and plot a slice without reading the whole dataset.
# - Compute resampled series, seasonal means, a climatology and anomalies, and measure flox, the
#   engine xarray's `groupby` uses, against xarray's own.
# - Reduce the whole dataset with Dask while watching the dashboard, and measure throughput and memory.
#
# ## Why this episode?
# The lab's NAS is full of ERA5 NetCDF files, one per month. The usual script loops over them with
# `xr.open_dataset(...).load()`, concatenates, and dies with an out-of-memory error once the years add
# up; or it calls `xr.open_mfdataset("*.nc")` and waits minutes before anything happens. This lab
# takes the course's ERA5-like dataset apart: what is *in* a NetCDF file, what opening many of them
# really costs, and how Xarray with Dask computes on data larger than memory, one chunk at a time.
# Every number is measured as the lab runs, next to the machine that measured it.

# %%
import os
import textwrap
import time
import warnings

import dask
import dask.array
import matplotlib.pyplot as plt
import netCDF4
import numpy as np
import psutil
import xarray as xr

import course
from course import era5

# The course's generated monthly files, or your own ERA5 NetCDF files with COURSE_ERA5=<folder or glob>
# (README, "Teaching on your own data"): era5.normalise brings them to the names and order used below.
files = era5.files()
one_file = era5.one_file("t2m")
DATA_DIR = era5.setting() or course.dataset()
disk_bytes = sum(f.stat().st_size for f in files)
N = course.usable_cores()
print(f"{len(files)} {'NetCDF' if era5.own_data() else 'monthly'} files, {disk_bytes / 2**20:.0f} MB on disk, in {DATA_DIR}")
era5.report()  # own files only: what they are and what normalising did
print(course.hardware())

# %% [markdown]
# ## 1. What is in a NetCDF file? *(core)*
#
# NetCDF (here NetCDF-4, which stores its data in HDF5) is *self-describing*: a header names the
# **dimensions** (`time`, `latitude`, `longitude` and their lengths), the **variables** (arrays with a
# type and a list of dimensions) and **attributes** (units, long names, how to decode the values).
# The classic tool `ncdump -h file.nc` prints the header; the function below prints the same
# layout (CDL) with the `netCDF4` library, so it works wherever Python does.

# %%
#| label: ncdump-header
CDL_TYPES = {"i1": "byte", "i2": "short", "i4": "int", "i8": "int64", "f4": "float", "f8": "double"}


def cdl_value(value):
    """An attribute value written the way ncdump writes it: -32767s (short), 0.5f (float), "text"."""
    if isinstance(value, str):
        return f'"{value[:60]}"'
    suffix = {"i1": "b", "i2": "s", "i8": "LL", "f4": "f"}.get(np.asarray(value).dtype.str[1:], "")
    return f"{value.item() if hasattr(value, 'item') else value}{suffix}"



def ncdump_header(path, attributes_of=("t2m",)):
    """The header of a NetCDF file in CDL, like `ncdump -h` (attributes of `attributes_of` only)."""
    lines = [f"netcdf {path.stem} {{", "dimensions:"]
    with netCDF4.Dataset(path) as nc:
        lines += [f"\t{name} = {len(dim)} ;" for name, dim in nc.dimensions.items()]
        lines.append("variables:")
        for name, var in nc.variables.items():
            kind = CDL_TYPES.get(var.dtype.str[1:], str(var.dtype)) if hasattr(var.dtype, "str") else "string"
            lines.append(f"\t{kind} {name}({', '.join(var.dimensions)}) ;")
            if name in attributes_of:
                lines += [f"\t\t{name}:{a} = {cdl_value(var.getncattr(a))} ;" for a in var.ncattrs()]
        lines.append("\t// (attributes of the other variables not shown)")
        lines.append("// global attributes:")
        for a in ("Conventions", "title", "history"):
            if a in nc.ncattrs():
                lines.append(f"\t\t:{a} = {cdl_value(str(nc.getncattr(a)))} ;")
    lines.append("}")
    return "\n".join(lines)


header = ncdump_header(one_file)
print(header)

# %% [markdown]
# For the slides, the same header cut to the dimensions and the one variable we look at next:

# %%
#| label: ncdump-short
KEEP = ("units", "scale_factor", "add_offset", "_FillValue")
short, others = [], []
for line in header.splitlines():
    body = line.strip()
    if body.startswith(("float", "double", "short", "int", "byte")) and "t2m(" not in body:
        others.append(body.split("(")[0].split()[-1])  # another variable: name it only
    elif body.startswith("t2m:") and not body.startswith(tuple(f"t2m:{k} " for k in KEEP)):
        continue  # t2m's other attributes
    elif body.startswith((":", "//")):
        continue  # global attributes and comments
    else:
        short.append(line)
short.insert(-1, f"\t// and {len(others)} more variables: {', '.join(others)}")
print("\n".join(short).expandtabs(4))

# %% [markdown]
# Xarray reads the same header and shows it as a `Dataset`. Note what it did **not** do: read the
# data. The `...` after each variable means "not loaded yet".

# %%
#| label: xarray-view
with xr.open_dataset(one_file) as one:
    text = repr(one)
    print(text.split("Attributes:")[0].rstrip())  # print(one) shows the global attributes too
    print(textwrap.fill(f"Attributes: {', '.join(one.attrs)}", 88, subsequent_indent="    "))

# %% [markdown]
# ### Packing: `int16` with `scale_factor` and `add_offset`
# The course's files store most variables as 16-bit integers. Each value `raw` stands for
# `raw × scale_factor + add_offset`; `_FillValue` marks missing values (the sea surface temperature
# over land). That halves the file compared with 32-bit floats, at a precision of one `scale_factor`
# step. `mask_and_scale=False` shows the raw integers; by default Xarray decodes them.
#
# **What real ERA5 files look like.** ERA5 NetCDF downloads were packed like this for years, and many
# archives on group drives still are. Files from today's Copernicus data store are different: NetCDF4
# with compression (zlib) and plain `float32` values, no packing. `ds.t2m.encoding` tells you which
# kind you have (`dtype`, `scale_factor`, `zlib`). The type Xarray decodes packed values to follows
# the type of the scale factor: older packed ERA5 files carry a 64-bit `scale_factor` and decode to
# `float64`, **four times** their size on disk; the course's generator chose a 32-bit scale factor, so
# here they decode to `float32`, twice the size on disk. Either way: **in memory, decoded data is
# bigger than the file**.

# %%
#| label: packing
with xr.open_dataset(one_file, mask_and_scale=False) as raw_ds, xr.open_dataset(one_file) as dec_ds:
    packed = "scale_factor" in raw_ds.t2m.attrs  # own files since 2024 are float32: nothing to unpack
    step, row, cols = raw_ds.t2m.dims  # time (valid_time in CDS files since 2024), latitude, longitude
    where = {step: 0, row: raw_ds.sizes[row] // 2, cols: slice(0, 4)}
    raw = raw_ds.t2m.isel(where).values
    scale, offset = (float(raw_ds.t2m.attrs[a]) for a in ("scale_factor", "add_offset")) if packed else (1.0, 0.0)
    decoded = dec_ds.t2m.isel(where).values
    by_hand = raw * scale + offset
    raw_mib, decoded_mib = raw_ds.t2m.nbytes / 2**20, dec_ds.t2m.nbytes / 2**20
if packed:
    print(f"raw int16 on disk:        {raw}")
    print(f"scale_factor = {scale}, add_offset = {offset}")
    print(f"raw × scale + offset:     {by_hand}")
    print(f"decoded by xarray ({decoded.dtype}): {decoded}")
    print(f"t2m of one month: {raw_mib:.1f} MiB as int16, {decoded_mib:.1f} MiB decoded to {decoded.dtype}; "
          f"precision {scale:.4f} K")
else:
    print(f"t2m is stored as {raw.dtype}, not packed: nothing to decode ({raw})")
    print(f"encoding: {dict((k, dec_ds.t2m.encoding[k]) for k in ('dtype', 'zlib', 'complevel') if k in dec_ds.t2m.encoding)}")

# %% [markdown]
# ### Exercise 1: read the header (5 min)
# From the header in section 1: what are the units of `tp`, how precisely is `t2m` stored, and how
# much memory would one month of all five time-varying variables take once decoded? Check your answer
# with `xr.open_dataset(one_file).nbytes`.
#
# <details><summary>Solution</summary>
#
# `tp` is in metres (`units = 'm'`; ERA5 precipitation is a depth of water). `t2m` is stored in steps of
# `scale_factor` kelvin (a few thousandths). Decoded, each variable takes
# `time × latitude × longitude × 4` bytes (float32, because the scale factor is a 32-bit float), twice
# its packed size; five variables, plus the small static maps. `nbytes` gives the same number without reading any data.
# </details>

# %% [markdown]
# ## 2. A Dask cluster and its dashboard *(core)*
#
# Xarray hands its computations to Dask. We start a cluster now, so that the dashboard shows
# everything that follows. `clusters.client()` (from the course package, episode 05) starts a
# `LocalCluster`: a scheduler and single-threaded worker **processes**, on `127.0.0.1` (nobody else
# on the network can reach it) with the dashboard on a free port. In a batch job that has started a
# cluster across its nodes (`labs/jobs/run_lab.sbatch` sets `$DASK_SCHEDULER_ADDRESS`), it connects to
# that cluster instead, so the same lab uses every node of the job.
#
# Why processes, not threads? The netCDF-C and HDF5 libraries are not thread-safe, so Xarray puts a
# **lock** around every call into them. Nothing crashes, but within one process only one thread reads
# from a NetCDF file at a time: extra threads wait for the lock. Each worker process has its own lock,
# so processes read in parallel (episode 09 measures this, and compares Zarr, which needs no lock).
# Open the link in a browser and keep it open. (On a remote machine, forward the port with `ssh -L`;
# in JupyterLab, the `dask-labextension` shows the same panels inside the notebook.)

# %%
#| label: dashboard
import importlib
import logging

from course import clusters

# one worker process per core (at most 2 on the small dataset, which has little to share out)
client = clusters.client(n_workers=N if course.size() != "small" else min(N, 2), threads_per_worker=1,
                         silence_logs=logging.ERROR)
client.run(importlib.import_module, "xarray.backends.netCDF4_")  # workers import xarray + netCDF4 now, not while timed
workers = client.scheduler_info(n_workers=-1)["workers"]
n_workers = len(workers)
print(f"Dask dashboard: {client.dashboard_link}")
threads = "/".join(str(t) for t in sorted({w["nthreads"] for w in workers.values()}))
print(f"{n_workers} workers × {threads} thread(s) · {course.hardware()}")

# %% [markdown]
# ## 3. The pain: opening many files *(core)*
#
# `xr.open_mfdataset` opens every file, reads every header and the coordinates, checks that the files
# fit together, and concatenates them along `time`. With its defaults it also compares every
# variable that has **no** time dimension across files and, with `data_vars="all"`, concatenates it
# along time anyway: the static land-sea mask `lsm` and orography `z`, identical in every file,
# become `(time, latitude, longitude)` arrays. Three options switch that work off:
#
# - `data_vars="minimal"`: concatenate only the variables that have the `time` dimension;
# - `coords="minimal"`: the same for coordinates;
# - `compat="override"`: take the non-concatenated variables from the first file, without comparing.
#
# `parallel=True` opens the files in parallel Dask tasks, here in the worker processes. It pays off
# with hundreds of files, or on a network or parallel file system where each open waits for
# metadata; with a few local files its own overhead (tasks, sending each opened dataset back) can be
# larger than what it saves. We time each way (best of three) and choose
# `chunks` so that one chunk (one variable, a block of time steps) stays at or below about 128 MB.

# %%
#| label: open-times
with xr.open_dataset(one_file) as first_raw:  # first.t2m is already decoded: its dtype is what a chunk holds
    first = era5.normalise(first_raw)
    step_bytes = first.t2m.dtype.itemsize * first.latitude.size * first.longitude.size
    steps_per_file = first.time.size
time_chunk = int(max(1, min(steps_per_file, 128e6 // step_bytes)))
CHUNKS = era5.chunks({"time": time_chunk})  # {"time": ...}; own files also name it by their valid_time
MINIMAL = dict(data_vars="minimal", coords="minimal", compat="override")


def best_of(open_it, repeat=3):
    """Best wall-clock seconds of `repeat` opens (each dataset closed again), and the last dataset."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        ds = open_it()
        best = min(best, time.perf_counter() - start)
        if _ < repeat - 1:
            ds.close()
    return best, ds


with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # xarray announces that these defaults will change
    open_times = {}
    open_times["open_dataset, 1 file"], _one = best_of(lambda: xr.open_dataset(one_file, chunks=CHUNKS))
    NORMALISE = era5.OPEN  # preprocess=era5.normalise: the course's names and order (the generated files: unchanged)
    open_times["open_mfdataset, defaults"], ds_default = best_of(
        lambda: xr.open_mfdataset(files, chunks=CHUNKS, **NORMALISE))
    open_times["open_mfdataset, minimal"], ds = best_of(
        lambda: xr.open_mfdataset(files, chunks=CHUNKS, **NORMALISE, **MINIMAL))
    open_times["minimal + parallel=True"], ds_parallel = best_of(
        lambda: xr.open_mfdataset(files, chunks=CHUNKS, parallel=True, **NORMALISE, **MINIMAL))
era5.require(ds, ["t2m"], "episode 07")
_one.close()
print(f"{len(files)} files · chunks {CHUNKS} · best of 3 · {course.hardware()}")
for how, seconds in open_times.items():
    print(f"{how:<28} {seconds:7.3f} s")

# %%
#| label: fig-open-times
#| fig-cap: "Time to open one monthly file and to open all of them with open_mfdataset: default options, the minimal options, and the minimal options with parallel=True (best of three)."
#| fig-alt: "Horizontal bar chart of seconds for four ways of opening the dataset, each bar labelled with its time; the hardware that measured them is written under the chart."
fig, ax = plt.subplots(figsize=(10, 3.9))
names = list(open_times)[::-1]
bars = ax.barh(names, [open_times[n] for n in names], color=["#009E73", "#0072B2", "#D55E00", "#999999"])
ax.bar_label(bars, labels=[f"{open_times[n]:.3f} s" for n in names], padding=4)
ax.set_xlim(0, 1.3 * max(open_times.values()))
ax.set_xlabel("seconds to open (shorter is better)")
ax.set_title(f"Opening {len(files)} monthly NetCDF files", loc="left")
fig.text(0.01, 0.01, course.hardware(), fontsize=10, color="#555555")
fig.tight_layout(rect=(0, 0.05, 1, 1))
plt.show()

# %% [markdown]
# What did the defaults do to the static land-sea mask?

# %%
#| label: lsm-broadcast
for name, d in [("defaults", ds_default), ("minimal", ds)] if era5.needs(ds, ["lsm"], "the land-sea mask") else []:
    print(f"{name:<9} lsm{d.lsm.dims}: {d.lsm.nbytes / 2**20:7.2f} MiB; dataset {d.nbytes / 2**20:6.1f} MiB")

# %% [markdown]
# With the defaults, a 2-D mask turned into a 3-D array with one identical copy per time step, and
# every later computation that touches the dataset drags those copies along. With the minimal
# options it stays a single 2-D map. **Open many files with the minimal options** (they are what
# future xarray versions will use by default, which is why xarray warns about the old defaults).

# %% [markdown]
# ## 4. Lazy loading and chunks *(core)*
#
# The dataset we opened is **lazy**: each variable is a Dask array, a grid of *chunks*, each chunk a
# small NumPy array that Dask reads from its file only when a computation needs it. `ds.chunks` lists
# the chunk sizes along every dimension. A worker holds **several** chunks at once: each of its
# threads works on one, a task often needs its input, a decoded copy and its result together, and the
# worker keeps results until the next step uses them (episode 04's budget: threads × a few × chunk,
# plus what the worker holds). So chunks must be neither tiny (millions of tasks, all overhead) nor
# huge (a worker runs out of memory): tens to a few hundred MB each.

# %%
#| label: chunks
t2m_chunks = ds.t2m.data.chunks
chunk_mb = max(ds[v].data.nbytes / ds[v].data.npartitions for v in ds.data_vars if "time" in ds[v].dims) / 1e6
n_chunks = sum(ds[v].data.npartitions for v in ds.data_vars)
print("ds.chunks:")
for dim, sizes in ds.chunks.items():
    print(f"  {dim:<10} {len(sizes):3d} chunk(s) of {sorted(set(sizes))}")
print(f"largest chunk {chunk_mb:.1f} MB · {n_chunks} chunks in all · dataset {ds.nbytes / 1e6:.0f} MB decoded "
      f"({disk_bytes / 1e6:.0f} MB on disk)")

# %%
#| label: dask-array
ds.t2m.data

# %% [markdown]
# Selecting with `.sel` (by label) or `.isel` (by position) is instant: it only writes down *which*
# part of which chunks you want. Reading happens when you ask for values: `.load()`, `.values`,
# `.compute()`, or a plot.

# %%
#| label: lazy-selection
# July of the first year (own files without a July: their first month)
MONTH = next((m for m in np.unique(ds.time.values.astype("datetime64[M]")) if str(m).endswith("-07")),
             ds.time.values[0].astype("datetime64[M]")).astype(str)
MONTH_NAME = time.strftime("%B", time.strptime(MONTH, "%Y-%m"))
start = time.perf_counter()
july = ds.t2m.sel(time=MONTH, latitude=slice(70, 35), longitude=slice(0, 40))
select_s = time.perf_counter() - start
print(f"select {MONTH_NAME} over Europe: {1000 * select_s:.2f} ms, still lazy: {type(july.data).__module__}.{type(july.data).__name__}")
start = time.perf_counter()
july_loaded = clusters.compute(july, client, what="July over Europe")
load_s = time.perf_counter() - start
print(f"load it:                 {1000 * load_s:.2f} ms for {july_loaded.nbytes / 2**20:.2f} MiB")
print(course.hardware())

# %% [markdown]
# A plot is a computation too: `.plot()` on one time step reads one small slice of one file.

# %%
#| label: fig-slice-map
#| fig-cap: "2 m temperature at the first time step, read from disk only when plotted."
#| fig-alt: "Global map of 2 metre temperature on a latitude-longitude grid in the cividis colour map: warm (yellow) in the tropics, cold (dark blue) towards the poles and over high mountains."
start = time.perf_counter()
fig, ax = plt.subplots(figsize=(10, 5))
first_map = clusters.compute(ds.t2m.isel(time=0), client, what="the first map")  # what .plot() would read
first_map.plot(ax=ax, cmap="cividis", cbar_kwargs={"label": "t2m [K]"})
plot_s = time.perf_counter() - start
ax.set_title("")  # drop xarray's automatic "time = ..." title
ax.set_title(f"t2m at {str(ds.time.values[0])[:16].replace('T', ' ')} UTC (read and drawn in {plot_s:.2f} s)", loc="left")
fig.text(0.01, 0.01, course.hardware(), fontsize=10, color="#555555")
fig.tight_layout(rect=(0, 0.04, 1, 1))
plt.show()

# %% [markdown]
# ### Exercise 2: chunks for a time series (8 min)
# Open the dataset with `chunks={"time": -1, "latitude": 10}` (is that allowed? what does `ds.chunks`
# say?), and with the chunks used above. Time `ds.t2m.isel(latitude=10, longitude=10).compute()`
# with both. Which chunking suits a time series at one point, which one a map at one time?
#
# <details><summary>Solution</summary>
#
# `open_mfdataset` opens each file separately, so chunks never span files: `"time": -1` means "the
# whole time dimension *of each file*" (one chunk per file along time). Splitting latitude into blocks
# of 10 makes more, smaller chunks. A point time series needs a little of every chunk along time, so
# fewer, taller chunks along time mean fewer tasks; a map at one time needs one chunk along time and
# all of latitude and longitude. There is no chunking that is best for everything: choose it for the
# access you do most (episode 09 rechunks a Zarr copy for the other access).
# </details>

# %% [markdown]
# ## 5. Time series: resample, rolling, seasons, climatology, anomalies *(core)*
#
# A regional mean is a small computation on a big dataset: select a box, average over it with weights
# $\cos(\text{latitude})$ (grid cells shrink towards the poles), and compute. The result, one value per
# time step, fits in memory easily, so the rest of this section works on it in memory:
#
# - `resample(time="1D").mean()` changes the time step (from the dataset's step, 12-hourly at the small
#   size and 6-hourly at workshop size, to daily; `"1MS"` to monthly);
# - `rolling(time=30, center=True).mean()` smooths with a moving window;
# - `groupby("time.month").mean()` gives the **climatology** (the mean of every January, ...), and
#   subtracting it month by month, `groupby("time.month") - climatology`, gives **anomalies**.

# %%
#| label: regional-series
BOX = dict(latitude=slice(70, 35), longitude=slice(0, 40))  # Europe east of Greenwich
weights = np.cos(np.deg2rad(ds.latitude))
start = time.perf_counter()
series = clusters.compute(ds.t2m.sel(BOX).weighted(weights).mean(("latitude", "longitude")), client,
                          what="the Europe series")
series_s = time.perf_counter() - start
step_hours = int((series.time.values[1] - series.time.values[0]) / np.timedelta64(1, "h"))
STEP = f"{step_hours}-hourly"  # read from the data: 12-hourly (small) or 6-hourly (workshop)
daily = series.resample(time="1D").mean()
monthly = series.resample(time="1MS").mean()
smooth = daily.rolling(time=30, center=True).mean()
climatology = series.groupby("time.month").mean()
anomalies = series.groupby("time.month") - climatology
print(f"regional mean: {series.size} {STEP} time steps in {series_s:.2f} s")
print(course.hardware())
print(f"daily {daily.size} · monthly {monthly.size} · climatology {climatology.size} months · "
      f"mean anomaly {float(anomalies.mean()):+.1e} K (zero by construction)")

# %%
#| label: fig-time-series
#| fig-cap: "Area-weighted 2 m temperature over Europe (35–70° N, 0–40° E): the values at the dataset's time step, daily means, a 30-day rolling mean and monthly means."
#| fig-alt: "Line chart of temperature in kelvin against time: a thin grey band of the values at every time step with a daily cycle, a blue daily-mean line, a smooth orange 30-day rolling mean, and green steps for the monthly means, all following the seasonal cycle."
fig, ax = plt.subplots(figsize=(11, 5))
series.plot(ax=ax, color="#BBBBBB", linewidth=0.6, label=STEP)
daily.plot(ax=ax, color="#0072B2", linewidth=1.2, label="daily mean (resample)")
smooth.plot(ax=ax, color="#E69F00", linewidth=3, label="30-day rolling mean")
monthly.plot.step(ax=ax, where="post", color="#009E73", linewidth=2.5, label="monthly mean (resample 1MS)")
ax.set_ylabel("t2m [K]")
ax.set_xlabel("")
ax.set_title("Europe box, area-weighted", loc="left")
ax.legend(loc="lower center", ncols=2, fontsize=11)
fig.text(0.01, 0.01, course.hardware(), fontsize=10, color="#555555")
fig.tight_layout(rect=(0, 0.04, 1, 1))
plt.show()

# %% [markdown]
# The same operations work on whole maps. Seasonal means (`groupby("time.season")`) and the monthly
# climatology of every grid cell both read all of `t2m`; computed together (here as two variables of
# one `Dataset`, or with `dask.compute(a, b)`) they share one pass over the files instead of two.
# With them we find the day when Europe was warmest compared with its climatology (a heat wave) and
# map that day's anomaly.

# %%
#| label: seasons-and-climatology
start = time.perf_counter()
both = xr.Dataset({"seasons": ds.t2m.groupby("time.season").mean(),
                   "climatology": ds.t2m.groupby("time.month").mean()})
both = clusters.compute(both, client, what="the seasonal means and the climatology")
seasons, field_climatology = both.seasons, both.climatology
maps_s = time.perf_counter() - start
day = str(anomalies.resample(time="1D").mean().idxmax("time").values)[:10]
heat_anomaly = clusters.compute(ds.t2m.sel(time=day).mean("time"), client, what="the day's mean") \
    - field_climatology.sel(month=int(day[5:7]))
print(f"seasonal means + monthly climatology of every grid cell, one pass: {maps_s:.2f} s")
print(course.hardware())
print(f"warmest day over the Europe box compared with its climatology: {day}")

# %%
#| label: fig-seasons
#| fig-cap: "Mean 2 m temperature of each season (December–February, March–May, June–August, September–November), from one groupby over the whole dataset."
#| fig-alt: "Four small global maps in the cividis colour map sharing one colour bar: the northern continents are much colder in December to February than in June to August, the southern ones the other way round."
order = [s for s in ("DJF", "MAM", "JJA", "SON") if s in seasons.season.values]
grid = seasons.sel(season=order).plot(col="season", col_wrap=2, cmap="cividis", figsize=(12, 5.8),
                                      cbar_kwargs={"label": "t2m [K]"})
grid.fig.text(0.01, 0.01, course.hardware(), fontsize=10, color="#555555")
plt.show()

# %%
#| label: fig-anomaly-map
#| fig-cap: "Daily-mean 2 m temperature anomaly (compared with the monthly climatology) on the day Europe was warmest relative to its climatology."
#| fig-alt: "Global map of temperature anomalies in a red-blue diverging colour map centred on zero, with a black rectangle around the Europe box showing a red (warm) patch inside it."
fig, ax = plt.subplots(figsize=(10, 5))
limit = float(np.nanpercentile(np.abs(heat_anomaly.values), 99))
heat_anomaly.plot(ax=ax, cmap="RdBu_r", vmin=-limit, vmax=limit, cbar_kwargs={"label": "anomaly [K]"})
ax.plot([0, 40, 40, 0, 0], [35, 35, 70, 70, 35], color="black", linewidth=2)
ax.set_title("")  # drop xarray's automatic "month = ..." title
ax.set_title(f"t2m anomaly on {day}", loc="left")
fig.text(0.01, 0.01, course.hardware(), fontsize=10, color="#555555")
fig.tight_layout(rect=(0, 0.04, 1, 1))
plt.show()

# %% [markdown]
# ### flox: the engine under `groupby`
# How does `groupby("time.month").mean()` run on a Dask array? Without help, xarray cuts the array
# into one piece per group (every January, every February, ...) and reduces each piece, in tasks
# that cut across the chunks. **flox** (installed with this course; xarray uses it automatically
# whenever it can import it) reduces each chunk by group in one pass and then combines the partial
# results, with a *method* chosen from how the groups lie in the chunks: `blockwise` when every chunk
# holds whole groups (one month per file, as here; flox rechunks to get there when it can),
# `cohorts` when groups come in runs, `map-reduce` otherwise. `xr.set_options(use_flox=False)`
# switches flox off, so we can measure
# both on the same data: the climatology of every grid cell, and the spread of the anomalies around
# it (their standard deviation within each month: subtracting the month's mean shifts every value of
# the month alike). The anomalies themselves, `groupby("time.month") - climatology`, are arithmetic,
# not a reduction: flox does not run those. Each way runs once on one month first, untimed, so that
# neither pays for a first call in the workers.

# %%
#| label: flox-groupby
import flox

from course import bench


class FloxLog(logging.Handler):
    """Keeps what flox says, at debug level, while it builds a graph (e.g. the engine it chose)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def climatology_and_spread(da):
    """The monthly climatology of every grid cell, and the anomalies' standard deviation in each month."""
    by_month = da.groupby("time.month")
    return xr.Dataset({"climatology": by_month.mean(), "anomaly_std": by_month.std()})


def flox_steps(da):
    """The names of the reduction steps in a result's Dask graph: flox's layers say which method ran."""
    return sorted({name.rsplit("-", 1)[0] for name in da.data.dask.layers if name.startswith("groupby_")})


flox_logger, flox_log = logging.getLogger("flox"), FloxLog()
flox_level = flox_logger.level
flox_logger.addHandler(flox_log)
flox_logger.setLevel(logging.DEBUG)
groupby_memory = clusters.WorkerMemorySampler()
groupby_runs = {}
try:
    for label, use_flox in (("flox", True), ("use_flox=False", False)):
        with xr.set_options(use_flox=use_flox):
            clusters.compute(climatology_and_spread(ds.t2m.isel(time=slice(0, steps_per_file))), client,
                             what=f"the warm-up ({label})")
            flox_log.lines.clear()
            work = climatology_and_spread(ds.t2m)
            said = list(dict.fromkeys(flox_log.lines))
            with groupby_memory.sample(label):
                start = time.perf_counter()
                result = clusters.compute(work, client, what=f"the climatology and the anomalies' spread ({label})")
                seconds = time.perf_counter() - start
        used = [b for _, b in groupby_memory.samples[label]]
        groupby_runs[label] = {"seconds": seconds, "tasks": len(work.__dask_graph__()), "result": result,
                               "said": said, "steps": flox_steps(work.climatology),
                               "peak": max(used, default=0), "idle": used[0] if used else 0}
finally:
    flox_logger.removeHandler(flox_log)
    flox_logger.setLevel(flox_level)

# %%
#| label: flox-table
course.table([{"groupby": label, "seconds": f"{r['seconds']:.2f}", "tasks": r["tasks"],
               "worker MiB above idle": f"{(r['peak'] - r['idle']) / 2**20:.0f}" if r["peak"] else "not measured"}
              for label, r in groupby_runs.items()], align="lrrr")
flox_run, plain_run = groupby_runs["flox"], groupby_runs["use_flox=False"]
method = ("cohorts" if any("cohorts" in s for s in flox_run["steps"]) else
          "map-reduce" if any("aggregate" in s for s in flox_run["steps"]) else "blockwise")
engine = next((line.split("'")[1] for line in flox_run["said"] if "Choosing" in line), "not said")
print(f"flox {flox.__version__} chose method {method} (graph steps {', '.join(flox_run['steps'])}), engine {engine}")
ratio = plain_run["seconds"] / flox_run["seconds"]
print(f"flox took {flox_run['seconds'] / plain_run['seconds']:.2f}× the time of use_flox=False "
      f"({'faster' if ratio > 1 else 'not faster'} on this run) with {flox_run['tasks'] / plain_run['tasks']:.2f}× the tasks")
print(f"t2m {ds.t2m.nbytes / 2**20:.0f} MiB in chunks of {time_chunk} steps · {n_workers} workers · {bench.load()}")
print(course.hardware())

# %% [markdown]
# Read the lines under the table: they say which method flox chose for these chunks and what this
# run measured. The task count is the robust part: flox reduces each chunk once instead of cutting the
# array into groups. Whether that makes it faster depends on the size: on the small dataset each task
# is tiny and fixed costs (scheduling, sending results) dominate; at `COURSE_SIZE=workshop` the
# grouping work itself grows. If your chunks mix many groups, try `method="cohorts"`
# (`groupby("time.month").mean(method="cohorts")`) or `flox.xarray.rechunk_for_cohorts`.

# %% [markdown]
# ### Exercise 3: an sst anomaly index (10 min)
# Compute a daily sea-surface-temperature anomaly index for the Niño-3.4 box (5° S–5° N,
# 190°–240° E): the box's area-weighted daily mean minus its mean for the calendar month. Plot it.
# Why must you weight by `cos(latitude)` in general, and why does it hardly matter here? What does
# the index measure when the data cover a single year?
#
# <details><summary>Solution</summary>
#
# ```python
# box = ds.sst.sel(latitude=slice(5, -5), longitude=slice(190, 240))
# nino = box.weighted(np.cos(np.deg2rad(ds.latitude))).mean(("latitude", "longitude"))
# daily_sst = clusters.compute(nino.resample(time="1D").mean(), client, what="the Niño-3.4 series")
# index = daily_sst.groupby("time.month") - daily_sst.groupby("time.month").mean()
# index.plot()
# ```
# Latitude slices run from 5 to −5 because ERA5 stores latitude from north to south. Cells shrink
# towards the poles, so unweighted means over large boxes over-count high latitudes; between 5° S
# and 5° N, `cos(latitude)` is within half a percent of 1. With one year (the small dataset) the
# climatology of a month is that month itself, so the index shows the weather within each month.
# (A *monthly* index would be exactly 0 for one year.) With several years (`COURSE_SIZE=workshop`),
# the climatology averages the years and the index also shows one year against the others.
# </details>

# %% [markdown]
# ## 6. The whole dataset: `.mean("time")` on the cluster *(core)*
#
# Now the computation that kills the naive script: the time mean of every variable at every grid
# point, over all files. Have the dashboard open: *Task Stream* shows each chunk being read and
# reduced, *Workers* the memory of each worker.

# %%
with warnings.catch_warnings():  # warm-up on one file: the workers open HDF5 and decode once before the timing
    warnings.simplefilter("ignore", RuntimeWarning)
    clusters.compute(ds.isel(time=slice(0, steps_per_file)).mean("time"), client, what="the warm-up")

# %% [markdown]
# While it runs, a thread samples the memory (resident set size) of the worker processes with
# `psutil` every 20 ms (on a cluster of other machines, it reads what the workers report to the
# scheduler instead). The peak tells you whether this would fit on a smaller machine: it depends
# on the chunk size, the threads and the number of workers, **not** on the size of the dataset.

# %%
class WorkerMemory(clusters.ThreadSampler):
    """Peak summed resident memory of the cluster's worker processes, sampled in a thread (psutil).
    ``clusters.ThreadSampler`` runs ``_run`` in a background thread during a ``with`` block."""

    def __init__(self, client, interval=0.02):
        pids = client.run(os.getpid)  # {worker address: process id}
        self.local = all(address.startswith("tcp://127.0.0.1:") for address in pids)
        self.processes = [psutil.Process(pid) for pid in pids.values()] if self.local else []
        self.client = client
        self.samples = []
        super().__init__(interval if self.local else 0.5)

    def _run(self):
        start = time.perf_counter()
        while not self._stop.is_set():
            try:
                if self.local:
                    total = sum(p.memory_info().rss for p in self.processes)
                else:  # workers on other machines: their own reports, a few per second
                    total = sum(w["metrics"]["memory"]
                                for w in self.client.scheduler_info(n_workers=-1)["workers"].values())
            except psutil.Error:  # a worker restarted: skip this sample
                self._stop.wait(self.interval)
                continue
            self.samples.append((time.perf_counter() - start, total))
            self._stop.wait(self.interval)

    @property
    def peak(self):
        return max(b for _, b in self.samples)


# %% [markdown]
# ### `skipna`: pay for gaps only where there are gaps
# For floating-point data, `mean` skips missing values by default (`skipna=True`): every chunk gets a
# NaN-aware sum **and** a count of the valid values at each grid point, extra passes over every decoded
# chunk. ERA5 leaves sst undefined over land, at every step; t2m, u10, v10 and tp have no gaps. One time
# step (one small read) tells which variables have NaN, and only those keep `skipna`:
#
# ```python
# ds[no_gaps].mean("time", skipna=False)   # a plain sum and a division
# ds[gaps].mean("time")                      # NaN-aware, where it is needed
# ```
#
# Both ways run below from a cold page cache (`course.bench.evict` drops the files first, so the rate is
# a **disk** rate), the default first.

# %%
#| label: full-mean
time_vars = [v for v in ds.data_vars if "time" in ds[v].dims]
decoded_bytes = sum(ds[v].nbytes for v in time_vars)
first_step = ds[time_vars].isel(time=0).compute()  # which variables have NaN? one step tells
gaps = [v for v in time_vars if bool(first_step[v].isnull().any())]
no_gaps = [v for v in time_vars if v not in gaps]


def cold_mean(lazy, what):
    """Compute ``lazy`` (one or a list of lazy means) on the cluster, the files dropped from the page
    cache first; returns (result as one Dataset, seconds, the memory samples, whether it was cold)."""
    cold = bench.evict(*files)
    with WorkerMemory(client) as sampled, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # sst has no value over land: "mean of empty slice"
        start = time.perf_counter()
        result = clusters.compute(lazy, client, what=what)
        seconds = time.perf_counter() - start
    return (xr.merge(result) if isinstance(result, list) else result), seconds, sampled, cold


default_mean, default_s, _, _ = cold_mean(ds[time_vars].mean("time"), 'ds.mean("time")')
lazy = [ds[no_gaps].mean("time", skipna=False)] + ([ds[gaps].mean("time")] if gaps else [])
time_mean, mean_s, memory, cold = cold_mean(lazy, 'ds.mean("time", skipna=False) where there are no gaps')
baseline = memory.samples[0][1]
print(f'ds.mean("time") over {len(files)} files, {n_workers} workers')
print(f"  {course.hardware()}")
print(f"  skipna everywhere (the default): {default_s:.2f} s")
print(f"  skipna only for {', '.join(gaps) or 'no variable'} (gaps): {mean_s:.2f} s · {disk_bytes / 1e6 / mean_s:.0f} MB/s read "
      f"{'from disk (cold)' if cold else 'maybe from the page cache (this OS cannot drop it)'} · "
      f"{decoded_bytes / 1e6 / mean_s:.0f} MB/s decoded")
print(f"  skipna only where needed: {default_s / mean_s:.2f}× the speed of the default" +
      ("" if default_s > 1.1 * mean_s else " (no clear gain at this size: fixed costs per task dominate)"))
print(f"  worker memory: peak {memory.peak / 2**20:.0f} MiB (idle {baseline / 2**20:.0f} MiB) for a dataset of "
      f"{decoded_bytes / 2**20:.0f} MiB decoded; largest chunk {chunk_mb:.0f} MB")

# %%
#| label: fig-memory
#| fig-cap: "Memory of the Dask worker processes while computing the time mean of the whole dataset, compared with the size of the decoded dataset."
#| fig-alt: "Line chart of the summed worker memory in MiB against seconds, rising from the idle level while the chunks are processed; a dashed horizontal line marks the size of the decoded dataset for comparison."
fig, ax = plt.subplots(figsize=(10, 4.8))
seconds, used = zip(*memory.samples)
ax.plot(seconds, np.array(used) / 2**20, color="#0072B2", linewidth=2, label=f"{n_workers} workers (resident memory)")
ax.axhline(decoded_bytes / 2**20, color="#D55E00", linestyle="--", linewidth=2, label="the whole dataset, decoded")
ax.set_ylim(0, 1.15 * max(max(used), decoded_bytes) / 2**20)
ax.set_xlabel("seconds since the computation started")
ax.set_ylabel("MiB")
ax.set_title('ds.mean("time").compute()', loc="left")
ax.legend(loc="center right")
fig.text(0.01, 0.01, course.hardware(), fontsize=10, color="#555555")
fig.tight_layout(rect=(0, 0.04, 1, 1))
plt.show()

# %% [markdown]
# Is it right? The same mean with plain NumPy, file by file: add up each file's values (as float64)
# and count them, then divide. One file in memory at a time, no Dask.

# %%
#| label: numpy-check
start = time.perf_counter()
sums, counts = {}, {}
# Own files (COURSE_ERA5) may be thousands: NumPy then checks a sample of grid cells, every 8th row and column.
SAMPLE = {} if not era5.own_data() else {d: slice(None, None, max(1, ds.sizes[d] // 8)) for d in ("latitude", "longitude")}
for f in files:
    with xr.open_dataset(f) as raw_month:
        month = era5.normalise(raw_month).isel(SAMPLE)  # the generated files: unchanged, all cells
        for v in (v for v in time_vars if v in month):  # own files may hold one stream each
            values = month[v].values
            sums[v] = sums.get(v, 0) + np.nansum(values, axis=0, dtype=np.float64)
            counts[v] = counts.get(v, 0) + np.sum(~np.isnan(values), axis=0)
with np.errstate(invalid="ignore", divide="ignore"):
    numpy_mean = {v: sums[v] / np.where(counts[v] > 0, counts[v], np.nan) for v in time_vars}
numpy_s = time.perf_counter() - start
worst = max(float(np.nanmax(np.abs(time_mean[v].isel(SAMPLE).values - numpy_mean[v]))) for v in time_vars)
print(f"NumPy, file by file, one process: {numpy_s:.2f} s · Dask, {n_workers} workers: {mean_s:.2f} s")
print(course.hardware())
print(f"largest difference between the two means: {worst:.1e} (float32 rounding)")

# %%
own_cluster = client.cluster  # None when we joined a batch job's cluster: that one is the job's to stop
client.close()
if own_cluster is not None:
    own_cluster.close()

# %% [markdown]
# On the small dataset each chunk is tiny, so the fixed costs dominate: starting the worker
# processes, sending every task, and reopening the NetCDF file inside the worker for every chunk
# (an HDF5 open takes milliseconds; episode 09 compares Zarr, where each chunk is its own small
# object). The NumPy loop in one process usually wins, and the workers' memory is mostly the
# libraries they imported.
#
# Run the lab with `COURSE_SIZE=workshop` (finer, more frequent and longer: many times more data): the workers' memory
# stays near the same level while the dataset grows (`COURSE_SIZE=large` is bigger than most
# machines' memory). Whether Dask also beats the NumPy loop depends on how many cores are really
# free and how fast the disk delivers: on a quiet machine with `N` free cores and a fast disk it
# approaches `N`× the loop; on a busy laptop it may not win at all. What Dask guarantees is the
# bounded memory, and that the same code runs unchanged on a cluster (episode 05) or on a Zarr
# store in object storage (episode 09). That is out-of-core computing: memory set by chunks ×
# workers, time set by the cores and the disks.
#
# **What mattered, measured.** The course benchmark (`python tests/benchmark.py`, rows *Out-of-core*)
# compares this mean with plain processes doing the same work: as many processes, the same files from a
# cold cache, the same decoding and NaN handling, one pass. At workshop size on a quiet AMD EPYC with 2
# cores (2026-12-03, median of three rounds) the default `ds.mean("time")` reached 59 % of them and
# `skipna` only for sst 74 %: the NaN handling on variables without gaps was the largest loss. Chunks
# smaller than a file cost much more (32-step chunks: 35 %); most of what remains is Xarray's masking
# while decoding (a float copy of every chunk) and Dask's cost per task.

# %% [markdown]
# ### Exercise 4: watch it (7 min)
# This section closed its cluster: run the cell of section 2 again and open the new dashboard. Then
# compute `ds.t2m.groupby("time.season").std().compute()` and `ds.t2m.load()`. What do the
# *Task Stream* and the *Workers* memory bars show for each? What would `ds.load()` do with
# `COURSE_SIZE=large` (tens of GB)?
#
# <details><summary>Solution</summary>
#
# The groupby reads every chunk once (one bar per chunk in the Task Stream: open, decode, reduce)
# and worker memory stays flat. `.load()` ends with every chunk sent to *your* process: its memory
# grows to the size of the variable. With `large`, `ds.load()` asks for more memory than the machine
# has: the operating system kills the kernel (the out-of-memory error of the introduction). Check
# `ds.nbytes` before you load anything.
# </details>

# %% [markdown]
# ## Key points
# - NetCDF is self-describing: dimensions, variables, attributes. Check `.encoding`: packed `int16`
#   (older ERA5 downloads, and this course) decodes to floats two or four times its size on disk;
#   today's ERA5 files are compressed float32.
# - Open many files with `xr.open_mfdataset(files, data_vars="minimal", coords="minimal",
#   compat="override")`; the defaults compare and broadcast static fields along time.
# - Opening is lazy: `sel`/`isel` are instant, values are read when you compute or plot.
# - Chunks of tens to hundreds of MB; memory is set by chunk size × threads × workers, not by dataset size.
# - Xarray locks netCDF-C/HDF5: in one process NetCDF reads are serialised, so use worker processes.
# - `resample`, `rolling`, `groupby("time.season")`, climatology and anomalies are one line each,
#   and computing results together shares one pass over the data.
# - With flox installed, `groupby` reductions on Dask arrays take fewer, larger tasks, by a method
#   chosen from the chunks; `xr.set_options(use_flox=False)` is the comparison.
# - Check the parallel answer against a simple one, and always report time and memory with the hardware.

# %% [markdown]
# ## Checks
# Run by `pytest labs/07_xarray_dask.py`; the slides never show this cell.

# %% tags=["checks"]
def test_packing_decodes_as_documented():
    assert raw.dtype == np.int16 or not packed  # own files (COURSE_ERA5) since 2024 are float32
    np.testing.assert_allclose(by_hand, decoded, rtol=0, atol=scale)


def test_minimal_options_keep_static_fields_2d():
    if "lsm" not in ds:  # own files without the invariants
        return
    assert ds.lsm.dims == ("latitude", "longitude") and ds.z.dims == ("latitude", "longitude")
    with xr.open_dataset(era5.one_file("lsm")) as first_file:
        np.testing.assert_array_equal(ds.lsm.values, era5.normalise(first_file).lsm.values)
    if "time" in ds_default.lsm.dims:  # the classic defaults broadcast it (newer xarray may not)
        assert ds_default.lsm.shape[0] == ds.time.size


def test_every_way_of_opening_gives_the_same_data():
    for other in (ds_default, ds_parallel):
        assert other.time.size == ds.time.size
        xr.testing.assert_identical(other.t2m.isel(time=slice(0, 8)), ds.t2m.isel(time=slice(0, 8)))
    assert ds.indexes["time"].is_monotonic_increasing and ds.indexes["time"].is_unique


def test_selection_is_lazy_and_chunks_sensible():
    assert isinstance(ds.sel(time=ds.time[0]).t2m.data, dask.array.Array)
    assert chunk_mb <= 256, f"chunks of {chunk_mb:.0f} MB are too big for a worker"
    # the chunk sizing counts the decoded item size once: chunks of up to 128 MB, not half of that
    decoded_step = ds.t2m.dtype.itemsize * ds.latitude.size * ds.longitude.size
    assert time_chunk == min(steps_per_file, int(128e6 // decoded_step))


def test_time_step_read_from_the_data():
    if not era5.own_data():  # the generator's own step; own files have theirs
        assert step_hours == {"small": 12, "workshop": 6}.get(course.size(), step_hours)
    assert step_hours == int(np.diff(ds.time.values[:2])[0] / np.timedelta64(1, "h"))
    assert 0 < daily.size < series.size


def test_anomalies_average_to_zero():
    assert abs(float(anomalies.mean())) < 1e-3
    per_month = anomalies.groupby("time.month").mean()
    assert float(np.abs(per_month).max()) < 1e-3
    assert climatology.size == len(np.unique(series.time.dt.month))


def test_dask_mean_equals_numpy_file_by_file():
    assert set(time_mean.data_vars) == set(time_vars)
    for v in time_vars:
        # skipna=False where the first step has no gap gives the default's answer (NaN where it had none)
        np.testing.assert_allclose(time_mean[v].values, default_mean[v].values, rtol=1e-6, equal_nan=True)
        np.testing.assert_allclose(time_mean[v].isel(SAMPLE).values, numpy_mean[v], rtol=1e-5, atol=1e-6,
                                   equal_nan=True)


def test_memory_stays_bounded():
    # Out of core: the workers never hold much more than a few chunks each, whatever the dataset size.
    assert memory.peak < n_workers * 1.5 * 2**30
    assert client.status == "closed"


def test_flox_and_xarrays_own_groupby_agree():
    a, b = groupby_runs["flox"]["result"], groupby_runs["use_flox=False"]["result"]
    for name in a.data_vars:
        # two algorithms summing float32 in different orders: equal to float32 rounding, not to the bit
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=1e-4, atol=1e-4, err_msg=name)
    assert groupby_runs["flox"]["steps"] and groupby_runs["flox"]["said"], "flox left no trace: was it used?"
    assert not groupby_runs["use_flox=False"]["said"], "flox ran although use_flox=False"


course.run_checks(globals())
