# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · Zarr and storage for parallel work
#
# **Teaching:** 40 min · **Exercises:** 35 min
#
# ## Objectives
# - Explain how a Zarr store (a folder, or a bucket, of chunk objects) differs from a pile of
#   NetCDF/HDF5 files, and measure which serves parallel readers (threads, processes) better, and when.
# - Convert the course's NetCDF files to a consolidated Zarr store once, and measure what that costs
#   and what it saves every time the data are opened.
# - Choose chunk shapes for the way the data will be read (maps or time series), rechunk safely, and
#   measure the difference.
# - Compare compression codecs and packing, and keep the number of files down with sharding.
# - Write to and read from an S3-compatible object store, describe the data in an Intake catalogue,
#   and export station time series to Parquet.
# - Build a virtual Zarr store over the NetCDF files (VirtualiZarr + Icechunk) without copying them,
#   commit a new month to it, and measure when it beats converting.
#
# ## Why this matters
# The lab's NAS is full of ERA5 NetCDF files. Every analysis script starts with `open_mfdataset`, which
# opens every file and reads its metadata before it does any work; a script that wants the rainfall at
# one polder for forty years reads forty years of global maps to get it; and within one process the
# files are read one chunk at a time, because the HDF5 library underneath NetCDF4 is not thread-safe
# and xarray puts a lock around it (separate processes each have their own lock). Zarr stores the same
# arrays as **one object per chunk** plus small JSON metadata, with no lock: any number of threads,
# processes or machines can read different chunks at the same time, from a local disk, a parallel
# filesystem or an object store in the cloud. Whether that makes reads faster is a measurement
# (section 5), not a promise.
#
# None of that is free: converting costs time once, chunk shapes must fit the way you read, and many
# small objects hurt a parallel filesystem. This lab measures each of these costs on this machine.

# %%
import os
import shutil
import textwrap
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import psutil
import xarray as xr
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

import course
from course import bench, era5
from course import s3 as local_s3

# Zarr format 3 does not (yet) standardise consolidated metadata, so zarr-python warns each time we use
# it. xarray, zarr-python and the cloud tools all read it; we use it knowingly and silence the warning.
warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)

FILES = era5.files()  # the course's files, or your own with COURSE_ERA5 (README: "Teaching on your own data")
SRC = Path(era5.setting()) if era5.own_data() else course.dataset()
WORK = course.BUILD / "09_zarr"  # everything this lab writes goes here
shutil.rmtree(WORK, ignore_errors=True)
era5.writable(WORK)  # one sentence, and nothing half-written, where it cannot be written

MiB = 2**20
CHUNK_TARGET = 1 * MiB  # bytes (uncompressed, float32) per chunk; see section 1
POINT = {"latitude": 52.1, "longitude": 5.2}  # De Bilt, the Netherlands


def rel(path):
    """A path relative to the repository, as printed on the slides (absolute if it is elsewhere)."""
    try:
        return os.path.relpath(path, course.ROOT)
    except ValueError:  # Windows: another drive
        return str(path)


def files_in(path):
    """Number of files under ``path`` (one file per object: this is what a filesystem has to track)."""
    return sum(1 for p in path.rglob("*") if p.is_file())


def bytes_in(path):
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def fastest(fn, repeat=3):
    """Run ``fn()`` ``repeat`` times; return (fastest time in seconds, the last result)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


# %%
#| label: dataset-info
print(f"{len(FILES)} NetCDF files, {sum(f.stat().st_size for f in FILES) / MiB:.0f} MiB, in {rel(SRC)}")
print(f"dataset size: {course.size()}" + (" (COURSE_SIZE=workshop gives the few-GB version)" if course.size() == "small" else ""))
era5.report()  # own files only: what they are and what normalising did
print(course.hardware())

# %% [markdown]
# ## 1. From many NetCDF files to one Zarr store *(core)*
#
# Opening the NetCDF files is the step everybody waits for. `open_mfdataset` opens every file, reads
# every variable's metadata and the coordinates, and checks that the files fit together. We give it
# the same options as in episode 07: the static fields (`lsm`, `z`) are taken from the first file
# instead of being compared (and copied along `time`) for every file.

# %%
OPEN_NETCDF = dict(combine="by_coords", data_vars="minimal", coords="minimal", compat="override", chunks={},
                   **era5.OPEN)  # preprocess=era5.normalise: the course's names and order (generated files: unchanged)


def open_netcdf():
    return xr.open_mfdataset(FILES, **OPEN_NETCDF)


t_open_netcdf, nc = fastest(open_netcdf)
era5.require(nc, ["t2m"], "episode 09")
nc

# %% [markdown]
# Zarr needs **one chunk shape per array**; the monthly files give 28-, 30- and 31-day pieces.
# So we first choose a regular, *map-shaped* chunk: a run of whole global maps, about 1 MiB of
# float32 per chunk. (Small enough that a reader who wants little reads little, and that many
# chunks can be read in parallel; large enough that the cost per object does not dominate. On a
# parallel filesystem or in the cloud people go up to 10–100 MiB; section 5 shows how to get both.)
#
# Then `to_zarr(..., consolidated=True)` writes the store: one object per chunk per variable, a
# `zarr.json` per array, and one **consolidated** copy of all metadata at the top, so a reader needs
# a single request to learn everything about the store. This is a one-time cost.

# %%
n_time, n_lat, n_lon = nc.sizes["time"], nc.sizes["latitude"], nc.sizes["longitude"]
map_steps = max(1, CHUNK_TARGET // (n_lat * n_lon * 4))
MAP_CHUNKS = {"time": map_steps, "latitude": -1, "longitude": -1}
MAP_STORE = WORK / "era5_maps.zarr"

start = time.perf_counter()
nc.chunk(MAP_CHUNKS).to_zarr(MAP_STORE, mode="w", consolidated=True)
t_to_zarr = time.perf_counter() - start


def open_zarr_consolidated():
    return xr.open_zarr(MAP_STORE, consolidated=True)


def open_zarr_not_consolidated():
    return xr.open_zarr(MAP_STORE, consolidated=False)


t_open_zarr, zr = fastest(open_zarr_consolidated, repeat=5)
t_open_zarr_plain, _ = fastest(open_zarr_not_consolidated, repeat=5)

# %%
#| label: open-times
open_times = pd.DataFrame(
    {
        "seconds": [t_open_netcdf, t_open_zarr, t_open_zarr_plain, t_to_zarr],
        "what": [
            f"open_mfdataset, {len(FILES)} NetCDF files",
            "open_zarr, consolidated metadata",
            "open_zarr, metadata read per array",
            f"to_zarr, once ({nc.nbytes / MiB:.0f} MiB decoded)",
        ],
    }
).set_index("what")
course.table([{"what": what, "seconds": f"{sec:.4f}"} for what, sec in open_times["seconds"].items()], align="lr")
print(f"Opening Zarr is {t_open_netcdf / t_open_zarr:.0f}× faster than opening the NetCDF files; "
      f"the conversion pays for itself after {t_to_zarr / max(t_open_netcdf - t_open_zarr, 1e-9):.0f} opens.")
print(f"Fastest of 3–5 runs, warm file cache. {course.hardware()}")

# %%
#| label: fig-open-times
#| fig-cap: "Time to open the dataset: many NetCDF files against one consolidated Zarr store, with the one-time conversion for scale (log axis)."
#| fig-alt: "Horizontal bar chart on a logarithmic time axis. Opening the NetCDF files with open_mfdataset takes far longer than opening the Zarr store with consolidated metadata; opening Zarr without consolidated metadata is slightly slower; the one-time to_zarr conversion is the longest bar."
fig, ax = plt.subplots(figsize=(10, 4.2))
colors = ["#D55E00", "#0072B2", "#56B4E9", "#999999"]
ax.barh(open_times.index[::-1], open_times["seconds"][::-1], color=colors[::-1])
ax.set_xscale("log")
ax.set_xlabel("seconds (log scale; shorter is better)")
for y, s in enumerate(open_times["seconds"][::-1]):
    ax.text(s * 1.1, y, f"{s * 1000:.0f} ms" if s < 1 else f"{s:.1f} s", va="center", fontsize=13)
ax.set_xlim(right=open_times["seconds"].max() * 8)
ax.set_title("Opening the dataset", loc="left")
fig.text(0.01, 0.01, course.hardware(), fontsize=9, color="#555555")
fig.tight_layout(rect=(0, 0.04, 1, 1))

# %% [markdown]
# ### Same numbers from both
# A new format is only useful if it gives the same answer. Every value of every variable is compared
# (lazily, chunk by chunk, so this works at any size), and the means are computed with the same
# chunking so that even the rounding is identical.

# %%
#| label: same-numbers
identical = {name: bool(nc[name].equals(zr[name])) for name in nc.data_vars}
same_chunks = dict(zip(zr.t2m.dims, zr.t2m.chunks))
mean_netcdf = float(nc.t2m.astype("float64").chunk(same_chunks).mean())
mean_zarr = float(zr.t2m.astype("float64").mean())
print(f"mean t2m from NetCDF: {mean_netcdf:.9f} K   (decoded as {nc.t2m.dtype})")
print(f"mean t2m from Zarr:   {mean_zarr:.9f} K   (decoded as {zr.t2m.dtype})")
print("every value identical:", ", ".join(f"{k} {v}" for k, v in identical.items()))

# %% [markdown]
# Look at the data types. The files store `t2m` packed as 16-bit integers with a `float32` scale
# factor, so xarray decodes it to `float32`. Zarr keeps the same integers, but its attributes are JSON,
# which has no `float32`: the scale factor comes back as a Python float and xarray decodes to `float64`
# to be safe. The *values* are identical (every float32 is exactly a float64), but a mean computed in
# float32 and one computed in float64 differ in the last digits, and the decoded arrays take twice the
# memory. That is why we compare means in float64. If memory matters, `.astype("float32")` after
# opening, or store the decoded floats instead of packed integers.

# %% [markdown]
# ## 2. What is inside a Zarr store? *(core)*
#
# A Zarr store is just a folder (or, on an object store, a prefix of keys). Each array has a
# `zarr.json` (shape, data type, chunk shape, codecs, attributes) and a `c/` folder with one object
# per chunk, named by its chunk coordinates: `t2m/c/3/0/0` is the fourth chunk along `time`. Writers
# never touch a shared file, so many processes can write different chunks at once without a lock.

# %%
#| label: store-tree
meta = zarr.open_array(MAP_STORE / "t2m", mode="r").metadata
print(f"{MAP_STORE.name}/  ({files_in(MAP_STORE)} files, {bytes_in(MAP_STORE) / MiB:.1f} MiB)")
for entry in sorted(MAP_STORE.iterdir()):
    n = files_in(entry) if entry.is_dir() else 1
    print(f"  {entry.name}{'/' if entry.is_dir() else ''}  {n} file(s)")
chunk_keys = sorted((p.relative_to(MAP_STORE).as_posix() for p in (MAP_STORE / "t2m" / "c").rglob("*") if p.is_file()),
                    key=lambda key: [int(part) for part in key.split("/")[2:]])
print("  t2m chunk objects:", ", ".join(chunk_keys[:3]), "…", chunk_keys[-1])
print(f"t2m/zarr.json: shape {meta.shape}, chunks {meta.chunks}, data type {meta.data_type}")
print("  codecs:", " → ".join(type(c).__name__ for c in meta.codecs))

# %% [markdown]
# The data type is whatever the NetCDF files stored (the course's files, like many ERA5 downloads,
# may pack values as 16-bit integers with a scale factor); `to_zarr` keeps that encoding, which is why
# the values above are bit-for-bit identical.

# %% [markdown]
# ## 3. Chunk for the way you read *(core)*
#
# Map-shaped chunks (many whole maps in a chunk) are perfect for "the global mean of every day". The
# flood modeller wants the opposite: *one* grid cell, *all* time steps. From map-shaped chunks that
# means reading and decompressing every chunk of the store to keep one value of each map. The cure is
# a second copy of the data with *time-series-shaped* chunks: all time steps, a small tile of grid
# cells.
#
# For the comparison we take `t2m` and `tp` (at workshop size, no more than 512 MiB of them: rechunking
# an array from maps to time series is an all-to-all shuffle, and Dask would otherwise hold all of it
# in memory; for whole archives use the `rechunker` package or Dask's disk-backed `p2p` rechunking).

# %%
LAYOUT_VARS = [v for v in ("t2m", "tp") if v in zr]
LAYOUT_MAX_BYTES = 512 * MiB
per_step = sum(zr[v].isel(time=0).nbytes for v in LAYOUT_VARS)
n_layout = int(min(n_time, max(1, LAYOUT_MAX_BYTES // per_step)))
layout_src = zr[LAYOUT_VARS].isel(time=slice(0, n_layout))
tile = int(np.clip(np.sqrt(CHUNK_TARGET / (n_layout * 4)), 1, max(n_lat, n_lon)))
TS_CHUNKS = {"time": -1, "latitude": tile, "longitude": tile}
TS_STORE = WORK / "era5_timeseries.zarr"
print(f"{n_layout} of {n_time} time steps; time-series chunks: all {n_layout} steps × {tile} × {tile} cells")

# %% [markdown]
# The obvious code is `ds.chunk(new_chunks).to_zarr(...)`. It fails, and the reason is worth knowing:

# %%
#| label: rechunk-error
rechunk_error = None
try:
    layout_src.chunk(TS_CHUNKS).to_zarr(TS_STORE, mode="w", consolidated=True)
except ValueError as err:
    rechunk_error = err
    print(f"{type(err).__name__}:")
    print(textwrap.fill(str(err).split(" To resolve")[0], 100))

# %% [markdown]
# A dataset opened from Zarr remembers the chunk shape it was stored with in each variable's
# `encoding["chunks"]`, and `to_zarr` uses that as the chunk shape of the *new* store. The old
# (map-shaped) chunks cut across the new Dask chunks, so several Dask tasks would write into the same
# Zarr chunk at once and corrupt it; xarray refuses. The fix is to forget the old layout before
# writing the new one:

# %%
ts_src = layout_src.chunk(TS_CHUNKS)
for variable in ts_src.variables.values():
    variable.encoding.pop("chunks", None)  # the old chunk shape ...
    variable.encoding.pop("preferred_chunks", None)  # ... and xarray's copy of it

start = time.perf_counter()
ts_src.to_zarr(TS_STORE, mode="w", consolidated=True)
t_rechunk = time.perf_counter() - start
ts = xr.open_zarr(TS_STORE, consolidated=True)
print(f"rechunked {layout_src.nbytes / MiB:.0f} MiB in {t_rechunk:.1f} s · {course.hardware()}")

# %% [markdown]
# ### Measured: one point's time series, one global map, one full scan
# Three ways to read `t2m` (the same time steps from every layout): the whole time series at De Bilt,
# one global map, and a scan of every value (a global mean). For each we count the chunks that had to
# be read and decompressed. Fastest of three runs with a warm file cache, so this measures the work
# per chunk, not the disk; on a NAS, Lustre or S3 every extra chunk also costs a round trip.

# %%
def chunks_touched(da, selection):
    """How many storage chunks of ``da`` a selection needs (from the dask chunks, which match storage)."""
    count = 1
    for dim, sizes in zip(da.dims, da.chunks):
        edges = np.cumsum((0,) + sizes)
        sel = selection.get(dim, slice(None))
        if isinstance(sel, int):
            count *= 1
        else:
            lo, hi = sel.indices(da.sizes[dim])[:2]
            count *= int(np.count_nonzero((edges[:-1] < hi) & (edges[1:] > lo)))
    return count


def measure_reads(label, da):
    n = min(n_layout, da.sizes["time"])
    da = da.isel(time=slice(0, n))
    i_lat = int(np.abs(da.latitude.values - POINT["latitude"]).argmin())
    i_lon = int(np.abs(da.longitude.values - POINT["longitude"]).argmin())
    point = {"latitude": i_lat, "longitude": i_lon}
    one_map = {"time": n // 2}
    t_point, series = fastest(lambda: da.isel(point).values)
    t_map, field = fastest(lambda: da.isel(one_map).values)
    t_scan, total = fastest(lambda: float(da.mean()), repeat=2)  # float32 or float64: count values
    return {
        "layout": label,
        "point ms": 1000 * t_point,
        "point chunks": chunks_touched(da, point),
        "map ms": 1000 * t_map,
        "map chunks": chunks_touched(da, one_map),
        "scan Mvalues/s": da.size / 1e6 / t_scan,
        "scan chunks": chunks_touched(da, {}),
    }, series, field


reads = {}
for label, source in [("NetCDF files", nc), ("Zarr, map chunks", zr), ("Zarr, time-series chunks", ts)]:
    row, series, field = measure_reads(label, source.t2m)
    reads[label] = row | {"series": series, "map": field}

# %%
#| label: layout-table
COLUMNS = ["point ms", "point chunks", "map ms", "map chunks", "scan Mvalues/s", "scan chunks"]
layout_table = pd.DataFrame([{k: r[k] for k in ["layout"] + COLUMNS} for r in reads.values()]).set_index("layout")
course.table([{"layout": r["layout"]} | {k: f"{r[k]:.1f}" if k.endswith(("ms", "/s")) else int(r[k]) for k in COLUMNS}
              for r in reads.values()], align="lrrrrrr")
nc_encoding = nc.t2m.encoding
compressed = any(nc_encoding.get(k) for k in ("zlib", "szip", "zstd", "bzip2", "blosc"))
print(f"t2m, {n_layout} time steps × {n_lat} × {n_lon}; point = De Bilt. NetCDF storage of t2m: "
      f"{'contiguous' if nc_encoding.get('contiguous') else 'chunked'}, {'compressed' if compressed else 'uncompressed'}.")
print(course.hardware())

# %%
#| label: fig-layout-reads
#| fig-cap: "Time to read one point's full time series and one global map of t2m, from the NetCDF files and from Zarr stores with map-shaped and time-series-shaped chunks (log axis)."
#| fig-alt: "Grouped bar chart with a logarithmic time axis. For each of three layouts, a bar for the point time series and a bar for the global map. Map-shaped chunks read a map quickly but a point series slowly; time-series chunks do the opposite."
fig, ax = plt.subplots(figsize=(10, 4.8))
x = np.arange(len(layout_table))
ax.bar(x - 0.2, layout_table["point ms"], width=0.4, label="one point, all time steps")
ax.bar(x + 0.2, layout_table["map ms"], width=0.4, label="one global map")
ax.set_xticks(x, [t.replace(", ", "\n") for t in layout_table.index])
ax.set_yscale("log")
ax.set_ylabel("milliseconds (log)")
ax.legend(loc="upper left", frameon=False)
ax.set_title("Chunk shape decides which read is cheap", loc="left")
fig.text(0.01, 0.01, course.hardware(), fontsize=9, color="#555555")
fig.tight_layout(rect=(0, 0.04, 1, 1))

# %% [markdown]
# Look at the NetCDF row too, and at how those files are stored (under the table). Files that are
# uncompressed and contiguous, as many ERA5 downloads are, let HDF5 read a point series with strided
# reads and scan at the speed of the disk, while the Zarr stores are compressed (section 4) and pay
# for decompression. Compression trades CPU time for bytes: it pays off when the bytes come over a
# network or from a busy NAS. Whether Zarr's lack of a lock makes parallel reads faster is measured in
# section 5.
#
# Neither chunk layout is "right". Many projects keep **two copies**: map-shaped for climatologies and
# model input, time-series-shaped for point and catchment extraction. Storage is cheap compared with
# a day of waiting. A compromise chunk (e.g. a month × 10° × 10°) is good at neither but bad at
# neither, which is often the right choice for one shared copy.

# %% [markdown]
# ### Exercise 1: chunks for a catchment (6 min)
# The flood modeller needs *daily means over the Rhine catchment* (about 46–52° N, 4–12° E) for the
# whole record. Which of the two stores reads that faster, and why? Propose a chunk shape that is good
# for this access *and* still reasonable for global maps. Write it (remember the encoding!) and time it.
#
# <details><summary>Solution</summary>
#
# The time-series store: the catchment touches one or a few tiles, each holding all time steps, while
# the map store has to read every chunk. A compromise such as a month of six-hourly steps × 10° × 10°
# (`{"time": 124, "latitude": 10, "longitude": 10}` on the workshop's 1° grid) reads a catchment
# series from a chunk or two per month and a global map from a few hundred small chunks. Remember
# `for v in ds.variables.values(): v.encoding.pop("chunks", None); v.encoding.pop("preferred_chunks", None)`
# before `ds.chunk(...).to_zarr(...)`, then time `ds.t2m.sel(latitude=slice(52, 46), longitude=slice(4, 12)).mean(["latitude", "longitude"]).compute()`.
# </details>

# %% [markdown]
# ## 4. Compression: codecs and packing *(core)*
#
# Every chunk passes through a chain of *codecs* on its way to storage. Zarr 3 names them in
# `zarr.json`: a serializer (`bytes`), then compressors. Blosc is a meta-compressor built for numeric
# arrays: its **shuffle** filter regroups the bytes of the numbers (all first bytes, then all second
# bytes, …), which turns slowly varying floats into long runs that compress well. **Packing** stores
# each value as a 16-bit integer with a scale factor and offset (ERA5 NetCDF downloads did this for
# years): half the bytes before compression, at a precision of `scale_factor / 2`.
#
# We write one sample of `t2m` (at most 64 MiB of float32) with each codec and measure the size, the
# write and the read speed. The course's data are synthetic with random weather noise, which
# compresses worse than real ERA5; the *ranking* of the codecs is what carries over.

# %%
CODEC_MAX_BYTES = 64 * MiB
n_codec = int(min(n_time, max(1, CODEC_MAX_BYTES // (n_lat * n_lon * 4))))
sample = zr.t2m.isel(time=slice(0, n_codec)).astype("float32").load().chunk(MAP_CHUNKS)  # in memory, map chunks
sample.encoding = {}
offset = float(np.round(float(sample.mean()), 1))
PACKED = dict(dtype="int16", scale_factor=np.float32(0.01), add_offset=np.float32(offset), _FillValue=np.int16(-32768))
CODECS = {
    "no compression": dict(compressors=None),
    "zstd (zarr default)": dict(compressors=[ZstdCodec(level=0)]),
    "blosc lz4, no shuffle": dict(compressors=[BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle")]),
    "blosc lz4 + shuffle": dict(compressors=[BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]),
    "blosc zstd + shuffle": dict(compressors=[BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")]),
    "blosc zstd + bitshuffle": dict(compressors=[BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")]),
    "int16 packed + blosc zstd + shuffle": dict(PACKED, compressors=[BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")]),
}

codec_rows, codec_errors = [], {}
for name, encoding in CODECS.items():
    path = WORK / "codecs" / (name.replace(" ", "_").replace(",", "").replace("+", "") + ".zarr")
    start = time.perf_counter()
    sample.to_dataset().to_zarr(path, mode="w", encoding={"t2m": encoding}, consolidated=True)
    t_write = time.perf_counter() - start
    t_read, back = fastest(lambda: xr.open_zarr(path).t2m.values)
    stored = bytes_in(path / "t2m" / "c")  # the chunks only, not the metadata
    codec_rows.append({"codec": name, "ratio": sample.nbytes / stored, "MiB": stored / MiB,
                       "write MB/s": sample.nbytes / 1e6 / t_write, "read MB/s": sample.nbytes / 1e6 / t_read})
    codec_errors[name] = float(np.nanmax(np.abs(back - sample.values)))

# %%
#| label: codec-table
codec_table = pd.DataFrame(codec_rows).set_index("codec")
codec_table["max error K"] = pd.Series(codec_errors)
course.table([{"codec": name} | {k: f"{v:.3g}" for k, v in row.items()} for name, row in codec_table.iterrows()],
             align="lrrrrr")
print(f"t2m sample: {sample.nbytes / MiB:.0f} MiB of float32 in chunks of {map_steps} maps")
print(course.hardware())

# %%
#| label: fig-codec-ratios
#| fig-cap: "Compression ratio (uncompressed float32 bytes divided by stored bytes) of one t2m sample for each codec chain."
#| fig-alt: "Horizontal bar chart of compression ratios. No compression and lz4 without shuffle are near 1; shuffle raises the ratio; bitshuffle with zstd raises it further; packing to int16 before compressing gives the largest ratio."
fig, ax = plt.subplots(figsize=(10, 4.8))
ax.barh(codec_table.index[::-1], codec_table["ratio"][::-1],
        color=["#CC79A7"] + ["#0072B2"] * (len(codec_table) - 1))
ax.axvline(1, color="#555555", linewidth=1)
ax.set_xlabel("compression ratio (higher is smaller)")
ax.set_title("Codecs on the same t2m sample", loc="left")
fig.text(0.01, 0.01, course.hardware(), fontsize=9, color="#555555")
fig.tight_layout(rect=(0, 0.04, 1, 1))

# %% [markdown]
# What do these numbers say? The conclusions below are computed from the table, so they hold for
# this run, this machine and this data (synthetic noise compresses worse than real ERA5):

# %%
#| label: codec-conclusions
ratio, read_speed, write_speed = codec_table["ratio"], codec_table["read MB/s"], codec_table["write MB/s"]
lossless = [c for c in codec_table.index if "packed" not in c]
print(f"shuffle before lz4: ratio {ratio['blosc lz4, no shuffle']:.2f} → {ratio['blosc lz4 + shuffle']:.2f}")
print(f"bitshuffle instead of shuffle (zstd): ratio {ratio['blosc zstd + shuffle']:.2f} → "
      f"{ratio['blosc zstd + bitshuffle']:.2f}")
print(f"packing to int16 first (zstd + shuffle): ratio {ratio['blosc zstd + shuffle']:.2f} → "
      f"{ratio['int16 packed + blosc zstd + shuffle']:.2f}, error up to {codec_errors['int16 packed + blosc zstd + shuffle']:.3f} K")
print(f"best lossless ratio: {max(lossless, key=ratio.get)} ({ratio[lossless].max():.2f})")
print(f"fastest lossless read: {max(lossless, key=read_speed.get)} ({read_speed[lossless].max():.0f} MB/s); "
      f"slowest: {min(lossless, key=read_speed.get)} ({read_speed[lossless].min():.0f} MB/s)")
print(f"write speeds of the compressors: {write_speed[lossless[1:]].min():.0f} to {write_speed[lossless[1:]].max():.0f} MB/s")
print(course.hardware())

# %% [markdown]
# ### Exercise 2: the price of a compression level (10 min)
# Add `BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")` and `clevel=9` to `CODECS` and re-run
# the codec cells. How do the ratio and the write and read speeds change? Which would you choose for a
# store written once and read by a hundred jobs?
#
# <details><summary>Solution</summary>
#
# Higher levels buy a little more ratio for much slower writes; reading speed hardly changes, because
# zstd decompresses at the same speed whatever the level. For write-once, read-often data a high level
# is fine; for scratch data that is written every run, use lz4 or a low zstd level. Shuffle matters
# far more than the level.
# </details>

# %% [markdown]
# ## 5. Parallel reads: NetCDF against Zarr *(core)*
#
# Now the claim everybody repeats: "Zarr is better for parallel reads". Here it is measured, with a
# fair comparison. Both formats hold the same decoded `float32` values in chunks of the same shape
# (a run of whole maps, up to a month or 32 MiB: bigger than in section 1, because every Dask task
# has a fixed cost, which a full read should not be about), and both compress with the same
# algorithm, zlib with byte shuffle
# (in NetCDF4 as HDF5 filters, the way today's Copernicus data store ships ERA5; in Zarr through
# Blosc). The course's own files, uncompressed and packed, are the third contender. Each format is
# read in full (a mean of every time-varying variable, no more than 1 GiB of them) three ways:
#
# - **1 thread**: one process, one thread: the baseline;
# - **N threads** in one process (Dask's threaded scheduler): NetCDF goes through xarray's lock,
#   Zarr does not;
# - **N processes** (a Dask cluster of worker processes): each process has its own lock.

# %%
READ_MAX_BYTES = 1024 * MiB
TIME_VARS = [v for v in nc.data_vars if "time" in nc[v].dims]
per_file = sum(nc[v].isel(time=slice(0, n_time // len(FILES))).nbytes for v in TIME_VARS)
read_files = FILES[: max(1, min(len(FILES), int(READ_MAX_BYTES // max(per_file, 1))))]
step_bytes = 4 * n_lat * n_lon  # one float32 map
with xr.open_dataset(era5.one_file("t2m")) as first_month:
    month_steps = era5.normalise(first_month).sizes["time"]
READ_STEPS = int(max(1, min(month_steps, 32 * MiB // step_bytes)))
READ_CHUNKS = {"time": READ_STEPS, "latitude": -1, "longitude": -1}
NC_ZLIB = WORK / "netcdf_zlib"  # the compressed NetCDF4 copy
NC_ZLIB.mkdir()
for i, f in enumerate(read_files):
    with xr.open_dataset(f, engine=era5.OPEN.get("engine")) as month:
        month = era5.normalise(month)  # own files: one stream per file, maybe; the generated: unchanged
        names = [v for v in TIME_VARS if v in month]
        if not names:  # an invariants file
            continue
        month = month[names].astype("float32")
        encoding = {v: {"dtype": "float32", "zlib": True, "complevel": 4, "shuffle": True,
                        "chunksizes": (min(READ_STEPS, month.sizes["time"]), n_lat, n_lon)} for v in names}
        for v in names:
            month[v].encoding = {}
        month.to_netcdf(NC_ZLIB / (f.name if not era5.own_data() else f"era5_{i:05d}_{f.name}"), encoding=encoding)
zlib_files = sorted(NC_ZLIB.glob("era5_*.nc"))
READ_STORE = WORK / "era5_read_test.zarr"
read_src = xr.open_mfdataset(read_files, **OPEN_NETCDF)[TIME_VARS].astype("float32").chunk(READ_CHUNKS)
for v in TIME_VARS:
    read_src[v].encoding = {}
read_src.to_zarr(READ_STORE, mode="w", consolidated=True,
                 encoding={v: {"compressors": [BloscCodec(cname="zlib", clevel=4, shuffle="shuffle")]} for v in TIME_VARS})
READERS = {  # format -> a function that opens it lazily, in chunks of READ_STEPS maps
    "NetCDF4, as generated (packed int16)" if not era5.own_data() else "NetCDF, as delivered": lambda: xr.open_mfdataset(
        read_files, **(OPEN_NETCDF | {"chunks": era5.chunks(READ_CHUNKS)}))[TIME_VARS],  # own files: valid_time too
    "NetCDF4, float32 + zlib": lambda: xr.open_mfdataset(
        zlib_files, **(OPEN_NETCDF | {"chunks": READ_CHUNKS}))[TIME_VARS],
    "Zarr, float32 + zlib (Blosc)": lambda: xr.open_zarr(READ_STORE, consolidated=True)[TIME_VARS],
}
read_bytes = read_src.nbytes
print(f"{len(read_files)} monthly files, {len(TIME_VARS)} variables, {read_bytes / MiB:.0f} MiB decoded; "
      f"chunks of {READ_STEPS} maps · on disk: {bytes_in(NC_ZLIB) / MiB:.0f} MiB NetCDF zlib, "
      f"{bytes_in(READ_STORE) / MiB:.0f} MiB Zarr")


def scan(ds):
    """A full read: the mean of every variable (what a climatology or a regridding job reads)."""
    return ds.mean()


N_READERS = course.usable_cores() if course.size() != "small" else min(course.usable_cores(), 2)
read_load = bench.load()  # how busy the machine is: parallel reads cannot use cores others hold
read_times, read_means = {}, {}
with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # sst has no value over land: "mean of empty slice"
    for name, open_it in READERS.items():
        ds_read = open_it()
        for label, workers in (("1 thread", 1), (f"{N_READERS} threads", N_READERS)):
            t, result = fastest(lambda: scan(ds_read).compute(scheduler="threads", num_workers=workers), repeat=2)
            read_times[name, label] = t
            read_means[name, label] = result

# %%
import logging

from course import clusters

read_client = clusters.client(n_workers=N_READERS, threads_per_worker=1, silence_logs=logging.ERROR)
n_read_workers = len(read_client.scheduler_info(n_workers=-1)["workers"])
proc_label = f"{n_read_workers} processes"
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for name, open_it in READERS.items():
            ds_read = open_it()
            clusters.compute(scan(ds_read), read_client, what="the warm-up read")  # workers open files, import codecs
            t, result = fastest(lambda: clusters.compute(scan(ds_read), read_client, what=f"the full read of {name}"),
                                repeat=2)
            read_times[name, proc_label] = t
            read_means[name, proc_label] = result
finally:
    read_cluster = read_client.cluster  # None when a batch job's cluster was joined: the job stops that one
    read_client.close()
    if read_cluster is not None:
        read_cluster.close()

# %%
#| label: parallel-reads
MODES = ["1 thread", f"{N_READERS} threads", proc_label]
course.table([{"format": name} | {mode: f"{read_bytes / MiB / read_times[name, mode]:.0f} MiB/s" for mode in MODES}
              for name in READERS], align="lrrr")
print(f"full read of {read_bytes / MiB:.0f} MiB (decoded), best of 2 · {read_load}")
print(course.hardware())

# %%
#| label: parallel-reads-verdict
speed = {key: read_bytes / t for key, t in read_times.items()}
for mode in MODES:
    best = max(READERS, key=lambda name: speed[name, mode])
    print(f"{mode:<12} fastest: {best}")
zarr_name, nczlib_name = "Zarr, float32 + zlib (Blosc)", "NetCDF4, float32 + zlib"
for name in (nczlib_name, zarr_name):
    print(f"{name}: {N_READERS} threads {speed[name, MODES[1]] / speed[name, MODES[0]]:.2f}× one thread, "
          f"{proc_label} {speed[name, MODES[2]] / speed[name, MODES[0]]:.2f}×")

# %% [markdown]
# How to read it: the lines above are what this run found; here is what to expect, and why. With one
# thread, the format that does the least work per byte wins: the course's uncompressed files need no
# decompression at all. With threads in one process, the compressed NetCDF copy can decompress only
# one chunk at a time, because HDF5 decompresses inside xarray's lock; Zarr can decompress on every
# thread at once. With worker processes, each has its own HDF5 library and lock, so NetCDF can scale
# like Zarr, while every task also pays for Dask's scheduling and for sending results between
# processes. So:
#
# - NetCDF holds its own, or wins, when the files are uncompressed, when one thread reads, and when
#   worker **processes** read (Dask's default for a `LocalCluster`, and the usual HPC set-up);
# - Zarr can gain when **threads** share the reading (a threaded Dask worker, a Jupyter kernel with
#   Dask's default scheduler), and above all on object stores and parallel filesystems, where there
#   is no file to open and every chunk is one independent request (section 7);
# - parallel reads need free cores: the load printed under the table says how many were busy. On a
#   busy two-core laptop the differences drown in noise; run `COURSE_SIZE=workshop` on a node with
#   free cores to see them. If a comparison here contradicts the list above, believe the measurement
#   for your machine, and measure again on the machine you will use.

# %% [markdown]
# ## 6. Many small files on a parallel filesystem *(optional)*
#
# On a laptop a file is cheap. On an HPC parallel filesystem (Lustre, GPFS/Spectrum Scale, BeeGFS)
# every file is an **inode** managed by a small number of *metadata servers*, shared by every user of
# the machine. Opening, listing or deleting a file is a request to those servers, so a Zarr store with
# a million tiny chunks makes `ls` hang, `rm -r` take hours and backups crawl, and it eats your inode
# quota (often a few million files per project) long before your byte quota. Object stores have the
# same problem in another form: every object is one HTTP request.
#
# Zarr 3's **sharding** is the remedy: many small *inner chunks* are packed into one *shard* object,
# with an index at its end, so a reader can still fetch one inner chunk with a byte-range read while
# the filesystem sees one file per shard. We write `t2m` with small time-series chunks, without and
# with shards, and count.

# %%
inner = max(1, tile // 4)
shard = inner * 4
SMALL_STORE, SHARDED_STORE = WORK / "era5_small_chunks.zarr", WORK / "era5_sharded.zarr"
small_src = ts[["t2m"]].chunk({"time": -1, "latitude": inner, "longitude": inner})
sharded_src = ts[["t2m"]].chunk({"time": -1, "latitude": shard, "longitude": shard})
for ds_ in (small_src, sharded_src):
    for variable in ds_.variables.values():
        variable.encoding.pop("chunks", None)
        variable.encoding.pop("preferred_chunks", None)
small_src.to_zarr(SMALL_STORE, mode="w", consolidated=True)
sharded_src.to_zarr(SHARDED_STORE, mode="w", consolidated=True,
                    encoding={"t2m": {"chunks": (n_layout, inner, inner), "shards": (n_layout, shard, shard)}})
small, sharded = xr.open_zarr(SMALL_STORE), xr.open_zarr(SHARDED_STORE)
for label, source in [("Zarr, small chunks", small), ("Zarr, small chunks in shards", sharded)]:
    row, series, field = measure_reads(label, source.t2m)
    reads[label] = row | {"series": series, "map": field}

# %%
#| label: object-counts
def t2m_files(store):
    return files_in(store / "t2m")


counts = pd.DataFrame(
    [
        ("NetCDF files (all variables)", "one file per month", len(FILES), np.nan),
        ("Zarr, map chunks", f"{map_steps} × {n_lat} × {n_lon}", t2m_files(MAP_STORE), reads["Zarr, map chunks"]["point ms"]),
        ("Zarr, time-series chunks", f"{n_layout} × {tile} × {tile}", t2m_files(TS_STORE), reads["Zarr, time-series chunks"]["point ms"]),
        ("Zarr, small chunks", f"{n_layout} × {inner} × {inner}", t2m_files(SMALL_STORE), reads["Zarr, small chunks"]["point ms"]),
        ("Zarr, small chunks in shards", f"shards {n_layout} × {shard} × {shard}", t2m_files(SHARDED_STORE),
         reads["Zarr, small chunks in shards"]["point ms"]),
    ],
    columns=["layout", "chunk shape", "files for t2m", "point ms"],
).set_index("layout")
course.table([{"layout": label, "chunk shape": row["chunk shape"], "files for t2m": int(row["files for t2m"]),
               "point ms": "-" if np.isnan(row["point ms"]) else f"{row['point ms']:.1f}"}
              for label, row in counts.iterrows()], align="llrr")
era5_hours, era5_cells = 85 * 8766, 721 * 1440  # hourly ERA5 1940–2025 on its 0.25° grid
print(f"For one variable of the full hourly ERA5 ({era5_hours:,} maps of {era5_cells:,} cells):")
print(f"  one chunk per hourly map: {era5_hours:,} files")
print(f"  time-series chunks of 10 × 10 cells: {era5_cells // 100:,} files; in shards of 40 × 40: {era5_cells // 1600:,}")
print(course.hardware())

# %% [markdown]
# The small chunks read the point series with the least wasted decompression, but at the price of
# many files; the shards keep the same inner chunks and reading speed with a fraction of the files.
# Rule of thumb for HPC: aim for chunk *objects* of 10–100 MB, and use shards when the chunks you
# want to read are smaller than that.

# %% [markdown]
# ## 7. Object stores: the same store in an S3 bucket *(optional)*
#
# In the cloud (and increasingly on HPC sites and institutional storage) data live in an **object
# store**: a flat namespace of keys in a bucket, reached over HTTP with the S3 protocol. There is no
# file locking and no directory, only `PUT`, `GET` (also of a byte range) and `LIST`, which is exactly
# what Zarr needs. To try it without an account we start **moto**, a local S3 server, in its own
# process, bound to `127.0.0.1` on a port the operating system picks (`labs/course/s3.py`).
# `fsspec`/`s3fs` then reach it exactly as they would reach AWS, MinIO or Ceph: only `endpoint_url`
# and the (dummy) keys change. The server is stopped when the `with` block ends, whatever happens
# inside it.
#
# At workshop size we send no more than 512 MiB (decoded) of the store: moto keeps every object in
# memory.

# %%
S3_MAX_BYTES = 512 * MiB
n_s3 = int(min(n_time, max(1, S3_MAX_BYTES // max(1, zr.isel(time=0).nbytes))))
s3_src = zr.isel(time=slice(0, n_s3))
BUCKET = "course"
S3_URL = f"s3://{BUCKET}/era5.zarr"

with local_s3.LocalS3() as s3:
    s3_port, s3_pid = s3.port, s3.process.pid
    try:  # which address does the server listen on? (psutil may be refused this on some systems)
        s3_bound = sorted({c.laddr.ip for c in psutil.Process(s3_pid).net_connections("tcp") if c.status == "LISTEN"})
    except psutil.Error:
        s3_bound = ["127.0.0.1 (not checked: psutil was refused)"]
    fs = s3.filesystem()
    fs.mkdir(BUCKET)
    start = time.perf_counter()
    s3_src.to_zarr(S3_URL, storage_options=s3.storage_options, mode="w", consolidated=True)
    t_s3_write = time.perf_counter() - start
    s3_objects, s3_bytes = len(fs.find(S3_URL)), fs.du(S3_URL)
    t_s3_open, s3ds = fastest(lambda: xr.open_zarr(S3_URL, storage_options=s3.storage_options, consolidated=True), 5)
    t_s3_open_plain, _ = fastest(lambda: xr.open_zarr(S3_URL, storage_options=s3.storage_options, consolidated=False), 5)
    s3_read = measure_reads("Zarr on S3, map chunks", s3ds.t2m)[0]
    s3_identical = {name: bool(s3ds[name].equals(s3_src[name])) for name in s3_src.data_vars}

# %%
#| label: s3-round-trip
print(f"local S3 server at 127.0.0.1:{s3_port} (process {s3_pid}), listening on {', '.join(s3_bound)}")
print(f"wrote {S3_URL}: {s3_objects} objects, {s3_bytes / MiB:.1f} MiB, in {t_s3_write:.1f} s")
print(f"open_zarr consolidated: {1000 * t_s3_open:.0f} ms · metadata per array: {1000 * t_s3_open_plain:.0f} ms")
print(f"point series {s3_read['point ms']:.0f} ms ({s3_read['point chunks']} GETs) · "
      f"global map {s3_read['map ms']:.0f} ms ({s3_read['map chunks']} GET)")
print("read back identical:", ", ".join(f"{k} {v}" for k, v in s3_identical.items()))
print(course.hardware())

# %% [markdown]
# The `storage_options` are all that changes between this laptop and the cloud. For AWS you would
# drop `endpoint_url` and take the keys from the environment or `~/.aws`; never write real keys
# into a notebook:

# %%
print({k: ("…" if k in ("key", "secret") else v) for k, v in s3.storage_options.items()})

# %%
#| label: s3-stopped
s3_process_gone = not psutil.pid_exists(s3_pid)
s3_port_closed = not local_s3.port_is_open(s3_port)
print(f"server process {s3_pid} gone: {s3_process_gone} · port {s3_port} closed: {s3_port_closed}")

# %% [markdown]
# ### Exercise 3: why consolidate? (7 min)
# On disk, time `xr.open_zarr(MAP_STORE, consolidated=True)` against `consolidated=False`. This
# section measured the same on S3 while its server ran: `t_s3_open` and `t_s3_open_plain` (seconds). Why
# is the difference larger on S3? What would it be on a real cloud bucket, where a request takes 20–100 ms?
# (That server has stopped, as the cell above shows; to try more on S3, start one of your own with
# `with local_s3.LocalS3() as s3:` and write `s3_src` into it as this section's first cell does: it
# stops again when the block ends.)
#
# <details><summary>Solution</summary>
#
# Without consolidation the reader asks for the `zarr.json` of every array: one request each. Locally
# that is a cheap file read; over HTTP every request pays a round trip. With a dozen arrays and 50 ms
# per request that is more than half a second per open, for every worker that opens the store.
# Consolidated metadata makes it one request.
# </details>

# %% [markdown]
# ## 8. Catalogues: find the data without knowing the paths *(optional)*
#
# After this episode the same data exist as NetCDF files, two Zarr stores and an S3 copy. A
# **catalogue** gives each version a name, says how to open it, and keeps paths and options out of
# analysis scripts. **Intake 2** ships the readers itself: a *data* description (what the bytes are,
# e.g. `HDF5` or `Zarr`, and where) plus a *reader* (here `XArrayDatasetReader`, which calls
# `xr.open_mfdataset`/`open_dataset` with the arguments we give it). The catalogue is a YAML file.
#
# (Older catalogues written for Intake 1 with `intake-xarray`, `sources:` and `driver: netcdf`, are
# still opened by intake 2's legacy loader `intake.open_catalog`, but new catalogues use the format
# below. `{CATALOG_DIR}` is replaced by the catalogue's own folder, so the catalogue can move with the
# stores.)

# %%
#| label: catalog-yaml
import intake
from intake.readers import datatypes, readers
from intake.readers.entry import Catalog

catalog = Catalog(metadata={"description": "ERA5-like data of the course, in two formats"})
CATALOG_OPEN = {k: v for k, v in OPEN_NETCDF.items() if k not in era5.OPEN}  # a YAML file holds no functions
NETCDF_GLOB = "era5_*.nc" if not era5.own_data() else "**/*.nc"  # own files: read with normalise, in a notebook
catalog["era5_netcdf"] = readers.XArrayDatasetReader(  # a path relative to the catalogue, if it can be
    datatypes.HDF5(url="{CATALOG_DIR}/" + Path(os.path.relpath(SRC, WORK)).as_posix() + "/" + NETCDF_GLOB
                   if Path(SRC).anchor == Path(WORK).anchor and SRC.is_dir() else str(SRC / NETCDF_GLOB)), **CATALOG_OPEN,
    metadata={"description": "monthly NetCDF4 files, as downloaded"},
)
catalog["era5_zarr"] = readers.XArrayDatasetReader(
    datatypes.Zarr(url="{CATALOG_DIR}/" + MAP_STORE.name), consolidated=True, chunks={},
    metadata={"description": "analysis-ready Zarr, map-shaped chunks"},
)
CATALOG = WORK / "catalog.yaml"
catalog.to_yaml_file(str(CATALOG))
print(CATALOG.read_text())

# %% [markdown]
# For the slides, the same file without the lines intake adds for its own bookkeeping (the full file
# is printed above):

# %%
#| label: catalog-short
import yaml  # installed with dask

spec = yaml.safe_load(CATALOG.read_text())
for name, entry in spec["entries"].items():
    kwargs = dict(entry["kwargs"])
    data = spec["data"][kwargs.pop("args")[0][len("{data("):-2]]  # '{data(<id>)}' names a data entry
    print(f"{name}:  # {entry['metadata']['description']}")
    print(f"  data:   {data['datatype'].split(':')[-1]} at {data['kwargs']['url']}")
    print(f"  reader: {entry['reader'].split(':')[-1]}")
    print(f"  kwargs: {', '.join(f'{k}={v}' for k, v in kwargs.items())}")

# %%
cat = intake.from_yaml_file(str(CATALOG))
print({name: entry.metadata["description"] for name, entry in cat.entries.items()})
if not era5.own_data():
    from_catalog = {name: cat[name].read() for name in ("era5_netcdf", "era5_zarr")}
else:  # own files need era5.normalise, which a YAML catalogue cannot hold: compare the Zarr entry with them
    from_catalog = {"era5_netcdf": nc, "era5_zarr": cat["era5_zarr"].read()}
catalog_same = bool(from_catalog["era5_netcdf"].t2m.isel(time=slice(0, map_steps))
                    .equals(from_catalog["era5_zarr"].t2m.isel(time=slice(0, map_steps))))
print("both entries give the same t2m:", catalog_same)

# %% [markdown]
# ## 9. Parquet for tabular extracts *(core)*
#
# Station time series are tables, not arrays: a row per time and station. For tables the column store
# **Parquet** (via `pyarrow`) is the analogue of Zarr: compressed column chunks in *row groups*, which
# a reader can fetch and decode on several threads at once. The time-series store makes the extract
# cheap: each station needs one chunk.

# %%
STATIONS = {  # name: (latitude, longitude)
    "De Bilt": (52.10, 5.18),
    "Dhaka": (23.81, 90.41),
    "Vancouver": (49.25, -123.12),
    "Nairobi": (-1.29, 36.82),
    "Tromsø": (69.65, 18.96),
    "Hobart": (-42.88, 147.33),
}
lats = xr.DataArray([p[0] for p in STATIONS.values()], dims="station", coords={"station": list(STATIONS)})
lons = xr.DataArray([p[1] % 360 for p in STATIONS.values()], dims="station", coords={"station": list(STATIONS)})
stations = ts.sel(latitude=lats, longitude=lons, method="nearest").compute()
stations_df = stations.to_dataframe().reset_index()
stations_df["t2m"] -= 273.15  # °C for the people who read the table
STATIONS_PARQUET = WORK / "stations.parquet"
stations_df.to_parquet(STATIONS_PARQUET, engine="pyarrow", compression="zstd", index=False)
back = pd.read_parquet(STATIONS_PARQUET)
print(f"{len(back):,} rows, {STATIONS_PARQUET.stat().st_size / 1e3:.0f} kB")
summary = back.groupby("station")["t2m"].agg(["mean", "min", "max"]).round(1).reset_index()
course.table(summary.rename(columns={"mean": "mean °C", "min": "min °C", "max": "max °C"}))

# %% [markdown]
# One table of six stations reads in milliseconds. To see the threads at work we extract a bigger
# table (every grid cell of the globe, thinned if needed to about four million rows), write it in
# row groups of 100 000 rows, and read it with `use_threads=True` and `False`.

# %%
import pyarrow.parquet as pq

step = max(1, int(np.ceil(np.sqrt(n_lat * n_lon * n_layout / 4e6))))
region = ts.isel(latitude=slice(None, None, step), longitude=slice(None, None, step))
region_df = region.astype("float32").compute().to_dataframe().reset_index()
REGION_PARQUET = WORK / "grid_points.parquet"
region_df.to_parquet(REGION_PARQUET, engine="pyarrow", compression="zstd", index=False, row_group_size=100_000)
t_threads, table = fastest(lambda: pq.read_table(REGION_PARQUET, use_threads=True), 5)
t_one, table_one = fastest(lambda: pq.read_table(REGION_PARQUET, use_threads=False), 5)

# %%
#| label: parquet-threads
meta_pq = pq.ParquetFile(REGION_PARQUET).metadata
print(f"{meta_pq.num_rows:,} rows × {meta_pq.num_columns} columns in {meta_pq.num_row_groups} row groups, "
      f"{REGION_PARQUET.stat().st_size / MiB:.1f} MiB")
course.table([{"pq.read_table": "use_threads=False", "ms": f"{1000 * t_one:.1f}", "speed-up": "1.00×"},
              {"pq.read_table": "use_threads=True", "ms": f"{1000 * t_threads:.1f}", "speed-up": f"{t_one / t_threads:.2f}×"}],
             align="lrr")
print(f"on {course.usable_cores()} cores · {course.hardware()}")

# %% [markdown]
# Threads help when there is decoding to share out: many row groups and columns, heavy compression,
# and idle cores. On a laptop whose few cores are busy, or for a table this compressible (the `time`,
# `latitude` and `longitude` columns are mostly repeats), the gain can be nothing at all; on a
# workstation reading gigabytes it approaches the number of cores. `use_threads=True` is the default
# in `pyarrow` and `pandas.read_parquet`: you rarely need to switch it on, but you should know what it
# costs you to switch it off (as some batch scripts do to "play nice" on shared nodes).

# %% [markdown]
# ### Exercise 4: a third catalogue entry (12 min)
# Add the time-series store to the catalogue as `era5_timeseries`, write the YAML again and open the
# entry through `intake.from_yaml_file`. Then read only the De Bilt rows of `stations.parquet` with
# `pd.read_parquet(STATIONS_PARQUET, filters=[("station", "==", "De Bilt")], columns=["time", "t2m"])`.
#
# <details><summary>Solution</summary>
#
# ```python
# catalog["era5_timeseries"] = readers.XArrayDatasetReader(
#     datatypes.Zarr(url="{CATALOG_DIR}/" + TS_STORE.name), consolidated=True, chunks={},
#     metadata={"description": "Zarr, time-series chunks: point and catchment extraction"})
# catalog.to_yaml_file(str(CATALOG))
# intake.from_yaml_file(str(CATALOG))["era5_timeseries"].read()
# ```
# The Parquet filter is applied per row group using the statistics stored in the file, so a reader
# skips row groups that cannot match, and `columns=` reads only the columns it needs.
# </details>

# %% [markdown]
# ## 10. Zarr without copying: a virtual store over the NetCDF files *(optional)*
#
# Section 1 converted the files: a second copy of every byte, written once. For an archive of tens
# of terabytes on a shared NAS that copy may be impossible (no space, no time, no permission), and
# it goes stale as soon as a new month arrives. A **virtual** Zarr store copies nothing. VirtualiZarr
# reads each file's *chunk index* once (where each chunk's bytes start in the file, and how many
# there are) and writes those references, with the metadata, into an **Icechunk** repository (or a
# Kerchunk JSON file). `xr.open_zarr` then opens the whole archive as one Zarr store, and every read
# fetches the NetCDF files' own bytes.
#
# First, one file. VirtualiZarr needs a *registry* (which object store serves which URLs: here the
# local disk; in the cloud an `S3Store`) and a *parser* for the file's format (`HDFParser` for
# NetCDF4, which is HDF5 inside; `NetCDF3Parser` for classic NetCDF; `course.virtual.parser_for`
# picks one from the file's first bytes and refuses anything else with a message that says why).

# %%
#| label: vz-one-file
import icechunk
from obspec_utils.registry import ObjectStoreRegistry
from obstore.store import LocalStore
from virtualizarr import open_virtual_dataset, open_virtual_mfdataset

import course.era5  # the files to read: the course's, or yours ($COURSE_ERA5)
from course import virtual

# zlib and shuffle in a NetCDF4 file become numcodecs codecs, which zarr-python reads but calls
# "not in the Zarr 3 specification" (other Zarr readers may not know them): true, and known here.
warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr version 3")

VZ_FILES = [Path(f).resolve() for f in course.era5.files()]
if course.era5.own_data():  # your files ($COURSE_ERA5), if they can be one virtual store
    try:
        virtual.open_virtual(VZ_FILES)
    except virtual.NotVirtual as err:
        print(textwrap.fill(f"Your files cannot be one virtual store: {err}", 100))
        print("This section uses the course's generated files instead.")
        VZ_FILES = sorted(Path(f).resolve() for f in course.dataset().glob("era5_*.nc"))
VZ_SAME_FILES = VZ_FILES == [Path(f).resolve() for f in course.era5.files()]  # the files section 1 converted
vz_registry = ObjectStoreRegistry({"file://": LocalStore()})
one_month = open_virtual_dataset(VZ_FILES[0].as_uri(), registry=vz_registry, parser=virtual.parser_for(VZ_FILES[0]))
vz_var = "t2m" if "t2m" in one_month else next(v for v in one_month.data_vars if "time" in one_month[v].dims)
refs = one_month[vz_var].data.manifest.dict()
print(f"{VZ_FILES[0].name}: {vz_var} is {one_month[vz_var].data}")
for key, ref in list(refs.items())[:2]:
    print(f"  chunk {key}: bytes {ref['offset']:,} to {ref['offset'] + ref['length']:,} of {Path(ref['path']).name}")
print(f"{len(refs)} chunk reference(s) for {one_month[vz_var].nbytes / MiB:.1f} MiB of {vz_var}")

# %% [markdown]
# The course's files store each variable **contiguously**: no chunks, no compression, the whole month
# in one piece. So the file's "chunk index" is a single reference, as long as the file. That is a
# problem for a store of many months:

# %%
#| label: vz-concat-error
vz_concat_error = None
try:
    open_virtual_mfdataset([f.as_uri() for f in VZ_FILES], registry=vz_registry, parser=virtual.parser_for(VZ_FILES[0]),
                           combine="by_coords", data_vars="minimal", coords="minimal", compat="override")
except ValueError as err:
    vz_concat_error = err
    print(f"{type(err).__name__}:")
    print(textwrap.fill(str(err), 100))
else:  # own files whose chunks already share one shape (e.g. NetCDF3 records: one step each)
    print("these files join as they are: their chunks along time already share one shape")

# %% [markdown]
# Zarr has **one chunk shape per array**, and months of 28, 30 and 31 days are chunks of different
# lengths (variable-length chunks, ZEP003, are a proposal, not yet Zarr). The way out: the bytes of an
# uncompressed array lie in order, so time step `i` starts `i × (one map's bytes)` after the first,
# and the same bytes can be referenced in blocks of any length that divides every file: a day for
# monthly files. `virtual.contiguous_in_blocks` rewrites the references that way (it does not touch
# arrays that a file already stores in chunks), and `virtual.open_virtual` passes it to
# `open_virtual_mfdataset` as `preprocess=`, the same role `preprocess=` has in `open_mfdataset`.
#
# Then the store is written: an Icechunk repository is created with a *virtual chunk container*
# (the folder its references may point into: Icechunk refuses to read anywhere else), a writable
# session on branch `main` receives the references (`.vz.to_icechunk`), and `commit` makes them a
# snapshot. We keep the last month back and **append** it in a second commit, as you would when the
# next month is downloaded. The same references also go to a Kerchunk JSON file, the older format
# that fsspec reads.

# %%
#| label: vz-build
VZ_STEPS = virtual.time_block(VZ_FILES)  # chunk length along time: divides every file's length
VZ_REPO, VZ_JSON = WORK / "era5_virtual.icechunk", WORK / "era5_virtual.json"
first_files, new_files = (VZ_FILES[:-1], VZ_FILES[-1:]) if len(VZ_FILES) > 1 else (VZ_FILES, [])
start = time.perf_counter()
vds = virtual.open_virtual(first_files, steps=VZ_STEPS)
new_month = virtual.open_virtual(new_files, steps=VZ_STEPS) if new_files else None
t_vz_parse = time.perf_counter() - start

start = time.perf_counter()
repo = virtual.create_repo(VZ_REPO, VZ_FILES)  # icechunk.Repository.create(storage, config) with the container
session = repo.writable_session("main")
vds.vz.to_icechunk(session.store)
first_snapshot = session.commit(f"virtual references to {len(first_files)} NetCDF files")
if new_month is not None:
    session = repo.writable_session("main")
    new_month.vz.to_icechunk(session.store, append_dim="time")
    session.commit(f"append {new_files[0].name}")
t_vz_icechunk = time.perf_counter() - start

start = time.perf_counter()
all_refs = xr.concat([vds, new_month], dim="time", data_vars="minimal", coords="minimal", compat="override",
                     combine_attrs="override") if new_month is not None else vds
all_refs.vz.to_kerchunk(VZ_JSON, format="json")
t_vz_kerchunk = time.perf_counter() - start
print(f"read the chunk index of {len(VZ_FILES)} files in {t_vz_parse:.2f} s; chunks of {VZ_STEPS} time step(s)")
print(f"Icechunk: {files_in(VZ_REPO)} files, {bytes_in(VZ_REPO) / 1e3:.0f} kB, two commits in {t_vz_icechunk:.2f} s")
print(f"Kerchunk JSON: {VZ_JSON.stat().st_size / 1e3:.0f} kB in {t_vz_kerchunk:.2f} s")
print(course.hardware())

# %% [markdown]
# Opening it is the same `open_zarr` as for the converted store, on the session's store instead of a
# path. A read-only session at `main` sees the latest commit:
#
# ```python
# repo = icechunk.Repository.open(icechunk.local_filesystem_storage("era5_virtual.icechunk"),
#                                 authorize_virtual_chunk_access=icechunk.containers_credentials({prefix: None}))
# ds = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
# ```
#
# (`authorize_virtual_chunk_access` names the folders, or buckets, you allow it to read.) Are the
# values the ones `open_mfdataset` gives? Every value of every variable is compared:

# %%
#| label: vz-same-numbers
vz_repo = virtual.open_repo(VZ_REPO, VZ_FILES)
vz = xr.open_zarr(vz_repo.readonly_session("main").store, consolidated=False, chunks={})
vz = course.era5.normalise(vz)
vz_reference = xr.open_mfdataset(VZ_FILES, **OPEN_NETCDF)  # OPEN_NETCDF holds preprocess=era5.normalise
vz_identical = {name: bool(vz_reference[name].equals(vz[name])) for name in vz_reference.data_vars}
vz_close = {name: bool(np.allclose(vz_reference[name], vz[name], equal_nan=True, rtol=1e-6))
            for name in vz_reference.data_vars if vz_reference[name].dtype.kind == "f"}
print("every value identical:", ", ".join(f"{k} {v}" for k, v in vz_identical.items()))
print(f"{vz_var}: {vz[vz_var].encoding['dtype']} in the files, decoded as {vz[vz_var].dtype}; "
      f"storage chunks {vz[vz_var].encoding['chunks']}")

# %% [markdown]
# As for the converted store, packed `int16` values come back as `float64`: the `scale_factor` is an
# attribute in JSON, which has no `float32`. The decoding itself is xarray's, exactly as for NetCDF.
#
# ### Versions: a commit per month
# Icechunk keeps every commit. The history lists them, newest first, and an old snapshot opens
# exactly as it was, even after the new month was appended: a script that cites a snapshot id reads
# the same data next year.

# %%
#| label: vz-history
history = list(vz_repo.ancestry(branch="main"))
for snap in history:
    print(f"{snap.id[:12]}  {snap.written_at:%Y-%m-%d %H:%M:%S}  {snap.message}")
vz_old = xr.open_zarr(vz_repo.readonly_session(snapshot_id=first_snapshot).store, consolidated=False)
for label, d in (("snapshot " + first_snapshot[:12], vz_old), ("main", vz)):
    print(f"{label:<22} {d.sizes['time']:5d} time steps, {str(d.time.values[0])[:10]} to {str(d.time.values[-1])[:10]}")

# %% [markdown]
# ### Measured: NetCDF, converted Zarr and the virtual stores, from a cold cache
# Each store is opened in a **fresh Python process** (nothing opened or cached before, the libraries
# imported before the clock starts), and the page cache is emptied of its files (`course.bench.evict`)
# before each of three reads: the open, the mean of every time-varying variable, and the `t2m` series
# at De Bilt. All four use Dask chunks of the same number of maps. The one-time cost is what it took
# to make the store, the bytes it wrote, and the disk it needs with the NetCDF files it reads (a
# converted store no longer needs them, if you dare to delete them).

# %%
#| label: vz-measure
nc_bytes = sum(f.stat().st_size for f in VZ_FILES)
vz_time_chunk = max(VZ_STEPS, map_steps // VZ_STEPS * VZ_STEPS)  # whole storage chunks for the virtual stores
STORES = {  # name: (kind, path, dask chunk along time, build seconds, bytes written, bytes it reads from)
    "NetCDF files, open_mfdataset": ("netcdf", VZ_FILES[0].parent, map_steps, 0.0, 0, nc_bytes),
    "Zarr, converted (section 1)": ("zarr", MAP_STORE, map_steps, t_to_zarr, bytes_in(MAP_STORE), bytes_in(MAP_STORE)),
    "virtual, Icechunk": ("icechunk", VZ_REPO, vz_time_chunk, t_vz_parse + t_vz_icechunk, bytes_in(VZ_REPO),
                          bytes_in(VZ_REPO) + nc_bytes),
    "virtual, Kerchunk JSON": ("kerchunk", VZ_JSON, vz_time_chunk, t_vz_parse + t_vz_kerchunk, VZ_JSON.stat().st_size,
                               VZ_JSON.stat().st_size + nc_bytes),
}
vz_load = bench.load()
cold_reads = {name: virtual.cold_read_in_fresh_process(kind, path, VZ_FILES, chunk, POINT)
              for name, (kind, path, chunk, *_) in STORES.items()}

# %%
#| label: vz-table
course.table([{"store": name, "build s": f"{build:.2f}" if build else "-",
               "written MiB": f"{written / MiB:.2f}", "disk MiB": f"{disk / MiB:.0f}",
               "open ms": f"{1000 * cold_reads[name]['open s']:.0f}",
               "mean s": f"{cold_reads[name]['mean s']:.2f}",
               "point ms": f"{1000 * cold_reads[name]['point s']:.0f}"}
              for name, (_, _, _, build, written, disk) in STORES.items()], align="lrrrrrr")
vz_cold = all(r["cold"] for r in cold_reads.values())
print(f"{len(VZ_FILES)} files; each store in a fresh process, {'cold' if vz_cold else 'WARM (no posix_fadvise here)'} cache")
print(f"mean of {len(cold_reads[next(iter(STORES))]['means'])} variables · {vz_load}")
print(course.hardware())

# %%
#| label: vz-verdict
vz_times = {name: r for name, r in cold_reads.items()}
nc_row, zr_row, ic_row = (vz_times[n] for n in list(STORES)[:3])


def compare(a, b):
    """'N× faster' or 'N× slower': a against b (seconds)."""
    return f"{b / a:.1f}× faster" if a < b else f"{a / b:.1f}× slower"


print(f"open: virtual (Icechunk) {compare(ic_row['open s'], nc_row['open s'])} than open_mfdataset, "
      f"{compare(ic_row['open s'], zr_row['open s'])} than the converted store")
print(f"full mean: virtual {compare(ic_row['mean s'], nc_row['mean s'])} than the NetCDF files, "
      f"{compare(ic_row['mean s'], zr_row['mean s'])} than the converted store")
print(f"point series: virtual {compare(ic_row['point s'], nc_row['point s'])} than the NetCDF files, "
      f"{compare(ic_row['point s'], zr_row['point s'])} than the converted store")
print(f"one-time cost: virtual {t_vz_parse + t_vz_icechunk:.2f} s and {bytes_in(VZ_REPO) / MiB:.2f} MiB; "
      f"converted {t_to_zarr:.2f} s and {bytes_in(MAP_STORE) / MiB:.1f} MiB "
      f"({bytes_in(MAP_STORE) / max(bytes_in(VZ_REPO), 1):.0f}× the bytes)")
print(f"storage chunks: virtual {VZ_STEPS} map(s) of {vz_var} each "
      f"({VZ_STEPS * vz[vz_var].isel(time=0).size * vz[vz_var].encoding['dtype'].itemsize / 1e3:.0f} kB), "
      f"converted {map_steps} maps each")

# %% [markdown]
# When does each win? The lines above are this run; the reasons carry over:
#
# - **Opening**: the virtual store opens like any Zarr store, from one small metadata read, where
#   `open_mfdataset` opens every file. With thousands of files on a NAS that is minutes against
#   milliseconds, and nothing had to be copied for it.
# - **Reading** is the NetCDF files' own layout: the virtual store **keeps their chunking** (here one
#   block per day, because the files are contiguous), their compression and their endianness. Many
#   small chunks cost per-chunk overhead in Zarr; a read the files were laid out for stays cheap,
#   and one they were not (a point series from map-shaped storage) stays expensive.
# - A **converted** store can be **rechunked** (section 3), recompressed and sharded for the reads you
#   do most, and it no longer depends on the original files. It costs a full copy, once, and again
#   for every new month.
# - **Icechunk** adds what neither files nor a plain Zarr folder have: versioned, atomic **commits**
#   (a reader never sees half a month), history, branches and tags, for references and for real
#   chunks alike. A Kerchunk JSON holds the same references in one file, without versions.
# - A virtual store trusts the files to stay where they are and as they are: move or rewrite a file
#   and its references point at the wrong bytes (Icechunk records each file's modification time and
#   refuses to read a file that changed since).
#
# ### Which NetCDF files can be virtual?
# Tiny files of each kind (two "months" each, written here), made into a virtual store and compared
# value by value with `open_mfdataset`:

# %%
#| label: vz-formats
FORMATS = WORK / "formats"
FORMATS.mkdir()
rng = np.random.default_rng(0)


def tiny_months(steps=(4, 6)):
    """Two small 'months' of t2m with a missing value, as float32 (time, latitude, longitude)."""
    start = np.datetime64("2000-01-01T00")
    for i, n in enumerate(steps):
        times = start + np.timedelta64(6, "h") * (sum(steps[:i]) + np.arange(n))
        values = (280 + 5 * rng.standard_normal((n, 3, 4))).astype("float32")
        values[0, 0, 0] = np.nan
        yield xr.Dataset({"t2m": (("time", "latitude", "longitude"), values, {"units": "K"})},
                         coords={"time": times, "latitude": [10.0, 0.0, -10.0], "longitude": [0.0, 90.0, 180.0, 270.0]})


PACK = {"dtype": "int16", "scale_factor": 0.01, "add_offset": 280.0, "_FillValue": np.int16(-32767)}
KINDS = {  # name: to_netcdf keyword arguments (and the time lengths of the two files)
    "NetCDF4, contiguous, packed (the course's)": (dict(encoding={"t2m": PACK}), (4, 6)),
    "NetCDF4, chunked + zlib, float32 (CDS)": (
        dict(encoding={"t2m": {"zlib": True, "complevel": 4, "shuffle": True, "chunksizes": (2, 3, 4)}}), (4, 6)),
    "NetCDF3 classic, packed, time unlimited": (
        dict(format="NETCDF3_CLASSIC", encoding={"t2m": PACK}, unlimited_dims=["time"]), (4, 6)),
    "NetCDF3 64-bit offset, packed": (dict(format="NETCDF3_64BIT", encoding={"t2m": PACK}), (4, 6)),
    "NetCDF4, chunks of 3 steps, files of 4 and 6": (
        dict(encoding={"t2m": {"zlib": True, "chunksizes": (3, 3, 4)}}), (4, 6)),
    "not NetCDF (a CSV file named .nc)": (None, (4, 6)),
}
format_results = {}
for i, (name, (kwargs, steps)) in enumerate(KINDS.items()):
    folder = FORMATS / f"kind{i}"
    folder.mkdir()
    paths = [folder / f"month{m}.nc" for m in range(2)]
    for tiny_path, tiny_month in zip(paths, tiny_months(steps)):
        if kwargs is None:
            tiny_month.to_dataframe().to_csv(tiny_path)
        else:
            tiny_month.to_netcdf(tiny_path, **kwargs)
    try:
        refs_ds = virtual.open_virtual(paths)
        tiny_repo = virtual.create_repo(folder / "store.icechunk", paths)
        tiny_session = tiny_repo.writable_session("main")
        refs_ds.vz.to_icechunk(tiny_session.store)
        tiny_session.commit("tiny")
        tiny_back = virtual.open_store(folder / "store.icechunk", paths)
        tiny_open = {k: v for k, v in OPEN_NETCDF.items() if k != "engine"}  # these files: any format
        with xr.open_mfdataset(paths, **tiny_open) as expected:  # every value, missing ones too
            same = expected.t2m.dims == tiny_back.t2m.dims and np.array_equal(
                expected.t2m.values, tiny_back.t2m.values.astype(expected.t2m.dtype), equal_nan=True) and all(
                np.array_equal(expected[c].values, tiny_back[c].values) for c in expected.t2m.coords)
        format_results[name] = {"virtual": "yes", "same values": same,
                                "how": f"{type(virtual.parser_for(paths[0])).__name__}, chunks {tiny_back.t2m.encoding['chunks']}"}
    except virtual.NotVirtual as err:
        format_results[name] = {"virtual": "no", "same values": None, "how": str(err)}
course.table([{"files": name, "virtual": r["virtual"], "same values": "-" if r["same values"] is None else r["same values"],
               "how": r["how"][:44] + ("…" if len(r["how"]) > 44 else "")}
              for name, r in format_results.items()], align="llll")

# %%
#| label: vz-refusals
for name, r in format_results.items():
    if r["virtual"] == "no":
        print(f"{name}:")
        print(textwrap.indent(textwrap.fill(r["how"], 96), "  "))

# %% [markdown]
# Packed `int16` works everywhere: `scale_factor`, `add_offset` and `_FillValue` stay attributes and
# xarray decodes them on open, exactly as it does for the files. With one catch, for NetCDF3: Kerchunk's
# reader (which VirtualiZarr uses for it) moves `_FillValue` into Zarr's own `fill_value`, which
# xarray does not use to mask a Zarr 3 store, so a missing value would come back as
# `-32767 × scale_factor + add_offset`, a plausible-looking number. `virtual.open_virtual` puts the
# attribute back from the file's header (`virtual.netcdf3_fill_values`); the missing value in these
# tiny files is how the check above catches it. NetCDF3 is big-endian, and Zarr's `bytes` codec says so. A compressed, chunked file keeps its chunks and its codec (zlib and shuffle
# become numcodecs codecs). What cannot be virtual: chunks that do not tile every file (a regular
# grid is all Zarr has), the CDF5 variant of NetCDF3, and anything that is not NetCDF. For those,
# convert once (section 1), or rewrite the files with `nccopy -c` so that their chunks tile.

# %% [markdown]
# ## Key points
# - NetCDF/HDF5 is one file with its own internal structure and, in xarray, a lock per process; Zarr is
#   a folder or bucket of independent chunk objects that many readers and writers can use at once.
# - Measure before you convert: NetCDF read by worker processes, or uncompressed, holds its own; Zarr
#   wins with threads, object stores and parallel filesystems.
# - `to_zarr(..., consolidated=True)` is a one-time cost; `open_zarr` then takes milliseconds.
# - Chunk for the way you read: map-shaped for maps, time-series-shaped for points; keep two copies
#   if you need both.
# - Before rechunking a dataset opened from Zarr, drop `encoding["chunks"]` (and `preferred_chunks`).
# - Shuffle + a fast compressor (Blosc lz4/zstd) is a good default; packing to int16 halves the data at
#   a known precision.
# - Millions of small files hurt parallel filesystems and object stores alike: use shards.
# - An object store is reached with `storage_options`; the code does not change.
# - Catalogues name the data and hide the paths; Parquet is the Zarr of tables.

# %% [markdown]
# ## Checks
# Run by `pytest labs/09_zarr.py`; the slides never show this cell.

# %% tags=["checks"]
def test_zarr_and_netcdf_give_identical_numbers():
    assert all(identical.values()), identical
    assert mean_netcdf == mean_zarr


def test_every_layout_reads_the_same_values():
    reference = reads["NetCDF files"]
    for label, row in reads.items():
        np.testing.assert_array_equal(row["series"], reference["series"], err_msg=label)
        np.testing.assert_array_equal(row["map"], reference["map"], err_msg=label)


def test_rechunk_error_is_the_encoding_one():
    assert isinstance(rechunk_error, ValueError)
    assert "encoding['chunks']" in str(rechunk_error)


def test_layouts_read_fewer_chunks_for_their_access():
    maps, series = layout_table.loc["Zarr, map chunks"], layout_table.loc["Zarr, time-series chunks"]
    assert maps["map chunks"] == 1 and series["point chunks"] == 1
    assert maps["point chunks"] >= 1 and series["map chunks"] >= 1


def test_lossless_codecs_are_exact_and_packing_is_within_half_a_step():
    for name, error in codec_errors.items():
        if "packed" in name:
            assert error <= 0.5 * float(PACKED["scale_factor"]) + 1e-4, (name, error)
        else:
            assert error == 0, (name, error)


def test_parallel_reads_give_the_same_means():
    reference = read_means[next(iter(READERS)), "1 thread"]
    for key, result in read_means.items():
        for v in TIME_VARS:
            np.testing.assert_allclose(float(result[v]), float(reference[v]), rtol=1e-5, err_msg=str(key))
    assert len(read_times) == 3 * len(READERS) and read_client.status == "closed"


def test_shards_make_fewer_files():
    assert t2m_files(SHARDED_STORE) < t2m_files(SMALL_STORE)


def test_s3_round_trip_identical():
    assert all(s3_identical.values()), s3_identical


def test_s3_server_bound_locally_and_stopped():
    assert all(ip.startswith("127.0.0.1") for ip in s3_bound), s3_bound
    assert s3_process_gone and s3_port_closed
    assert not any(p.pid == s3_pid for p in psutil.Process().children(recursive=True))


def test_catalog_opens_both_versions():
    assert set(cat.entries) == {"era5_netcdf", "era5_zarr"}
    assert catalog_same


def test_parquet_round_trips():
    pd.testing.assert_frame_equal(back, stations_df, check_dtype=False)
    assert table.equals(table_one) and table.num_rows == len(region_df)


def test_nothing_written_outside_build():
    for folder in (course.ROOT / "labs", course.DATA):
        assert not list(folder.rglob("*.zarr")) and not list(folder.rglob("*.parquet"))


def test_virtual_store_gives_the_same_values_as_open_mfdataset():
    if not course.era5.own_data() or vz_concat_error is not None:  # own files may join as they are
        assert "ZEP003" in str(vz_concat_error) or "chunk" in str(vz_concat_error), vz_concat_error
    if not course.era5.own_data():  # the generator packs with powers of two: decoding is exact
        assert all(vz_identical.values()), vz_identical
    assert all(vz_close.values()), vz_close
    same = [name for name in cold_reads if VZ_SAME_FILES or "converted" not in name]
    means = [cold_reads[name]["means"] for name in same]
    for other in means[1:]:
        for v, m in means[0].items():
            np.testing.assert_allclose(other[v], m, rtol=1e-5, err_msg=v)
    sums = {name: cold_reads[name]["series sum"] for name in same}
    assert len({round(x, 3) for x in sums.values()}) == 1, sums


def test_icechunk_history_keeps_the_old_snapshot():
    if len(VZ_FILES) > 1:
        assert [snap.message.split()[0] for snap in history[:2]] == ["append", "virtual"]
        assert vz_old.sizes["time"] + new_month.sizes["time"] == vz.sizes["time"]
        assert (vz_old.time.values == vz.time.values[: vz_old.sizes["time"]]).all()
    assert bytes_in(VZ_REPO) < bytes_in(MAP_STORE) / 10  # references, not data


def test_netcdf3_and_packed_files_are_virtual_and_bad_layouts_refused():
    ok = {name for name, r in format_results.items() if r["virtual"] == "yes"}
    assert {n for n in KINDS if "NetCDF3" in n or "packed" in n or "zlib" in n} <= ok, format_results
    assert all(format_results[n]["same values"] for n in ok), format_results
    refused = {n: r["how"] for n, r in format_results.items() if r["virtual"] == "no"}
    assert set(refused) == {"NetCDF4, chunks of 3 steps, files of 4 and 6", "not NetCDF (a CSV file named .nc)"}
    for why in refused.values():  # says why, and what to do
        assert "because" in why or "cannot" in why, why
        assert "to_zarr" in why, why


course.run_checks(globals())
