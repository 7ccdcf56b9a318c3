"""Summary statistics of one data file: the per-file job of episode 06 (GNU parallel).

From the shell, one CSV line per file (this is what GNU parallel and ``xargs`` run)::

    python course/file_stats.py ../data/era5/small/era5_2000-01.nc          # 2 m temperature (t2m)
    python course/file_stats.py --var sst era5_2000-01.nc era5_2000-02.nc    # another variable, several files
    python course/file_stats.py --header                                    # just the CSV header
    python course/file_stats.py --regrid 0.5 era5_2000-01.nc                 # a heavier job: regrid first

From Python (this is what the process pool in the lab runs)::

    from course import file_stats
    file_stats.stats("era5_2000-01.nc")      # {'file': 'era5_2000-01.nc', 'variable': 't2m', 'count': ...}

For a NetCDF file (``.nc``) it reads one variable (packed values are decoded with their scale_factor and
add_offset; missing values are skipped) and reports how many values it found and their mean, minimum
and maximum. With ``--regrid DEG`` (``stats(path, regrid=DEG)``) it first interpolates every map to a
DEG° grid with cubic splines and summarises the fine maps: a realistic per-file job that takes
seconds, not milliseconds. For an image (``.png``) it does the same for the pixels' grey level (0 to 255), a stand-in
for whatever you do per image (a cloud mask, a vegetation index, ...).

The module imports only NumPy, netCDF4 and Pillow (and SciPy to regrid), not xarray: GNU parallel starts a new Python for
every file, and a light import keeps that start-up short. A file that cannot be read gives one line on
stderr and exit status 1; the other files are still processed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

FIELDS = ("file", "variable", "count", "mean", "min", "max")


def stats(path: str | Path, var: str = "t2m", regrid: float | None = None) -> dict:
    """Count, mean, min and max of variable ``var`` of a NetCDF file, or of the grey level of an image.

    With ``regrid`` (degrees), the maps are first interpolated to that grid spacing (``regrid_maps``).
    """
    path = Path(path)
    if path.suffix.lower() == ".png":
        values, var = _image_grey(path), "grey"
    elif regrid:
        values, var = regrid_maps(path, var, regrid), f"{var}@{regrid:g}deg"
    else:
        values = _netcdf_values(path, var)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError(f"{path.name} has no valid values of {var}")
    return {
        "file": path.name,
        "variable": var,
        "count": int(values.size),
        "mean": float(values.mean(dtype=np.float64)),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def regrid_maps(path: Path, var: str, degrees: float) -> np.ndarray:
    """Every map of ``var`` interpolated to a ``degrees``° grid (cubic splines), flattened.

    One map at a time, so memory stays at one fine map whatever the file's length. The work grows
    with the number of maps and the fineness of the target grid: seconds per file, like a real
    regridding step (CDO's remapbic, xESMF) before an analysis."""
    import netCDF4
    from scipy import ndimage

    with netCDF4.Dataset(path) as nc:
        if var not in nc.variables:
            raise ValueError(f"{path.name} has no variable {var!r}")
        lat = nc.variables["latitude"][:]
        zoom = abs(float(lat[1] - lat[0])) / degrees  # e.g. 2° -> 0.5°: 4× finer
        fine = []
        for packed in nc.variables[var]:  # one map at a time
            field = np.ma.filled(packed.astype(np.float64), np.nan)
            field[np.isnan(field)] = np.nanmean(field)  # splines cannot cross gaps
            fine.append(ndimage.zoom(field, zoom, order=3, mode="grid-wrap").astype(np.float32))
    return np.concatenate([f.ravel() for f in fine])


def _netcdf_values(path: Path, var: str) -> np.ndarray:
    import netCDF4

    with netCDF4.Dataset(path) as nc:  # decodes scale_factor/add_offset and masks _FillValue by default
        if var not in nc.variables:
            raise ValueError(f"{path.name} has no variable {var!r} (it has {', '.join(nc.variables)})")
        data = nc.variables[var][...]
    return np.ma.filled(np.ma.asarray(data, dtype=np.float64), np.nan).ravel()


def _image_grey(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.float64).ravel()


def csv_line(row: dict) -> str:
    """One CSV line; floats with all their digits (repr), so results from different runs compare exactly."""
    return ",".join(repr(row[k]) if isinstance(row[k], float) else str(row[k]) for k in FIELDS)


def parse_csv(text: str) -> list[dict]:
    """The rows printed by ``python file_stats.py`` (header lines skipped), sorted by file name."""
    rows = []
    for line in text.splitlines():
        parts = line.strip().split(",")
        if len(parts) != len(FIELDS) or parts[0] == "file":
            continue
        name, var, count, mean, lo, hi = parts
        rows.append({"file": name, "variable": var, "count": int(count),
                     "mean": float(mean), "min": float(lo), "max": float(hi)})
    return sorted(rows, key=lambda r: (r["file"], r["variable"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print count, mean, min and max of each file as CSV.")
    parser.add_argument("files", nargs="*", help="NetCDF (.nc) or image (.png) files")
    parser.add_argument("--var", default="t2m", help="NetCDF variable to summarise (default: t2m)")
    parser.add_argument("--regrid", type=float, default=None, metavar="DEG",
                        help="first regrid every map to a DEG-degree grid (a heavier job)")
    parser.add_argument("--header", action="store_true", help="print the CSV header first")
    args = parser.parse_args(argv)
    if args.header:
        print(",".join(FIELDS))
    status = 0
    for name in args.files:
        try:
            line = csv_line(stats(name, args.var, args.regrid)) + "\n"
            sys.stdout.write(line)  # the whole line in one write: jobs that share the output (xargs -P)
            sys.stdout.flush()      # cannot cut into the middle of it
        except Exception as err:  # one clear line per bad file, then carry on with the others
            print(f"file_stats: cannot summarise {name}: {err}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
