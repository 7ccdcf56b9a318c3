"""Small ERA5 files laid out as the Climate Data Store delivers them, for the own-data tests.

Two layouts, a few months on a coarse global grid, written into a folder the test gives (a tmp folder):

* ``write_cds(folder)``: CDS NetCDF since 2024: one folder per month with
  ``data_stream-oper_stepType-instant.nc`` (t2m, sst, u10, v10) and ``…-accum.nc`` (tp), dimension
  ``valid_time`` (seconds since 1970), coordinates ``number`` (scalar) and ``expver`` (per step),
  float32 with NaN fill, zlib-compressed NetCDF4, ``GRIB_*`` attributes; the invariants (lsm, z) in a
  file of their own with a one-step ``valid_time``.
* ``write_legacy(folder)``: legacy CDS NetCDF: one file per month with every variable, ``time`` in
  hours since 1900 (int32), int16 packed with ``scale_factor``/``add_offset``, ``_FillValue`` and
  ``missing_value``, NetCDF3 64-bit offset (or NetCDF4), lsm and z with a time dimension.

Options give the other conventions: latitude south to north, longitude −180…180, only some variables,
another grid or time step. The values are simple plausible weather (seeded), not the course's generator.

    python tests/era5_fixtures.py /tmp/own     # writes /tmp/own/cds and /tmp/own/legacy
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

INSTANT = ("t2m", "sst", "u10", "v10")
ACCUM = ("tp",)
META = {
    "t2m": ("2 metre temperature", "K", 167), "sst": ("Sea surface temperature", "K", 34),
    "u10": ("10 metre U wind component", "m s**-1", 165), "v10": ("10 metre V wind component", "m s**-1", 166),
    "tp": ("Total precipitation", "m", 228), "lsm": ("Land-sea mask", "(0 - 1)", 172),
    "z": ("Geopotential", "m**2 s**-2", 129),
}
PACKING = {"t2m": (0.0018, 265.0), "sst": (0.0006, 290.0), "u10": (0.0012, 0.0), "v10": (0.0012, 0.0),
           "tp": (4e-7, 0.013), "lsm": (1.6e-5, 0.5), "z": (0.17, 5000.0)}


def grid(resolution=10.0, lat_ascending=False, lon_180=False):
    lat = np.linspace(90, -90, int(round(180 / resolution)) + 1)
    lon = np.arange(int(round(360 / resolution))) * resolution
    if lat_ascending:
        lat = lat[::-1]
    if lon_180:
        lon = np.where(lon >= 180, lon - 360, lon)
        lon = np.sort(lon)
    return lat, lon


def months_of(start="2000-06", months=3):
    first = np.datetime64(start, "M")
    return [first + i for i in range(months)]


def fields(times, lat, lon, seed=0):
    """Plausible weather on the grid: t2m warm at the equator with a seasonal and daily cycle, etc.

    Computed on the grid in the course's order (90 → −90, 0 → 360) and then put in the order of
    ``lat``/``lon``, so every layout of the same grid holds the same weather at the same place."""
    lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    rows, cols = np.argsort(-lat), np.argsort(lon % 360)
    if not (np.array_equal(rows, np.arange(lat.size)) and np.array_equal(cols, np.arange(lon.size))):
        dynamic, static = fields(times, lat[rows], lon[cols] % 360, seed)
        back_rows, back_cols = np.argsort(rows), np.argsort(cols)
        return ({n: v[:, back_rows][:, :, back_cols] for n, v in dynamic.items()},
                {n: v[back_rows][:, back_cols] for n, v in static.items()})
    rng = np.random.default_rng(seed)
    la, lo = np.meshgrid(np.radians(lat), np.radians(lon), indexing="ij")
    land = (np.sin(3 * lo) * np.cos(2 * la) > 0.2).astype(np.float32)
    day = (times - np.datetime64("2000-01-01")) / np.timedelta64(1, "D")
    season = np.cos(2 * np.pi * (day - 196) / 365.25)[:, None, None] * np.sin(la)[None]
    hour = ((times - times.astype("datetime64[D]")) / np.timedelta64(1, "h"))[:, None, None]
    daily = np.cos(2 * np.pi * (hour - 14) / 24 + lo[None])
    noise = rng.normal(size=(times.size, *la.shape))
    t2m = 300 - 45 * np.sin(la)[None] ** 2 + 12 * season + 4 * land * daily + 2 * noise
    sst = np.where(land[None] > 0.5, np.nan, 302 - 30 * np.sin(la)[None] ** 2 + 2 * season + 0.3 * noise)
    u10 = 6 * np.cos(2 * la)[None] + 3 * rng.normal(size=noise.shape)
    v10 = 3 * rng.normal(size=noise.shape)
    tp = np.maximum(0, rng.gamma(0.4, 6e-4, size=noise.shape) - 2e-4)
    z = (land * 800 * np.cos(la) ** 2 * 9.80665).astype(np.float32)
    return {"t2m": t2m, "sst": sst, "u10": u10, "v10": v10, "tp": tp}, {"lsm": land, "z": z}


def _steps(month, step_hours):
    start = month.astype("datetime64[h]")
    stop = (month + 1).astype("datetime64[h]")
    return np.arange(start, stop, np.timedelta64(step_hours, "h"))


def _grib_attrs(name):
    long_name, units, param = META[name]
    return {"GRIB_paramId": np.int64(param), "GRIB_dataType": "an", "GRIB_numberOfPoints": np.int64(0),
            "GRIB_typeOfLevel": "surface", "GRIB_stepUnits": np.int64(1),
            "GRIB_stepType": "accum" if name in ACCUM else "instant", "GRIB_gridType": "regular_ll",
            "GRIB_units": units, "GRIB_name": long_name, "GRIB_shortName": name,
            "long_name": long_name, "units": units, "standard_name": "unknown"}


def _write_cds_file(path, times, lat, lon, data, netCDF4):
    path.parent.mkdir(parents=True, exist_ok=True)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.setncatts({"GRIB_centre": "ecmf", "GRIB_centreDescription": "European Centre for Medium-Range Weather Forecasts",
                      "GRIB_subCentre": np.int64(0), "Conventions": "CF-1.7",
                      "institution": "European Centre for Medium-Range Weather Forecasts",
                      "history": "GRIB to CDM+CF via cfgrib-0.9.15.0/ecCodes-2.38.3 with {\"source\": \"data.grib\"}"})
        nc.createDimension("valid_time", times.size)
        nc.createDimension("latitude", lat.size)
        nc.createDimension("longitude", lon.size)
        number = nc.createVariable("number", "i8", ())
        number.setncatts({"long_name": "ensemble member numerical id", "units": "1", "standard_name": "realization"})
        number.assignValue(0)
        vt = nc.createVariable("valid_time", "i8", ("valid_time",))
        vt.setncatts({"long_name": "time", "standard_name": "time", "units": "seconds since 1970-01-01",
                      "calendar": "proleptic_gregorian"})
        vt[:] = (times - np.datetime64("1970-01-01T00", "s")).astype("timedelta64[s]").astype(np.int64)
        for name, values in (("latitude", lat), ("longitude", lon)):
            v = nc.createVariable(name, "f8", (name,))
            v.setncatts({"units": "degrees_north" if name == "latitude" else "degrees_east",
                         "standard_name": name, "long_name": name, "stored_direction":
                         ("decreasing" if values[0] > values[-1] else "increasing") if name == "latitude" else "increasing"})
            v[:] = values
        expver = nc.createVariable("expver", str, ("valid_time",))
        expver.setncatts({"long_name": "Experiment version"})
        for i in range(times.size):
            expver[i] = "0001"
        for name, values in data.items():
            v = nc.createVariable(name, "f4", ("valid_time", "latitude", "longitude"), zlib=True, complevel=1,
                                  fill_value=np.float32(np.nan), chunksizes=(1, lat.size, lon.size))
            v.setncatts({**_grib_attrs(name), "coordinates": "number valid_time latitude longitude expver"})
            v[:] = np.asarray(values, dtype=np.float32)


def write_cds(folder, start="2000-06", months=3, step_hours=6, resolution=10.0, variables=INSTANT + ACCUM,
              invariants=True, month_folders=True, lat_ascending=False, lon_180=False, seed=0) -> Path:
    """A CDS-since-2024 download (see the module's docstring) under ``folder``; returns ``folder``."""
    import netCDF4

    folder = Path(folder)
    lat, lon = grid(resolution, lat_ascending, lon_180)
    for i, month in enumerate(months_of(start, months)):
        times = _steps(month, step_hours).astype("datetime64[s]")
        dynamic, static = fields(times, lat, lon, seed + i)
        where = folder / str(month) if month_folders else folder
        suffix = "" if month_folders else f"_{month}"
        for stream, names in (("instant", INSTANT), ("accum", ACCUM)):
            data = {n: dynamic[n] for n in names if n in variables}
            if data:
                _write_cds_file(where / f"data_stream-oper_stepType-{stream}{suffix}.nc", times, lat, lon, data, netCDF4)
    if invariants:
        when = np.array([np.datetime64(f"{start}-01T00", "s")])
        _write_cds_file(folder / "invariants" / "data_stream-oper_stepType-instant.nc", when, lat, lon,
                        {n: v[None] for n, v in static.items()}, netCDF4)
    return folder


def write_legacy(folder, start="2000-06", months=3, step_hours=6, resolution=10.0, variables=INSTANT + ACCUM,
                 invariants=True, file_format="NETCDF3_64BIT_OFFSET", lat_ascending=False, lon_180=False,
                 expver=False, seed=0) -> Path:
    """Legacy CDS NetCDF (see the module's docstring): one packed file per month under ``folder``.

    ``expver=True`` gives the last month an ``expver`` dimension (1 = ERA5, 5 = ERA5T, NaN where absent)."""
    import netCDF4

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lat, lon = grid(resolution, lat_ascending, lon_180)
    month_list = months_of(start, months)
    for i, month in enumerate(month_list):
        times = _steps(month, step_hours)
        dynamic, static = fields(times, lat, lon, seed + i)
        data = {n: dynamic[n] for n in INSTANT + ACCUM if n in variables}
        if invariants:
            data.update({n: np.broadcast_to(v, (times.size, *v.shape)) for n, v in static.items()})
        with_expver = expver and i == len(month_list) - 1
        with netCDF4.Dataset(folder / f"era5_single_levels_{month}.nc", "w", format=file_format) as nc:
            nc.setncatts({"Conventions": "CF-1.6",
                          "history": "2023-03-01 10:00:00 GMT by grib_to_netcdf-2.25.1: /opt/ecmwf/mars-client/bin/grib_to_netcdf.bin -S param -o /cache/data.nc /cache/data.grib"})
            nc.createDimension("longitude", lon.size)
            nc.createDimension("latitude", lat.size)
            if with_expver:
                nc.createDimension("expver", 2)
            nc.createDimension("time", None)
            for name, values in (("longitude", lon), ("latitude", lat)):
                v = nc.createVariable(name, "f4", (name,))
                v.setncatts({"units": "degrees_east" if name == "longitude" else "degrees_north", "long_name": name})
                v[:] = values
            if with_expver:
                ev = nc.createVariable("expver", "i4", ("expver",))
                ev.setncatts({"long_name": "expver"})
                ev[:] = [1, 5]
            t = nc.createVariable("time", "i4", ("time",))
            t.setncatts({"units": "hours since 1900-01-01 00:00:00.0", "long_name": "time", "calendar": "gregorian"})
            t[:] = ((times - np.datetime64("1900-01-01T00", "h")) / np.timedelta64(1, "h")).astype(np.int32)
            dims = ("time", "expver", "latitude", "longitude") if with_expver else ("time", "latitude", "longitude")
            for name, values in data.items():
                scale, offset = PACKING[name]
                v = nc.createVariable(name, "i2", dims, fill_value=np.int16(-32767))
                v.set_auto_maskandscale(False)
                v.setncatts({"scale_factor": np.float64(scale), "add_offset": np.float64(offset),
                             "missing_value": np.int16(-32767), "units": META[name][1], "long_name": META[name][0]})
                values = np.asarray(values, dtype=np.float64)
                packed = np.rint((values - offset) / scale)
                packed = np.where(np.isnan(packed), -32767, np.clip(packed, -32766, 32767)).astype(np.int16)
                if with_expver:  # first half of the month final ERA5, the rest ERA5T
                    half = times.size // 2
                    both = np.full((times.size, 2, *packed.shape[1:]), -32767, dtype=np.int16)
                    both[:half, 0], both[half:, 1] = packed[:half], packed[half:]
                    packed = both
                v[:] = packed
    return folder


def main(argv=None) -> int:
    out = Path((argv or sys.argv[1:] or ["own_era5"])[0])
    write_cds(out / "cds")
    write_legacy(out / "legacy")
    print(f"wrote {out / 'cds'} and {out / 'legacy'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
