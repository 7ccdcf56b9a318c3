# %% [markdown]
# # 09 · Zarr and storage for parallel work
#
# **Teaching:** 50 min · **Exercises:** 35 min
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
from course import bench
from course import s3 as local_s3

# Zarr format 3 does not (yet) standardise consolidated metadata, so zarr-python warns each time we use
# it. xarray, zarr-python and the cloud tools all read it; we use it knowingly and silence the warning.
warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)

SRC = course.dataset()
FILES = sorted(SRC.glob("era5_*.nc"))
WORK = course.BUILD / "09_zarr_workshop"  # everything this lab writes goes here
shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)

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
print(course.hardware())

# %% [markdown]
# ## 1. From many NetCDF files to one Zarr store
#
# Opening the NetCDF files is the step everybody waits for. `open_mfdataset` opens every file, reads
# every variable's metadata and the coordinates, and checks that the files fit together. We give it
# the same options as in episode 07: the static fields (`lsm`, `z`) are taken from the first file
# instead of being compared (and copied along `time`) for every file.

# %%
OPEN_NETCDF = dict(combine="by_coords", data_vars="minimal", coords="minimal", compat="override", chunks={})


def open_netcdf():
    return xr.open_mfdataset(FILES, **OPEN_NETCDF)


t_open_netcdf, nc = fastest(open_netcdf)
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
# ## 10. Zarr without copying: a virtual store over the NetCDF files
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
vz_reference = xr.open_mfdataset(VZ_FILES, preprocess=course.era5.normalise, **OPEN_NETCDF)
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
print(f"{len(VZ_FILES)} files; each store in a fresh process, {'cold' if vz_cold else 'WARM (no posix_fadvise here)'} "
      f"cache; mean of {len(cold_reads[next(iter(STORES))]['means'])} variables · {vz_load}")
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
    for path, month in zip(paths, tiny_months(steps)):
        month.to_netcdf(path, **kwargs) if kwargs is not None else month.to_dataframe().to_csv(path)
    try:
        refs_ds = virtual.open_virtual(paths)
        tiny_repo = virtual.create_repo(folder / "store.icechunk", paths)
        tiny_session = tiny_repo.writable_session("main")
        refs_ds.vz.to_icechunk(tiny_session.store)
        tiny_session.commit("tiny")
        back = virtual.open_store(folder / "store.icechunk", paths)
        with xr.open_mfdataset(paths, **OPEN_NETCDF) as expected:  # every value, missing ones too
            same = expected.t2m.dims == back.t2m.dims and np.array_equal(
                expected.t2m.values, back.t2m.values.astype(expected.t2m.dtype), equal_nan=True) and all(
                np.array_equal(expected[c].values, back[c].values) for c in expected.t2m.coords)
        format_results[name] = {"virtual": "yes", "same values": same,
                                "how": f"{type(virtual.parser_for(paths[0])).__name__}, chunks {back.t2m.encoding['chunks']}"}
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
def test_virtual_store_gives_the_same_values_as_open_mfdataset():
    assert "ZEP003" in str(vz_concat_error) or "chunk" in str(vz_concat_error)
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
