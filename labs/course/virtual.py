"""Virtual Zarr stores over NetCDF files: VirtualiZarr references kept in an Icechunk repository (labs 09, 12).

A virtual store copies no data. VirtualiZarr reads each file's chunk index once (where each chunk's
bytes start in the file, and how many there are) and writes those references, with the metadata,
into an Icechunk repository; ``xarray.open_zarr`` on the repository then reads the NetCDF files' own
bytes. What this module adds to the libraries' own calls (lab 09 shows each step):

* ``parser_for(path)``      the VirtualiZarr parser for a file (NetCDF4/HDF5 or classic NetCDF3), from
                            its first bytes; any other file is refused with a message that says why.
* ``contiguous_in_blocks(ds, steps)`` ``preprocess=`` for ``open_virtual_mfdataset``: an array a file
                            stores in one piece (contiguous: no chunks, no compression) is referenced
                            in blocks of ``steps`` time steps (``time_block(files)``: a day for monthly
                            files), so that files of 28, 30 and 31 days share one chunk shape.
* ``open_virtual(files)``   the virtual dataset of many files, or ``NotVirtual`` saying what to do.
* ``create_repo``, ``open_repo``, ``open_store``: an Icechunk repository on the local disk that may
                            read the folder the files are in, and the dataset at a branch or snapshot;
                            ``build(files, path)`` makes one in a single commit (lab 12, the benchmark).
* ``python -m course.virtual KIND PATH``: open, full mean and one point's series, timed in a fresh
                            process from a cold page cache (labs 09 and 12 and the benchmark).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
OPEN_NETCDF = dict(combine="by_coords", data_vars="minimal", coords="minimal", compat="override")


class NotVirtual(ValueError):
    """These files cannot be referenced as one virtual Zarr store (the message says why and what to do)."""


def file_format(path) -> str:
    """``netcdf4`` (HDF5), ``netcdf3`` (classic or 64-bit offset), ``cdf5`` or ``unknown``, from the bytes."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(4)
        if head in (b"CDF\x01", b"CDF\x02"):
            return "netcdf3"
        if head == b"CDF\x05":
            return "cdf5"
        size, offset = path.stat().st_size, 0
        while offset + 8 <= size:  # HDF5 may start after a user block of 512, 1024, 2048, ... bytes
            f.seek(offset)
            if f.read(8) == HDF5_SIGNATURE:
                return "netcdf4"
            offset = 512 if offset == 0 else 2 * offset
    return "unknown"


def parser_for(path):
    """The VirtualiZarr parser that reads this file's chunk index."""
    from virtualizarr.parsers import HDFParser, NetCDF3Parser

    kind = file_format(path)
    if kind == "netcdf4":
        return HDFParser()
    if kind == "netcdf3":
        return NetCDF3Parser()  # kerchunk's NetCDF3 reader underneath
    why = {"cdf5": "it is NetCDF3 in the CDF5 (64-bit data) format, which VirtualiZarr cannot read"}.get(
        kind, "it is neither NetCDF4/HDF5 nor classic NetCDF3 (its first bytes say so)")
    raise NotVirtual(f"{Path(path).name}: no virtual store, because {why}. Convert it once instead: "
                     "xr.open_mfdataset(files).to_zarr(...), or nccopy -k nc4 to rewrite it as NetCDF4.")


def registry():
    """Where VirtualiZarr finds ``file://`` URLs: the local filesystem (an S3 bucket would be an S3Store)."""
    from obspec_utils.registry import ObjectStoreRegistry
    from obstore.store import LocalStore

    return ObjectStoreRegistry({"file://": LocalStore()})


def time_block(files, dim: str = "time") -> int:
    """The longest run of time steps that divides every file's length (a day for monthly files)."""
    import netCDF4  # reads the header only; NetCDF3 and NetCDF4 alike

    lengths = []
    for f in files:
        with netCDF4.Dataset(f) as nc:
            lengths.append(len(nc.dimensions[dim]) if dim in nc.dimensions else 1)
    return math.gcd(*lengths)


def _in_blocks(array, steps: int):
    """The same bytes, referenced as chunks of ``steps`` along the first axis (C order, uncompressed)."""
    import numpy as np
    from virtualizarr.manifests import ChunkManifest, ManifestArray
    from zarr.core.chunk_grids import RegularChunkGrid

    n = array.shape[0]
    block_bytes = steps * array.dtype.itemsize * math.prod(array.shape[1:])
    grid = (n // steps,) + (1,) * (array.ndim - 1)
    refs = array.manifest.dict()
    if refs:  # one entry: the whole array, contiguous in its file
        (ref,) = refs.values()
        if ref["length"] != block_bytes * grid[0]:
            raise NotVirtual(f"an array of {ref['length']} bytes is not {grid[0]} blocks of {block_bytes}")
        manifest = ChunkManifest.from_arrays(
            paths=np.full(grid, ref["path"], dtype=np.dtypes.StringDType()),
            offsets=(ref["offset"] + block_bytes * np.arange(grid[0], dtype=np.uint64)).reshape(grid),
            lengths=np.full(grid, block_bytes, dtype=np.uint64), validate_paths=False)
    else:  # never written: every chunk is missing, i.e. fill values
        manifest = ChunkManifest(entries={}, shape=grid)
    metadata = dataclasses.replace(array.metadata, chunk_grid=RegularChunkGrid(chunk_shape=(steps,) + array.shape[1:]))
    return ManifestArray(metadata=metadata, chunkmanifest=manifest)


def contiguous_in_blocks(ds, steps: int, dim: str = "time"):
    """``preprocess=`` for ``open_virtual_mfdataset``: arrays stored in one piece get chunks of ``steps``.

    A contiguous NetCDF variable is one chunk as long as its file. Zarr needs one chunk shape for the
    whole store, and monthly files are 28 to 31 days long, so VirtualiZarr cannot put them end to end.
    But the bytes of an uncompressed array lie in order: time step ``i`` starts ``i × (one map's bytes)``
    after the first, so the same bytes can be referenced in blocks of any ``steps`` that divides every
    file's length. Arrays a file already stores in chunks (compressed or not) are left as they are.
    """
    from virtualizarr.manifests import ManifestArray

    for name, variable in ds.variables.items():
        data = variable.data
        if (isinstance(data, ManifestArray) and variable.dims[:1] == (dim,) and data.chunks == data.shape
                and data.shape[0] % steps == 0 and not data.metadata.codecs[1:]):  # `bytes` only: uncompressed
            ds[name] = variable.copy(data=_in_blocks(data, steps))
    return ds


def netcdf3_fill_values(ds):
    """``preprocess=`` for NetCDF3 files: put back the ``_FillValue`` and ``missing_value`` attributes.

    Kerchunk's NetCDF3 reader moves them into Zarr's ``fill_value``, which xarray does not use to mask
    missing values in a Zarr 3 store: without them, a missing value would come back as a number
    (``-32767 × scale_factor + add_offset``). They are read again from the file's header.
    """
    import netCDF4
    from urllib.parse import unquote, urlparse

    from virtualizarr.manifests import ManifestArray

    urls = (ref["path"] for v in ds.variables.values() if isinstance(v.data, ManifestArray)
            for ref in v.data.manifest.dict().values())
    url = next(urls, None)
    if url is None:
        return ds
    with netCDF4.Dataset(unquote(urlparse(url).path)) as nc:
        for name, variable in ds.variables.items():
            if name in nc.variables:
                for attr in ("_FillValue", "missing_value"):
                    if attr in nc.variables[name].ncattrs():
                        variable.attrs[attr] = nc.variables[name].getncattr(attr)
    return ds


def open_virtual(files, steps: int | None = None, dim: str = "time"):
    """One virtual dataset over ``files`` (VirtualiZarr ``ManifestArray`` variables), or ``NotVirtual``.

    ``steps``: the chunk length along ``dim`` for arrays the files store in one piece (default
    ``time_block(files)``; give the store's own when appending files to it).
    """
    from virtualizarr import open_virtual_mfdataset

    files = [Path(f).resolve() for f in files]
    parsers = {type(parser_for(f)) for f in files}
    if len(parsers) > 1:
        raise NotVirtual("the files mix NetCDF3 and NetCDF4: open and convert them with to_zarr instead")
    steps = steps or time_block(files, dim)
    netcdf3 = file_format(files[0]) == "netcdf3"

    def preprocess(ds):
        return contiguous_in_blocks(netcdf3_fill_values(ds) if netcdf3 else ds, steps, dim)

    try:
        return open_virtual_mfdataset([f.as_uri() for f in files], registry=registry(), parser=parser_for(files[0]),
                                      preprocess=preprocess, **OPEN_NETCDF)
    except (ValueError, NotImplementedError) as err:
        if isinstance(err, NotVirtual):
            raise
        raise NotVirtual(
            f"VirtualiZarr cannot join these files into one Zarr store: {err} Zarr needs one chunk shape for "
            "the whole store, so every file must use the same chunks, the same codecs, and a length along "
            f"{dim!r} that is a whole number of chunks. Convert once with xr.open_mfdataset(...).to_zarr(...), "
            "or rewrite the files with matching chunks (nccopy -c).") from err
    except (AttributeError, TypeError, KeyError) as err:  # a parser bug, e.g. CDS files' string `expver`
        raise NotVirtual(
            f"VirtualiZarr could not read these files' chunk indexes ({type(err).__name__}: {err}); files "
            "from the Climate Data Store since 2024 hold a string variable (expver) that its HDF5 parser "
            "does not take. Convert once with xr.open_mfdataset(...).to_zarr(...) instead.") from err


def container_prefix(files) -> str:
    """The ``file://`` URL of the folder that holds every file (what the repository may read)."""
    common = Path(os.path.commonpath([str(Path(f).resolve().parent) for f in files]))
    return common.as_uri().rstrip("/") + "/"


def _quiet():
    import icechunk

    # Icechunk warns at every open that commits from several processes at once are not safe on a
    # local disk. This course commits from one process only, so keep the warnings off the output.
    icechunk.set_logs_filter("error")
    return icechunk


def create_repo(path, files):
    """A new Icechunk repository at ``path`` whose virtual references may point into the files' folder."""
    icechunk = _quiet()
    prefix = container_prefix(files)
    config = icechunk.RepositoryConfig.default()
    config.set_virtual_chunk_container(
        icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(prefix[len("file://"):])))
    return icechunk.Repository.create(icechunk.local_filesystem_storage(str(path)), config=config,
                                      authorize_virtual_chunk_access=icechunk.containers_credentials({prefix: None}))


def open_repo(path, files):
    """The repository at ``path``, allowed to read the virtual chunks in the files' folder."""
    icechunk = _quiet()
    prefix = container_prefix(files)
    return icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)),
                                    authorize_virtual_chunk_access=icechunk.containers_credentials({prefix: None}))


def build(files, path, message: str = "virtual references to the NetCDF files"):
    """The virtual store of ``files`` at ``path``, in one commit on ``main`` (lab 09 shows each step)."""
    vds = open_virtual(files)
    repo = create_repo(path, files)
    session = repo.writable_session("main")
    vds.vz.to_icechunk(session.store)
    session.commit(message)
    return repo


def open_store(path, files, *, snapshot_id=None, branch="main", **kwargs):
    """``xr.open_zarr`` on the repository at a branch (default ``main``) or an older snapshot."""
    import xarray as xr

    repo = open_repo(path, files)
    session = repo.readonly_session(snapshot_id=snapshot_id) if snapshot_id else repo.readonly_session(branch)
    return xr.open_zarr(session.store, consolidated=False, **kwargs)


# ---------------------------------------------------------------------------------------------------
# Timed reads in a fresh process, from a cold page cache (python -m course.virtual KIND PATH [options])

def cold_read(kind, path, files, time_chunk, point, variables=None):
    """Seconds to open, to compute the mean of every time-varying variable, and to read one point's series.

    ``kind``: ``netcdf`` (open_mfdataset on ``files``), ``zarr`` (a converted store at ``path``),
    ``icechunk`` (the virtual store at ``path``) or ``kerchunk`` (a reference JSON at ``path``). The page
    cache is emptied of the store's files and of the NetCDF files before each of the three reads.
    """
    import warnings

    import xarray as xr

    import course
    from course import bench

    warnings.filterwarnings("ignore")  # consolidated metadata, numcodecs in Zarr 3, "mean of empty slice"
    import dask.array  # noqa: F401  every library any of the four needs, imported before the clock starts
    import fsspec.implementations.reference  # noqa: F401
    import netCDF4  # noqa: F401
    import zarr  # noqa: F401

    _quiet()
    xr.backends.list_engines()  # finds the engines (netcdf4, zarr, kerchunk) now, not during the first open
    import course.era5

    chunks = {"time": time_chunk}
    normalise = course.era5.normalise  # the course's names and conventions, for your own files too
    opens = {
        "netcdf": lambda: xr.open_mfdataset(files, chunks=chunks, preprocess=normalise, **OPEN_NETCDF),
        "zarr": lambda: xr.open_zarr(path, consolidated=True, chunks=chunks),
        "icechunk": lambda: normalise(open_store(path, files, chunks=chunks)),
        "kerchunk": lambda: normalise(xr.open_dataset(path, engine="kerchunk", chunks=chunks)),
    }
    def evict():  # the NetCDF files too: the virtual stores read them
        return bench.evict(*files) if kind == "netcdf" else bench.evict(path, *files)

    cold = evict()
    start = time.perf_counter()
    ds = opens[kind]()
    t_open = time.perf_counter() - start
    names = variables or [v for v in ds.data_vars if "time" in ds[v].dims]
    evict()
    start = time.perf_counter()
    means = {v: float(m) for v, m in ds[names].mean().compute().items()}
    t_mean = time.perf_counter() - start
    evict()
    start = time.perf_counter()
    series = ds["t2m" if "t2m" in ds else names[0]].sel(point, method="nearest").values
    t_point = time.perf_counter() - start
    return {"kind": kind, "cold": cold, "open s": t_open, "mean s": t_mean, "point s": t_point,
            "bytes": int(sum(ds[v].nbytes for v in names)), "means": means,
            "series sum": float(series.astype("float64").sum()), "hardware": course.hardware()}


def cold_read_in_fresh_process(kind, path, files, time_chunk, point, timeout=600):
    """``cold_read`` in a new Python process (nothing imported, opened or cached by this one)."""
    import subprocess

    labs = Path(__file__).resolve().parents[1]
    spec = json.dumps({"kind": kind, "path": str(path), "files": [str(f) for f in files],
                       "time_chunk": int(time_chunk), "point": point})
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(labs), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-m", "course.virtual", spec], capture_output=True, text=True,
                         timeout=timeout, env=env, cwd=labs)
    if run.returncode != 0:
        raise RuntimeError(f"the timed read of {kind} failed:\n{run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(cold_read(**json.loads(sys.argv[1]))))
