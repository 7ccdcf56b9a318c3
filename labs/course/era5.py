"""The ERA5 files a lab reads: the course's generated set, or the lab's own (``COURSE_ERA5``).

Unset, every lab reads the files the course generates (``course.dataset()``) and nothing changes. Set
``COURSE_ERA5`` to a folder (searched with its sub-folders) or a glob (``/nas/era5/2010-*/*.nc``) and
the episodes that read the dataset read those files instead, as the Climate Data Store (CDS) delivers
them, without anybody editing a file. What a lab calls:

* ``own_data()``            True when ``$COURSE_ERA5`` names the learner's own files.
* ``files()``               the NetCDF files to open, in time order (invariants first). Own files are
                            checked first: one clear sentence (``OwnDataError``) for an empty folder,
                            files that are not NetCDF, a truncated file, or files on different grids.
* ``normalise(ds)``         one file's Dataset in the course's conventions; pass it to
                            ``xr.open_mfdataset(files, preprocess=course.era5.normalise, ...)``.
* ``open(**kwargs)``        ``xr.open_mfdataset(files(), preprocess=normalise, <minimal options>, **kwargs)``.
* ``report()``              prints, for own files, what the files are and what ``normalise`` did to them
                            ("renamed valid_time → time; merged 2 streams (accum, instant); ...").
* ``needs(ds, variables, what)``  True when ``ds`` has every variable; otherwise prints one line naming
                            the section (``what``) it skips and the missing variables, and returns False.
* ``require(ds, variables, what)``  the same for what a whole lab cannot do without: ``OwnDataError``.
* ``writable(folder)``      the folder a lab writes a store into, or ``OwnDataError`` before anything
                            is written when it cannot be written.

The course's conventions are those of the generated files: dimensions ``time``, ``latitude`` (90 → −90),
``longitude`` (0 → 360); ERA5 short names (``t2m``, ``sst``, ``tp``, ``u10``, ``v10``, ``lsm``, ``z``);
the units ERA5 uses (K; m of precipitation accumulated over a step). ``normalise`` brings other
layouts to these conventions and leaves the generated files exactly as they are:

* CDS NetCDF since 2024: ``valid_time`` → ``time``; the ``number`` and ``expver`` coordinates dropped;
  float32 with NaN fill, compressed NetCDF4 and ``GRIB_*`` attributes read as they are; instantaneous
  and accumulated variables in separate files (``…stepType-instant.nc``, ``…stepType-accum.nc``, in
  month folders or not) merged by ``open_mfdataset``; invariants (``lsm``, ``z``) in a file of their own
  lose their one-step time dimension.
* Legacy CDS NetCDF: ``time`` in hours since 1900, int16 packed with ``scale_factor``/``add_offset``
  and ``_FillValue``/``missing_value`` (xarray decodes them), NetCDF3 64-bit offset or NetCDF4; an
  ``expver`` dimension (ERA5 final and ERA5T) combined into one series.
* Latitude south to north is reversed; longitude −180…180 is shifted to 0…360; ``lat``/``lon`` renamed.

Values are never changed silently: a change of units (°C → K, mm → m) is made only where the units
attribute says so, and is reported. The time step (hourly, 6-hourly, daily) is kept and reported, and so
is how ``tp`` is accumulated: a 6-hourly CDS request holds the *last hour's* precipitation at each step.

Inspect a set before teaching on it (formats, variables, period, grid, size, which episodes can run;
exit status 1 when nothing usable is found)::

    python data/inspect_era5.py /nas/era5
"""

from __future__ import annotations

import dataclasses
import functools
import glob as globbing
import os
import re
import struct
import sys
from pathlib import Path

ENV = "COURSE_ERA5"
SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf")
INVARIANTS = ("lsm", "z", "sdor", "slor", "cvh", "cvl", "slt", "anor", "isor")
RENAME = {  # other names of the course's dimensions and variables (CDS request names, GRIB names)
    "valid_time": "time", "lat": "latitude", "lon": "longitude",
    "2t": "t2m", "10u": "u10", "10v": "v10", "2m_temperature": "t2m", "sea_surface_temperature": "sst",
    "total_precipitation": "tp", "10m_u_component_of_wind": "u10", "10m_v_component_of_wind": "v10",
    "land_sea_mask": "lsm", "geopotential": "z",
}
UNITS = {  # the course's unit of each variable, and the other spellings it converts from: (scale, offset)
    "t2m": ("K", {"degC": (1, 273.15), "°C": (1, 273.15), "C": (1, 273.15), "celsius": (1, 273.15)}),
    "sst": ("K", {"degC": (1, 273.15), "°C": (1, 273.15), "C": (1, 273.15), "celsius": (1, 273.15)}),
    "tp": ("m", {"mm": (0.001, 0.0), "kg m**-2": (0.001, 0.0), "kg m-2": (0.001, 0.0)}),
}
SAME_UNITS = {"K": {"K", "kelvin"}, "m": {"m", "metre", "metres", "meter", "meters"}}

# What each episode reads: the variables it cannot run without, and those of sections it skips without.
EPISODES = {
    "06 GNU parallel": (["t2m"], []),
    "07 Xarray + Dask": (["t2m"], ["lsm", "sst"]),
    "08 Maps": (["t2m"], ["tp"]),
    "09 Zarr": (["t2m"], []),
    "10 Machine learning": (["t2m"], ["tp", "u10", "v10", "lsm", "z"]),
    "11 GPUs": (["t2m"], []),
    "12 Golden path": (["t2m"], ["tp", "u10", "v10", "lsm", "z"]),
}


class OwnDataError(SystemExit):
    """A problem with the files ``COURSE_ERA5`` names, in one sentence that says what to do.

    A ``SystemExit``: a lab run as a script ends with this one line and status 1, no traceback."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def setting() -> str:
    return os.environ.get(ENV, "").strip()


def own_data() -> bool:
    return bool(setting())


def _fail(what: str, todo: str) -> OwnDataError:
    where = setting()
    named = f"{ENV}={where}" if where else ENV
    return OwnDataError(f"{named}: {what}; {todo}, or unset {ENV} to use the course's generated data.")


# --------------------------------------------------------------------------------------
# Finding and checking the files
# --------------------------------------------------------------------------------------

MAGIC = {b"CDF\x01": "NetCDF3 classic", b"CDF\x02": "NetCDF3 64-bit offset", b"CDF\x05": "NetCDF3 64-bit data"}
HDF5 = b"\x89HDF\r\n\x1a\n"
OTHER = {b"GRIB": "a GRIB file (download NetCDF from the CDS, or convert it with cdo or grib_to_netcdf)",
         b"PK\x03\x04": "a zip archive (the CDS zips several files into one download: unzip it first)",
         b"\x1f\x8b": "a gzip file (gunzip it first)"}


def _candidates(where: str) -> list[Path]:
    path = Path(where).expanduser()
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    if path.is_file():
        return [path]
    return sorted(Path(p) for p in globbing.glob(str(path), recursive=True) if Path(p).is_file())


def _kind(path: Path) -> str | None:
    """'NetCDF4', 'NetCDF3 …', or None when the first bytes are not NetCDF's."""
    with path.open("rb") as fh:
        head = fh.read(8)
        if head[:4] in MAGIC:
            return MAGIC[head[:4]]
        for offset in (0, 512, 1024, 2048):  # HDF5 may start its superblock after a user block
            fh.seek(offset)
            if fh.read(8) == HDF5:
                return "NetCDF4"
    return None


def _netcdf3_end(path: Path) -> int:
    """The size a NetCDF3 file must have, from its header (netCDF-C reads zeros past a truncated end)."""
    with path.open("rb") as fh:
        data = fh.read(1 << 20)
    version = data[3]
    big = version == 5
    pos = 4

    def num(eight=big):
        nonlocal pos
        fmt, size = (">Q", 8) if eight else (">I", 4)
        value = struct.unpack_from(fmt, data, pos)[0]
        pos += size
        return value

    def name():
        nonlocal pos
        n = num()
        pos += (n + 3) // 4 * 4

    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}
    numrecs = num()
    if numrecs in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):  # streaming: unknown length
        return 0
    dims = []
    tag, n = num(False), num()
    for _ in range(n if tag == 0x0A else 0):
        name()
        dims.append(num())

    def attributes():
        nonlocal pos
        tag, n = num(False), num()
        for _ in range(n if tag == 0x0C else 0):
            name()
            kind, count = num(False), num()
            pos += (count * sizes[kind] + 3) // 4 * 4

    attributes()
    tag, n = num(False), num()
    fixed_end, records = 0, []
    for _ in range(n if tag == 0x0B else 0):
        name()
        dimids = [num() for _ in range(num())]
        attributes()
        kind, vsize = num(False), num()
        begin = num(version != 1)
        if dimids and dims[dimids[0]] == 0:
            per_record = sizes[kind]
            for d in dimids[1:]:
                per_record *= dims[d]
            records.append((begin, per_record, vsize))
        else:
            fixed_end = max(fixed_end, begin + vsize - 3)  # vsize is rounded up to 4 bytes
    if records and numrecs:
        record_size = records[0][1] if len(records) == 1 else sum(v for _, _, v in records)
        fixed_end = max(fixed_end, max(b + (numrecs - 1) * record_size + p for b, p, _ in records))
    return fixed_end


@dataclasses.dataclass(frozen=True)
class Probe:
    """What one file's header says (read with netCDF4: cheap, no data)."""

    path: Path
    format: str
    nbytes: int
    variables: tuple          # data variables, course names
    times: tuple              # (first, last, step in hours, count) as numpy datetime64 / float; () if none
    grid: tuple               # (nlat, nlon, lat min, lat max, lon min, lon max) in course conventions
    packed: bool
    compressed: bool
    stream: str               # 'instant', 'accum', 'invariants' or ''

    @property
    def invariant_only(self) -> bool:
        return bool(self.variables) and all(v in INVARIANTS for v in self.variables) and \
            (not self.times or self.times[3] <= 1)


@functools.lru_cache(maxsize=100_000)
def _probe(path: Path, size: int, mtime_ns: int) -> Probe:
    import netCDF4
    import numpy as np

    kind = _kind(path)
    if kind is None:
        raise ValueError("not NetCDF")
    if kind.startswith("NetCDF3") and size < _netcdf3_end(path):
        raise ValueError("truncated")
    with netCDF4.Dataset(path) as nc:
        names = {n: RENAME.get(n, n) for n in nc.variables}
        coords = {"time", "latitude", "longitude", "number", "expver", "step", "surface"}
        variables = tuple(sorted(names[n] for n, v in nc.variables.items()
                                 if names[n] not in coords and len(v.dimensions) >= 2))
        by_course = {names[n]: v for n, v in nc.variables.items()}
        lat, lon = (np.asarray(by_course[c][:], dtype=float) for c in ("latitude", "longitude"))
        lon = np.where(lon < 0, lon + 360, lon)
        grid = (lat.size, lon.size, round(lat.min(), 4), round(lat.max(), 4), round(lon.min(), 4), round(lon.max(), 4))
        times = ()
        if "time" in by_course and by_course["time"].size:
            t = by_course["time"]
            values = t[:]
            stamps = netCDF4.num2date(values[[0, -1]], t.units, getattr(t, "calendar", "standard"),
                                      only_use_cftime_datetimes=False, only_use_python_datetimes=True)
            first, last = (np.datetime64(s.isoformat(), "s") for s in stamps)
            step = 0.0
            if t.size > 1:
                second = netCDF4.num2date(values[1], t.units, getattr(t, "calendar", "standard"),
                                          only_use_cftime_datetimes=False, only_use_python_datetimes=True)
                step = float((np.datetime64(second.isoformat(), "s") - first) / np.timedelta64(1, "h"))
            times = (first, last, step, int(t.size))
        data = [by_course[v] for v in variables]
        packed = any("scale_factor" in v.ncattrs() for v in data)
        compressed = any(v.filters().get("zlib") or v.filters().get("zstd") for v in data) if kind == "NetCDF4" else False
    step_type = re.search(r"stepType-(\w+)", path.name)
    stream = step_type.group(1) if step_type else ""
    probe = Probe(path, kind, size, variables, times, grid, packed, bool(compressed), stream)
    if probe.invariant_only:
        probe = dataclasses.replace(probe, stream="invariants")
    return probe


def probe(path) -> Probe:
    path = Path(path)
    stat = path.stat()
    return _probe(path, stat.st_size, stat.st_mtime_ns)


def _short(paths, n=2) -> str:
    names = ", ".join(p.name if len(p.name) > 12 else str(p) for p in paths[:n])
    return names + (f" and {len(paths) - n} more" if len(paths) > n else "")


def probes(where: str | None = None) -> list[Probe]:
    """Every own file's Probe, in time order (invariants first); ``OwnDataError`` for bad input."""
    where = where or setting()
    candidates = _candidates(where)
    netcdf = [p for p in candidates if p.suffix.lower() in SUFFIXES]
    if not netcdf:
        others = f" (found {len(candidates)} other files, e.g. {candidates[0].name})" if candidates else ""
        raise _fail(f"no NetCDF files (*.nc) found there{others}",
                    f"point {ENV} at the folder (or a glob such as '/nas/era5/*.nc') that holds your ERA5 NetCDF files")
    bad, truncated, found = [], [], []
    for path in netcdf:
        try:
            found.append(probe(path))
        except (OSError, ValueError, KeyError, IndexError, struct.error, RuntimeError) as error:
            with path.open("rb") as fh:
                head = fh.read(4)
            what = next((text for magic, text in OTHER.items() if head.startswith(magic)), None)
            if what:
                bad.append((path, what))
            elif "truncated" in str(error) or (_kind(path) is not None and "HDF error" in str(error)):
                truncated.append(path)
            elif isinstance(error, KeyError):
                bad.append((path, f"a NetCDF file without latitude/longitude ({error})"))
            else:
                bad.append((path, "not a NetCDF file" if _kind(path) is None else f"unreadable ({error})"))
    if truncated:
        raise _fail(f"{_short(truncated)} {'is' if len(truncated) == 1 else 'are'} truncated or damaged "
                    f"(shorter than the header says, or unreadable)",
                    "download or copy those files again, or move them out of the folder")
    if bad:
        raise _fail(f"{_short([p for p, _ in bad])} {'is' if len(bad) == 1 else 'are'} {bad[0][1]}",
                    "remove them from the folder or point the glob at the NetCDF files only")
    grids = {}
    for p in found:
        grids.setdefault(p.grid, []).append(p.path)
    if len(grids) > 1:
        described = "; ".join(f"{len(ps)} on {_grid_text(g)} (e.g. {ps[0].name})" for g, ps in grids.items())
        raise _fail(f"the files are on {len(grids)} different grids: {described}",
                    "point it at files of one grid (keep each grid in its own folder)")
    far_future = "9999-12-31"
    return sorted(found, key=lambda p: ("0" if p.stream == "invariants" else "1",
                                        str(p.times[0]) if p.times else far_future, p.stream, str(p.path)))


def files() -> list[Path]:
    """The NetCDF files a lab opens, in time order (own files: invariants first, streams side by side)."""
    if not own_data():
        import course

        return sorted(course.dataset().glob("era5_*.nc"))
    return [p.path for p in probes()]


def one_file(variable: str = "t2m") -> Path:
    """The first file (in time order) that holds ``variable``; the first file if none does."""
    all_files = files()
    if not own_data():
        return all_files[0]
    return next((p.path for p in probes() if variable in p.variables), all_files[0])


# --------------------------------------------------------------------------------------
# Normalising one file's Dataset to the course's conventions
# --------------------------------------------------------------------------------------

def normalised(ds):
    """``(dataset in the course's conventions, list of what was done)`` for one file's Dataset."""
    import numpy as np

    notes = []
    renames = {n: RENAME[n] for n in list(ds.variables) + list(ds.dims) if n in RENAME and RENAME[n] not in ds.variables}
    if renames:
        ds = ds.rename(renames)
        notes += [f"renamed {old} → {new}" for old, new in renames.items()]
    if "expver" in ds.dims:  # legacy: ERA5 final (1) and ERA5T (5) side by side, NaN where absent
        versions = [str(v) for v in ds.expver.values]
        combined = ds.isel(expver=0, drop=True)
        for i in range(1, ds.sizes["expver"]):
            combined = combined.combine_first(ds.isel(expver=i, drop=True))
        ds = combined
        notes.append(f"combined expver {' and '.join(versions)} (ERA5 and ERA5T) into one series")
    scalars = [n for n in ds.coords if n not in ds.dims and (ds[n].ndim == 0 or n in ("expver", "number"))]
    if scalars:
        ds = ds.drop_vars(scalars)
        notes.append(f"dropped coordinate{'s' if len(scalars) > 1 else ''} {', '.join(scalars)}")
    if "number" in ds.dims and ds.sizes["number"] == 1:
        ds = ds.isel(number=0, drop=True)
        notes.append("dropped the ensemble dimension number (one member)")
    if "time" in ds.dims:
        static = [v for v in INVARIANTS if v in ds.data_vars and "time" in ds[v].dims]
        if static:
            ds = ds.assign({v: ds[v].isel(time=0, drop=True) for v in static})
            notes.append(f"{', '.join(static)}: kept one time step (invariant)")
        if not any("time" in ds[v].dims for v in ds.data_vars):  # an invariants file: no time left
            ds = ds.drop_vars("time")
    if "latitude" in ds.dims and ds.sizes["latitude"] > 1 and ds.latitude.values[0] < ds.latitude.values[-1]:
        ds = ds.isel(latitude=slice(None, None, -1))
        notes.append("latitude reversed to run 90 → −90")
    if "longitude" in ds.dims and float(ds.longitude.min()) < 0:
        ds = ds.assign_coords(longitude=(ds.longitude + 360) % 360).sortby("longitude")
        ds.longitude.attrs.update(units="degrees_east")
        notes.append("longitude −180…180 shifted to 0…360")
    for name, (unit, others) in UNITS.items():
        if name not in ds.data_vars:
            continue
        units = str(ds[name].attrs.get("units", ""))
        if units in others:
            scale, offset = others[units]
            attrs = {**ds[name].attrs, "units": unit}
            ds[name] = (ds[name] * scale + offset).assign_attrs(attrs)
            notes.append(f"{name} {units} → {unit} (values converted)")
        elif units and units not in SAME_UNITS[unit]:
            notes.append(f"{name} is in {units!r}, not {unit}: left as it is (check before comparing)")
    order = [d for d in ("time", "latitude", "longitude") if d in ds.dims]
    for name in ds.data_vars:
        dims = ds[name].dims
        if set(order) <= set(dims) and tuple(d for d in dims if d in order) != tuple(order):
            ds[name] = ds[name].transpose(*order, ...)
            notes.append(f"{name}: dimensions put in the order {', '.join(order)}")
    if "time" in ds.dims and ds.indexes["time"].size > 1 and not ds.indexes["time"].is_monotonic_increasing:
        ds = ds.sortby("time")
        notes.append("time sorted")
    return ds, notes


def normalise(ds):
    """One file's Dataset in the course's conventions (see the module's docstring); the generated files
    pass unchanged. Use as ``xr.open_mfdataset(files, preprocess=course.era5.normalise)``."""
    return normalised(ds)[0]


def _grid_text(grid) -> str:
    nlat, nlon, lat0, lat1, lon0, lon1 = grid
    dlat = (lat1 - lat0) / (nlat - 1) if nlat > 1 else 0
    dlon = (lon1 - lon0) / (nlon - 1) if nlon > 1 else 0
    spacing = f"{dlat:g}°" if abs(dlat - dlon) < 1e-6 else f"{dlat:g}° × {dlon:g}°"
    return f"{spacing} {nlat}×{nlon} ({lat0:g}…{lat1:g}° N, {lon0:g}…{lon1:g}° E)"


def _step_text(hours: float) -> str:
    if hours == 24:
        return "daily"
    if hours == 1:
        return "hourly"
    return f"{hours:g}-hourly" if hours else "one time step"


def summary(where: str | None = None) -> list[str]:
    """What the own files are and what opening them with ``normalise`` does, as short phrases."""
    import xarray as xr

    found = probes(where)
    formats = sorted({p.format + (" compressed" if p.compressed else "") + (" packed int16" if p.packed else "")
                      for p in found})
    folders = {p.path.parent for p in found}
    lines = [f"{len(found)} file{'s' if len(found) > 1 else ''} in {len(folders)} folder{'s' if len(folders) > 1 else ''} "
             f"({'; '.join(formats)})"]
    streams = sorted({p.stream for p in found if p.stream and p.stream != "invariants"})
    if len(streams) > 1:
        lines.append(f"merged {len(streams)} streams ({', '.join(streams)})")
    invariant_files = [p for p in found if p.stream == "invariants"]
    if invariant_files:
        lines.append(f"invariants ({', '.join(invariant_files[0].variables)}) from their own file")
    notes, tp_attrs = [], None
    for kind in {(p.format, p.stream, p.variables): p for p in found}.values():  # one file of each kind
        with xr.open_dataset(kind.path, chunks={}) as one:
            one, done = normalised(one)
            notes += [n for n in done if n not in notes]
            if "tp" in one and tp_attrs is None:
                tp_attrs = dict(one.tp.attrs)
    lines += notes or ["already in the course's conventions: nothing renamed or converted"]
    steps = sorted({p.times[2] for p in found if p.times and p.times[3] > 1})
    if steps:
        lines.append(f"time step {', '.join(_step_text(s) for s in steps)} (kept)")
    if tp_attrs is not None and steps and steps[0] != 1:
        if "time: sum" in str(tp_attrs.get("cell_methods", "")):
            lines.append("tp accumulated over each step (kept)")
        else:  # CDS: hourly accumulations, sampled at the requested hours
            lines.append(f"tp kept as delivered: ERA5's hourly total at each {_step_text(steps[0])} step, "
                         f"not summed over the step")
    return lines


def report() -> None:
    """For own files (``COURSE_ERA5``), print one line: what was found and what normalising did."""
    if own_data():
        print(f"{ENV}: " + "; ".join(summary()))


def open(**kwargs):  # noqa: A001 - read as course.era5.open
    """All the files as one lazy Dataset in the course's conventions (the minimal options of episode 07)."""
    import xarray as xr

    options = dict(combine="by_coords", data_vars="minimal", coords="minimal", compat="override",
                   preprocess=normalise)
    return xr.open_mfdataset(files(), **{**options, **kwargs})


# --------------------------------------------------------------------------------------
# What a lab needs
# --------------------------------------------------------------------------------------

def needs(ds, variables, what: str) -> bool:
    missing = [v for v in variables if v not in ds]
    if missing:
        print(f"Skipping {what}: it needs {', '.join(missing)}, which these files do not have.")
        return False
    return True


def require(ds, variables, what: str) -> None:
    """``OwnDataError`` when ``ds`` lacks a variable that ``what`` (an episode) cannot run without."""
    missing = [v for v in variables if v not in ds]
    if missing:
        raise _fail(f"none of the files has {', '.join(missing)}, which {what} needs",
                    f"add files with {', '.join(missing)} to the set")


def writable(folder) -> Path:
    """``folder``, created if need be, once a test file could be written there; else ``OwnDataError``
    (before anything is written, so no store is left half-written)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        test = folder / f".write-test-{os.getpid()}"
        test.write_bytes(b"")
        test.unlink()
    except OSError as error:
        raise _fail(f"cannot write the store to {folder} ({error.strerror or error})",
                    "make that folder writable or run the lab from a copy of the course you can write to") from None
    return folder


# --------------------------------------------------------------------------------------
# The inspection command: python data/inspect_era5.py PATH
# --------------------------------------------------------------------------------------

def describe(where: str) -> dict:
    """What ``inspect`` prints, as a dict (``OwnDataError`` when nothing usable is there)."""
    found = probes(where)
    variables = sorted({v for p in found for v in p.variables})
    timed = [p for p in found if p.times]
    period = (f"{min(p.times[0] for p in timed)} … {max(p.times[1] for p in timed)}".replace("T", " ")
              if timed else "no time axis")
    steps = sorted({p.times[2] for p in timed if p.times[3] > 1})
    episodes = {}
    for name, (required, optional) in EPISODES.items():
        missing = [v for v in required if v not in variables]
        skipped = [v for v in optional if v not in variables]
        episodes[name] = ("cannot run: needs " + ", ".join(missing) if missing else
                          "runs, skipping the sections that need " + ", ".join(skipped) if skipped else "runs")
    return {"files": len(found), "formats": sorted({p.format for p in found}), "variables": variables,
            "period": period, "step": ", ".join(_step_text(s) for s in steps) or "one time step",
            "grid": _grid_text(found[0].grid), "bytes": sum(p.nbytes for p in found),
            "normalising": summary(where)[1:], "episodes": episodes}


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="What the course can do with a set of ERA5 NetCDF files.")
    parser.add_argument("path", nargs="?", default=None,
                        help=f"a folder or a glob (default: ${ENV}, else the course's generated files)")
    args = parser.parse_args(argv)
    where = args.path or setting()
    if not where:
        import course

        where = str(course.dataset())
    os.environ[ENV] = where  # so that messages name the setting to use
    try:
        info = describe(where)
    except OwnDataError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"{ENV}={where}")
    print(f"  files:      {info['files']} ({', '.join(info['formats'])}), {info['bytes'] / 2**20:.1f} MiB")
    print(f"  variables:  {', '.join(info['variables'])}")
    print(f"  period:     {info['period']}, {info['step']}")
    print(f"  grid:       {info['grid']}")
    print("  normalising: " + "; ".join(info["normalising"]))
    print("  episodes:")
    for name, verdict in info["episodes"].items():
        print(f"    {name:<22} {verdict}")
    usable = any(not v.startswith("cannot") for v in info["episodes"].values())
    if not usable:
        print(f"Nothing in {where} is usable by the course's episodes (they need t2m).", file=sys.stderr)
    return 0 if usable else 1


if __name__ == "__main__":
    sys.exit(main())
