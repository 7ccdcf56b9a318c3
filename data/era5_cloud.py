#!/usr/bin/env python
"""Optional: open the REAL ERA5 reanalysis from the cloud, with the course's names.

The course runs on a synthetic dataset (``era5_like.py``) because most
classrooms cannot download ERA5.  If you are online you can use the real data
instead: Google's public, analysis-ready, cloud-optimised copy of ERA5
("ARCO-ERA5", https://github.com/google-research/arco-era5) is a Zarr store
that anyone can read anonymously, no account needed::

    gs://gcp-public-data-arco-era5/ar/full_37-1h-0p25deg-chunk-1.zarr-v3

It holds hourly ERA5 from 1940 on a 0.25-degree grid (721 x 1440), latitude
90 .. -90, longitude 0 .. 359.75, one time step per Zarr chunk, with long
variable names (``2m_temperature``).  :func:`open_era5` opens it lazily with
xarray + dask, keeps the variables the course uses, renames them to ERA5's
short names (``t2m``, ``sst``, ``tp``, ``u10``, ``v10``, ``lsm``, ``z``) and
cuts out the period, region and resolution you ask for.  Nothing is downloaded
until you compute or plot.  :func:`download` saves a selection as monthly
NetCDF files named like the course's (``era5_YYYY-MM.nc``).

By default the store is read over plain HTTPS (fsspec + aiohttp, already
installed with the course).  ``gs://`` URLs work too if you ``pip install
gcsfs``.  Set ``ERA5_ZARR`` to use another copy (a mirror on your cluster, or a
local store).

Examples (online)::

    import era5_cloud
    ds = era5_cloud.open_era5("2021-07-01", "2021-07-31", area=(72, -25, 34, 45))  # Europe
    ds.t2m.mean("time").plot()

    # one year over Europe, 6-hourly, 1 degree, as monthly NetCDF files:
    python data/era5_cloud.py --start 2021-01 --end 2021-12 --area 72 -25 34 45 \\
        --stride 4 --step 6 --out data/era5/real_europe

Sizes add up fast: one hourly global 0.25-degree field is 4 MB, so a year of
one variable is 36 GB.  Start small (a region, ``stride``, ``step_hours``).
Note that the store's time axis may run past the last date actually filled in:
``ds.attrs`` may carry ``valid_time_start``/``valid_time_stop``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ARCO_ERA5 = "gs://gcp-public-data-arco-era5/ar/full_37-1h-0p25deg-chunk-1.zarr-v3"
ARCO_ERA5_HTTPS = ("https://storage.googleapis.com/gcp-public-data-arco-era5/ar/"
                   "full_37-1h-0p25deg-chunk-1.zarr-v3")

#: ARCO-ERA5 (long) names -> ERA5 short names used by the course.
SHORT_NAMES = {
    "2m_temperature": "t2m",
    "sea_surface_temperature": "sst",
    "total_precipitation": "tp",
    "10m_u_component_of_wind": "u10",
    "10m_v_component_of_wind": "v10",
    "land_sea_mask": "lsm",
    "geopotential_at_surface": "z",
}
LONG_NAMES = {short: long for long, short in SHORT_NAMES.items()}
STATIC = ("lsm", "z")
DEFAULT_VARIABLES = ("t2m", "sst", "tp", "u10", "v10", "lsm", "z")


class CloudDataError(Exception):
    """A problem with the request or the store, in one sentence."""


def default_store() -> str:
    """``$ERA5_ZARR`` if set, else the public ARCO-ERA5 store over HTTPS."""
    return os.environ.get("ERA5_ZARR") or ARCO_ERA5_HTTPS


def _storage_options(store: str) -> dict | None:
    if store.startswith("gs://"):
        try:
            import gcsfs  # noqa: F401
        except ImportError as exc:
            raise CloudDataError(
                "Reading gs:// URLs needs gcsfs (pip install gcsfs); or use the https:// "
                f"address {ARCO_ERA5_HTTPS}.") from exc
        return {"token": "anon"}
    return None


def _lon360(value: float) -> float:
    return float(value) % 360.0


def open_era5(start=None, end=None, variables=DEFAULT_VARIABLES, area=None, stride: int = 1,
              step_hours: int = 1, store: str | None = None, chunks=None):
    """Open ERA5 lazily with the course's names and layout.

    Parameters
    ----------
    start, end : str, optional
        Period, inclusive, e.g. ``"2021-07-01"`` and ``"2021-07-31"`` (or
        ``"2021-07"``); default: the whole record (large!).
    variables : sequence of str
        Short names among t2m, sst, tp, u10, v10, lsm, z.
    area : (north, west, south, east), optional
        Box in degrees as in CDS requests; west/east may be negative or cross
        the date line / Greenwich (e.g. ``(72, -25, 34, 45)`` for Europe).
    stride : int
        Keep every n-th grid point (4 gives a 1-degree grid).
    step_hours : int
        Keep time steps whose hour is a multiple of this (6 gives 00, 06, 12, 18 UTC).
    store : str, optional
        Zarr store URL or path; default :func:`default_store`.
    chunks : dict, optional
        Dask chunks; default: the store's own chunks (one time step each).

    Returns
    -------
    xarray.Dataset with coordinates time, latitude (90 .. -90), longitude
    (0 .. 360) and the requested variables; lsm and z without a time dimension.
    """
    import xarray as xr

    store = str(store or default_store())
    unknown = [v for v in variables if v not in LONG_NAMES]
    if unknown:
        raise CloudDataError(f"Unknown variable(s) {', '.join(unknown)}: choose from "
                             f"{', '.join(DEFAULT_VARIABLES)}.")
    try:
        ds = xr.open_zarr(store, chunks={} if chunks is None else chunks, consolidated=True,
                          storage_options=_storage_options(store))
    except CloudDataError:
        raise
    except Exception as exc:  # noqa: BLE001  (network, missing store, bad format)
        raise CloudDataError(f"Cannot open the ERA5 Zarr store {store}: {exc}") from exc

    missing = [LONG_NAMES[v] for v in variables if LONG_NAMES[v] not in ds]
    if missing:
        raise CloudDataError(f"The store {store} has no variable(s) {', '.join(missing)}.")
    ds = ds[[LONG_NAMES[v] for v in variables]].rename({LONG_NAMES[v]: v for v in variables})
    for name in STATIC:                     # invariant fields: drop any time axis
        if name in ds and "time" in ds[name].dims:
            ds[name] = ds[name].isel(time=0, drop=True)

    if start is not None or end is not None:
        ds = ds.sel(time=slice(start, end))     # partial dates: "2021-07" = all of July
    if step_hours > 1:
        ds = ds.isel(time=np.flatnonzero(ds.time.dt.hour.values % step_hours == 0))
    if area is not None:
        north, west, south, east = (float(a) for a in area)
        if north < south:
            raise CloudDataError(f"area must be (north, west, south, east); north {north} < south {south}.")
        ds = ds.sel(latitude=slice(north, south))
        west, east = _lon360(west), _lon360(east)
        if west <= east:
            ds = ds.sel(longitude=slice(west, east))
        else:                               # the box crosses 0 degrees east
            ds = xr.concat([ds.sel(longitude=slice(west, None)), ds.sel(longitude=slice(None, east))],
                           dim="longitude", data_vars="minimal", coords="minimal",
                           compat="override", join="outer")
    if stride > 1:
        ds = ds.isel(latitude=slice(None, None, stride), longitude=slice(None, None, stride))
    ds.attrs.update({
        "source": f"ERA5 reanalysis (ECMWF/Copernicus) via ARCO-ERA5 Zarr store {store}",
        "course_note": "Opened by data/era5_cloud.py; variables renamed to ERA5 short names.",
    })
    return ds


def download(out, start, end, variables=DEFAULT_VARIABLES, area=None, stride: int = 1,
             step_hours: int = 1, store: str | None = None) -> list[Path]:
    """Save a selection as monthly NetCDF files ``era5_YYYY-MM.nc`` in ``out``.

    Variables are packed to int16 like the course files (and ERA5 CDS
    downloads).  Months already saved are skipped, and each file is written to a
    temporary name first, so an interrupted download can simply be restarted.
    """
    from era5_like import FILL_VALUE, VARIABLES

    ds = open_era5(start, end, variables, area, stride, step_hours, store)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    months = np.unique(ds.time.values.astype("datetime64[M]"))
    for month in months:
        path = out / f"era5_{str(month)}.nc"
        written.append(path)
        if path.exists():
            continue
        part = ds.sel(time=str(month))
        encoding = {}
        for name in part.data_vars:
            if name in VARIABLES:
                meta = VARIABLES[name]
                encoding[name] = {"dtype": "int16", "scale_factor": np.float32(meta.scale_factor),
                                  "add_offset": np.float32(meta.add_offset),
                                  "_FillValue": np.int16(FILL_VALUE)}
            else:
                encoding[name] = {"dtype": "float32"}
        tmp = path.with_name(f".{path.name}.part")
        print(f"Downloading {path.name} ...", flush=True)
        part.load().to_netcdf(tmp, encoding=encoding, engine="netcdf4")
        os.replace(tmp, path)
    return written


def make_sample_store(path, hours: int = 48, resolution: float = 10.0, start="2021-07-01"):
    """Write a tiny local Zarr store laid out like ARCO-ERA5 (for offline tests and demos).

    Same variable and coordinate names, dimension order, Zarr format (v2,
    consolidated metadata), one time step per chunk and ``hours since
    1900-01-01`` time encoding as the real store, plus a 3-D ``temperature``
    on a ``level`` axis; the values are made up.
    """
    import xarray as xr

    lat = np.linspace(90, -90, int(round(180 / resolution)) + 1, dtype=np.float32)
    lon = (np.arange(int(round(360 / resolution))) * resolution).astype(np.float32)
    time = np.datetime64(start, "h") + np.arange(hours).astype("timedelta64[h]")
    rng = np.random.default_rng(0)
    shape = (hours, lat.size, lon.size)
    base = 288 - 30 * np.sin(np.radians(lat))[None, :, None] ** 2
    land = (np.abs(lat)[:, None] < 60) & ((lon[None, :] % 120) < 40)
    fields = {
        "2m_temperature": (base + rng.normal(0, 2, shape), "K", "2 metre temperature"),
        "sea_surface_temperature": (np.where(land, np.nan, base + 1 + 0 * rng.normal(0, 1, shape)),
                                    "K", "Sea surface temperature"),
        "total_precipitation": (np.maximum(rng.normal(0, 4e-4, shape), 0), "m", "Total precipitation"),
        "10m_u_component_of_wind": (rng.normal(0, 5, shape), "m s**-1", "10 metre U wind component"),
        "10m_v_component_of_wind": (rng.normal(0, 5, shape), "m s**-1", "10 metre V wind component"),
        "mean_sea_level_pressure": (rng.normal(101325, 800, shape), "Pa", "Mean sea level pressure"),
    }
    data_vars = {name: (("time", "latitude", "longitude"), values.astype(np.float32),
                        {"units": units, "long_name": long_name})
                 for name, (values, units, long_name) in fields.items()}
    data_vars["land_sea_mask"] = (("latitude", "longitude"), land.astype(np.float32),
                                  {"units": "(0 - 1)", "long_name": "Land-sea mask"})
    data_vars["geopotential_at_surface"] = (("latitude", "longitude"),
                                            (land * 9.80665 * 500).astype(np.float32),
                                            {"units": "m**2 s**-2", "long_name": "Geopotential"})
    level = np.array([500, 850, 1000], dtype=np.int64)
    upper_air = np.broadcast_to(base[:, None] - 20, (hours, level.size, lat.size, lon.size))
    data_vars["temperature"] = (("time", "level", "latitude", "longitude"),
                                upper_air.astype(np.float32), {"units": "K", "long_name": "Temperature"})
    ds = xr.Dataset(data_vars, coords={"time": time, "latitude": lat, "longitude": lon,
                                       "level": level})
    ds.attrs.update({"valid_time_start": str(time[0]), "valid_time_stop": str(time[-1]),
                     "comment": "Made-up sample with the ARCO-ERA5 layout (data/era5_cloud.py)"})
    encoding = {name: {"chunks": (1,) + ds[name].shape[1:]} for name in ds.data_vars
                if "time" in ds[name].dims}
    encoding["time"] = {"units": "hours since 1900-01-01", "dtype": "int64"}
    ds.to_zarr(path, mode="w", zarr_format=2, consolidated=True, encoding=encoding)
    return Path(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="era5_cloud.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", required=True, help="first month or day, e.g. 2021-01")
    parser.add_argument("--end", required=True, help="last month or day (inclusive), e.g. 2021-12")
    parser.add_argument("--out", required=True, help="directory for era5_YYYY-MM.nc files")
    parser.add_argument("--variables", nargs="+", default=list(DEFAULT_VARIABLES))
    parser.add_argument("--area", nargs=4, type=float, metavar=("N", "W", "S", "E"))
    parser.add_argument("--stride", type=int, default=1, help="keep every n-th grid point")
    parser.add_argument("--step", type=int, default=1, help="keep every n-th hour")
    parser.add_argument("--store", help=f"Zarr store (default {ARCO_ERA5_HTTPS})")
    args = parser.parse_args(argv)
    try:
        files = download(args.out, args.start, args.end, args.variables, args.area, args.stride,
                         args.step, args.store)
    except (CloudDataError, OSError) as exc:
        print(f"era5_cloud: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001  (one sentence, not a traceback)
        print(f"era5_cloud: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("era5_cloud: error: Interrupted; run the same command again to continue.", file=sys.stderr)
        return 130
    print(f"{len(files)} monthly files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
