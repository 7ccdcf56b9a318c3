#!/usr/bin/env python
"""Generate the course's ERA5-like dataset: synthetic, but shaped like the real thing.

Real ERA5 reanalysis data cannot be downloaded in most classrooms, so the course
makes its own.  The files look like what researchers get from the Copernicus
Climate Data Store (CDS): one NetCDF file per month holding every variable, on a
regular latitude/longitude grid, with ERA5's short variable names, CF metadata
and ERA5-style int16 packing.  The numbers are plausible weather, not real
weather: a climatology that follows latitude, land/sea and altitude, seasonal
and daily cycles, moving weather systems, rain, wind, a slow warming trend and
the occasional heat wave.

Sizes (``--size``)
------------------
=========  ======  ========  ================  =======  ==========================
name       grid    step      period            files    size on disk
=========  ======  ========  ================  =======  ==========================
small      2.0 deg 12-hourly 2000 (1 year)     12       about 120 MB, a few seconds
workshop   1.0 deg 6-hourly  2000-2002         36       about 2.9 GB
large      0.5 deg hourly    2000-2001         24       about 46 GB (> RAM)
<N>GB      picked by N: below 1 GB the small grid, below 16 GB the workshop
           grid, else the large grid; as many months as fit in N GB.
=========  ======  ========  ================  =======  ==========================

Command line
------------
::

    python data/era5_like.py                          # small, into data/era5/small/
    python data/era5_like.py --size workshop --out /scratch/era5 --workers 8
    python data/era5_like.py --size 30GB --out /scratch/era5_30GB
    python data/era5_like.py --check data/era5/small  # names missing/damaged files
    python data/era5_like.py --size small --images    # also the PNG map folder

From Python (what the labs do through ``course.dataset()``)::

    import era5_like
    folder = era5_like.ensure_dataset("small")        # generated on first use
    problems = era5_like.check(folder)                # [] when all is well
    pngs = era5_like.ensure_images("small")

How it scales
-------------
Each month is an independent task, written by a pool of worker processes (all
cores by default) time-chunk by time-chunk, so memory stays small whatever the
size.  Every random number comes from a seed built from (seed, field, day), so
the output is bit-for-bit identical for any number of workers.  Files are
written under a temporary name and renamed when complete; ``manifest.json``
records each finished file's size and SHA-256, so an interrupted run resumes
where it stopped and ``--check`` can name any missing, truncated or corrupt file.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

__all__ = [
    "SIZES", "Spec", "DatasetError", "parse_size", "default_directory", "ensure_dataset",
    "generate", "check", "ensure_images", "make_images", "main",
]

GENERATOR_VERSION = "1.2"   # bump when the output changes: old datasets get regenerated
HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE / "era5"          # data/era5/<size>/  (gitignored)
DEFAULT_SEED = 0
MANIFEST = "manifest.json"
LOCK = ".era5_like.lock"
PARTIAL_SUFFIX = ".part"              # temporary files: .<name>.part
EPOCH = np.datetime64("1900-01-01T00", "h")   # ERA5's time origin
HOURS_PER_YEAR = 365.2422 * 24
FILL_VALUE = -32767                   # ERA5's _FillValue for packed variables
LAND_THRESHOLD = 0.5                  # ERA5: lsm > 0.5 is land; sst is missing there
LAND_SHAPEFILE = HERE / "natural_earth/shapefiles/natural_earth/physical/ne_110m_land.shp"


class DatasetError(Exception):
    """A problem the user can fix, described in one sentence."""


# --------------------------------------------------------------------------------------
# Sizes
# --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Spec:
    """What to generate: grid spacing, time step and the months covered."""

    name: str               # "small", "workshop", "large" or e.g. "30GB"
    resolution: float       # grid spacing in degrees
    step_hours: int         # 6 = 6-hourly, 1 = hourly
    start: tuple            # (year, month) of the first file
    months: int             # number of monthly files

    @property
    def nlat(self) -> int:
        return int(round(180 / self.resolution)) + 1

    @property
    def nlon(self) -> int:
        return int(round(360 / self.resolution))

    def month_list(self) -> list[tuple[int, int]]:
        year, month = self.start
        out = []
        for i in range(self.months):
            y, m = divmod((month - 1) + i, 12)
            out.append((year + y, m + 1))
        return out

    def file_names(self) -> list[str]:
        return [file_name(y, m) for y, m in self.month_list()]

    def steps(self, year: int, month: int) -> np.ndarray:
        """Time stamps of one month, in hours since 1900-01-01."""
        first, last = month_hours(year, month)
        return np.arange(first, last, self.step_hours, dtype=np.int64)

    def expected_bytes(self, year: int, month: int) -> int:
        """Approximate size of one file (for the disk-space check and progress)."""
        npts = self.nlat * self.nlon
        nt = len(self.steps(year, month))
        return 2 * nt * npts * len(VARIABLES) + 8 * npts + 4 * (nt + self.nlat + self.nlon) + 40_000

    def total_bytes(self) -> int:
        return sum(self.expected_bytes(y, m) for y, m in self.month_list())

    def as_dict(self) -> dict:
        return {"name": self.name, "resolution": self.resolution, "step_hours": self.step_hours,
                "start": f"{self.start[0]:04d}-{self.start[1]:02d}", "months": self.months}


SIZES = {
    "small": Spec("small", 2.0, 12, (2000, 1), 12),
    "workshop": Spec("workshop", 1.0, 6, (2000, 1), 36),
    "large": Spec("large", 0.5, 1, (2000, 1), 24),
}

# Custom sizes ("<N>GB"): the grid is chosen by N, then the number of months.
_TIERS = [(16e9, SIZES["large"]), (1e9, SIZES["workshop"]), (0, SIZES["small"])]
_MAX_MONTHS = 1200


def parse_size(size) -> Spec:
    """Turn ``"small"``, ``"workshop"``, ``"large"``, ``"30GB"`` or ``"5MB"`` into a Spec."""
    text = str(size).strip()
    if text.lower() in SIZES:
        return SIZES[text.lower()]
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([GM])B?", text, flags=re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise DatasetError(f"Unknown size {text!r}: use small, workshop, large or an amount "
                           f"such as 10GB or 500MB.")
    target = float(match.group(1)) * (1e9 if match.group(2).upper() == "G" else 1e6)
    base = next(spec for threshold, spec in _TIERS if target >= threshold)
    per_month = base.total_bytes() / base.months
    months = max(1, int(round(target / per_month)))
    if months > _MAX_MONTHS:
        raise DatasetError(f"Size {text} is too large: at most {_MAX_MONTHS} months "
                           f"(about {_MAX_MONTHS * per_month / 1e9:.0f} GB) can be generated.")
    name = f"{match.group(1)}{match.group(2).upper()}B"
    return dataclasses.replace(base, name=name, months=months)


def file_name(year: int, month: int) -> str:
    """Monthly file name; names sort in time order."""
    return f"era5_{year:04d}-{month:02d}.nc"


def month_hours(year: int, month: int) -> tuple[int, int]:
    """First hour of the month and first hour of the next, in hours since 1900-01-01."""
    start = np.datetime64(f"{year:04d}-{month:02d}", "M")
    first = (start.astype("datetime64[h]") - EPOCH).astype(np.int64)
    last = ((start + 1).astype("datetime64[h]") - EPOCH).astype(np.int64)
    return int(first), int(last)


def default_directory(size="small") -> Path:
    """``$COURSE_DATA_DIR/<size>`` if that variable is set, else ``data/era5/<size>``."""
    spec = parse_size(size)
    root = os.environ.get("COURSE_DATA_DIR")
    return (Path(root).expanduser() if root else DEFAULT_ROOT) / spec.name


# --------------------------------------------------------------------------------------
# Variables: ERA5 short names, CF metadata and int16 packing
# --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Variable:
    long_name: str
    standard_name: str
    units: str
    scale_factor: float   # powers of two, so decoding is exact (0 m of rain is exactly 0)
    add_offset: float


VARIABLES = {
    "t2m": Variable("2 metre temperature", "air_temperature", "K", 2.0**-8, 260.0),
    "sst": Variable("Sea surface temperature", "sea_surface_temperature", "K", 2.0**-10, 290.0),
    "tp": Variable("Total precipitation", "lwe_thickness_of_precipitation_amount", "m",
                   2.0**-18, 32766 * 2.0**-18),
    "u10": Variable("10 metre U wind component", "eastward_wind", "m s**-1", 2.0**-9, 0.0),
    "v10": Variable("10 metre V wind component", "northward_wind", "m s**-1", 2.0**-9, 0.0),
}


def pack(values: np.ndarray, var: Variable, missing: np.ndarray | None = None) -> np.ndarray:
    """Pack floats into int16 the way ERA5 does: value = packed * scale_factor + add_offset."""
    packed = np.rint((values - np.float32(var.add_offset)) * np.float32(1 / var.scale_factor))
    np.clip(packed, -32766, 32767, out=packed)
    packed = packed.astype(np.int16)
    if missing is not None:
        packed[..., missing] = FILL_VALUE
    return packed


# --------------------------------------------------------------------------------------
# Geography: land-sea mask from Natural Earth, orography from Gaussian mountains
# --------------------------------------------------------------------------------------

def grid(spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes 90 .. -90 and longitudes 0 .. 360-dx, as ERA5 stores them (float32)."""
    lat = np.linspace(90, -90, spec.nlat)
    lon = np.arange(spec.nlon) * spec.resolution
    return lat, lon


def _land_edges() -> np.ndarray:
    """All edges (x0, y0, x1, y1) of the shipped Natural Earth land polygons."""
    import pyogrio.raw
    import shapely

    if not LAND_SHAPEFILE.exists():
        raise DatasetError(f"The Natural Earth land layer {LAND_SHAPEFILE} is missing; "
                           f"run python data/natural_earth/make_layers.py to rebuild it.")
    _, _, wkb, _ = pyogrio.raw.read(LAND_SHAPEFILE)
    rings = shapely.get_rings(shapely.get_parts(shapely.from_wkb(wkb)))
    edges = []
    for ring in rings:
        xy = shapely.get_coordinates(ring)
        edges.append(np.hstack([xy[:-1], xy[1:]]))
    return np.vstack(edges)


def land_fraction(lat: np.ndarray, lon: np.ndarray, resolution: float) -> np.ndarray:
    """Fraction of each grid cell covered by land (ERA5's ``lsm``), 0 .. 1.

    Each cell is sampled on a k x k sub-grid (about 0.25 degree apart); a sample
    is land if a horizontal ray from it crosses the polygon outlines an odd
    number of times (the even-odd rule, which also makes lakes such as the
    Caspian Sea water).
    """
    edges = _land_edges()
    x0, y0, x1, y1 = edges.T
    k = int(min(20, max(2, round(resolution / 0.25))))
    offsets = ((np.arange(k) + 0.5) / k - 0.5) * resolution
    ys = np.clip((lat[:, None] + offsets[None, :]).ravel(), -90, 90)
    xs = ((lon[:, None] + offsets[None, :]).ravel() + 180) % 360 - 180
    inside = np.zeros((ys.size, xs.size), dtype=bool)
    for row, y in enumerate(ys):
        crosses = (y0 <= y) != (y1 <= y)
        xc = x0[crosses] + (y - y0[crosses]) * (x1[crosses] - x0[crosses]) / (y1[crosses] - y0[crosses])
        inside[row] = np.searchsorted(np.sort(xc), xs) % 2 == 1
    frac = inside.reshape(lat.size, k, lon.size, k).mean(axis=(1, 3))
    return frac.astype(np.float32)


# Mountain ranges as (latitude, longitude, radius in degrees, height in metres).
# A chain of round bumps is enough to put the Himalaya, Andes, Rockies,
# Antarctica and Greenland where they belong.
MOUNTAINS = [
    (33, 88, 6, 4300), (28.5, 84, 2, 1800), (37, 75, 3, 3000), (42, 80, 2.5, 2000),
    (47, 100, 5, 1500), (26, 100, 4, 1800), (50, 88, 3, 1500), (33, 55, 6, 1300),
    (39, 35, 4, 1000), (42.5, 44, 2, 1600), (46.5, 10, 2, 1700), (63, 12, 3, 800),
    (32, -5, 2.5, 1400), (23, 6, 3, 1000), (21, 18, 2.5, 1300), (9, 39, 4, 2200),
    (0, 37, 5, 1400), (-28, 27, 6, 1300), (-19, 47, 3, 1200), (22, 45, 8, 700),
    (18, 77, 5, 500), (65, 100, 8, 500), (65, 140, 6, 900), (36, 138, 2, 1000),
    (-5, 142, 2.5, 2300), (1, 115, 2, 800), (-28, 150, 4, 700), (-43, 171, 2, 1400),
    (5, -74, 3, 2500), (-5, -78, 3, 2800), (-15, -71, 3.5, 4000), (-22, -67, 4, 4000),
    (-30, -69, 3, 3300), (-40, -71, 2.5, 1800), (-50, -73, 2.5, 1200), (-18, -45, 6, 800),
    (5, -60, 3, 500), (55, -123, 5, 1500), (45, -112, 6, 2000), (38, -108, 5, 2400),
    (30, -105, 4, 1700), (22, -102, 5, 2000), (62, -150, 4, 1500), (38, -80, 3, 600),
    (72, -40, 7, 2800), (-82, 75, 14, 3200), (-80, -100, 8, 1800), (-72, 20, 10, 2500),
]


def great_circle(lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float) -> np.ndarray:
    """Distance in degrees from (lat0, lon0) to every grid point (lat column, lon row)."""
    phi, phi0 = np.radians(lat)[:, None], np.radians(lat0)
    dlon = np.radians(lon[None, :] - lon0)
    cosd = np.sin(phi) * np.sin(phi0) + np.cos(phi) * np.cos(phi0) * np.cos(dlon)
    return np.degrees(np.arccos(np.clip(cosd, -1, 1)))


def orography(lat: np.ndarray, lon: np.ndarray, lsm: np.ndarray) -> np.ndarray:
    """Surface height in metres: 300 m of plain plus mountains, on land only."""
    height = np.full(lsm.shape, 300.0)
    for lat0, lon0, radius, top in MOUNTAINS:
        height += top * np.exp(-0.5 * (great_circle(lat, lon, lat0, lon0) / radius) ** 2)
    return (height * lsm).astype(np.float32)


def static_fields(spec: Spec) -> dict:
    """Land-sea mask, orography and the coarse land mask used to place heat waves."""
    lat, lon = grid(spec)
    lsm = land_fraction(lat, lon, spec.resolution)
    coarse_land = land_fraction(COARSE_LAT, COARSE_LON, COARSE_RES)
    return {"lsm": lsm, "height": orography(lat, lon, lsm), "coarse_land": coarse_land}


# --------------------------------------------------------------------------------------
# Weather: smooth random fields on a coarse 2.5-degree grid that persist and move
# --------------------------------------------------------------------------------------
# Each "noise field" is a sequence of random maps ("anchors"), one per day (or per
# 8 days for the slow ocean).  Each anchor is white noise smoothed in space to the
# size of weather systems.  Consecutive anchors follow an AR(1) process, so
# today's weather remembers yesterday's (correlation rho), and they drift east in
# mid-latitudes (west in the tropics).  Between anchors the field is blended
# smoothly.  Because the random numbers for anchor n come from the seed
# (seed, field, n), any month can be generated alone, in any order, by any worker.

COARSE_RES = 2.5
COARSE_LAT = np.linspace(90, -90, 73)
COARSE_LON = np.arange(144) * COARSE_RES
_K = np.arange(73)                    # zonal wavenumbers of a 144-point rfft


@dataclasses.dataclass(frozen=True)
class Noise:
    field_id: int       # part of the random seed
    rho: float          # correlation between consecutive anchors
    spacing_days: float # days between anchors (0.25: every 6 hours)
    sigma_deg: float    # spatial smoothing (size of the features)


NOISE = {
    "pressure": Noise(1, 0.75, 1, 6.0),      # cyclones and anticyclones -> wind; fronts -> rain
    "temperature": Noise(2, 0.85, 1, 5.0),   # warm and cold spells
    "rain": Noise(3, 0.6, 1, 4.0),           # rain areas: a day or two, a few hundred km
    "ocean": Noise(4, 0.85, 8, 8.0),         # sea-surface anomalies: slow
    "showers": Noise(5, 0.3, 0.25, 2.5),     # showers: new ones every few hours, small
}


def hemisphere(lat) -> np.ndarray:
    """Smooth sign of the latitude: -1 in the south, +1 in the north, 0 at the equator."""
    return np.tanh(np.asarray(lat) / 8.0)


def drift_speed(lat: np.ndarray) -> np.ndarray:
    """Eastward drift of weather systems in radians of longitude per day."""
    deg_per_day = 7 * np.exp(-0.5 * ((np.abs(lat) - 45) / 25) ** 2) - 2 * np.exp(-0.5 * (lat / 15) ** 2)
    return np.radians(deg_per_day)


class NoiseField:
    """One AR(1) weather field on the coarse grid; see the comment above."""

    def __init__(self, noise: Noise, seed: int):
        self.noise, self.seed = noise, seed
        cells = noise.sigma_deg / COARSE_RES
        i = np.arange(COARSE_LAT.size)
        smooth_lat = np.exp(-0.5 * ((i[:, None] - i[None, :]) / cells) ** 2)
        self.smooth_lat = smooth_lat / smooth_lat.sum(axis=1, keepdims=True)
        # Smoothing along longitude in spectral space, wider (in degrees of
        # longitude) towards the poles so features keep their size in km.
        coslat = np.maximum(np.cos(np.radians(COARSE_LAT)), 0.05)
        width = np.minimum(np.radians(noise.sigma_deg) / coslat, np.radians(60))
        filt = np.exp(-0.5 * (_K[None, :] * width[:, None]) ** 2)
        # Near the poles only the zonal mean survives, so the value at 90N/90S
        # is the same at every longitude, as it must be.
        polar = np.minimum(1, np.cos(np.radians(COARSE_LAT)) / np.cos(np.radians(75)))
        filt *= np.abs(polar[:, None]) ** _K[None, :]
        # Scale so the smoothed noise has unit variance at every latitude.
        var_lat = (self.smooth_lat ** 2).sum(axis=1)
        var_lon = (filt[:, 0] ** 2 + 2 * (filt[:, 1:-1] ** 2).sum(axis=1) + filt[:, -1] ** 2) / 144
        self.filter = filt / np.sqrt(var_lat * var_lon)[:, None]
        self.speed = drift_speed(COARSE_LAT)[:, None]          # (lat, 1)
        days = noise.spacing_days
        self.step_rotation = np.exp(-1j * _K[None, :] * self.speed * days)
        self.spinup = int(math.ceil(math.log(0.01) / math.log(noise.rho)))
        self.first_anchor, self.anchors = 0, np.empty((0, COARSE_LAT.size, _K.size), complex)

    def innovation(self, n: int) -> np.ndarray:
        """Fresh smooth random map for anchor n, as zonal Fourier coefficients."""
        # Seeded by (seed, field, anchor): the same map whoever computes it, whenever.
        # (The offset keeps the number positive, as seeds must be, back to the 1600s.)
        rng = np.random.default_rng([self.seed, self.noise.field_id, n + 100_000])
        white = rng.standard_normal((COARSE_LAT.size, COARSE_LON.size))
        smooth = np.einsum("ij,jk->ik", self.smooth_lat, white)
        return np.fft.rfft(smooth, axis=1) * self.filter

    def prepare(self, hours: np.ndarray) -> None:
        """Compute the anchors needed for these time stamps (after a spin-up)."""
        first, last = self.anchor_index(hours.min()), self.anchor_index(hours.max()) + 1
        rho = self.noise.rho
        state = self.innovation(first - self.spinup)
        anchors = []
        for n in range(first - self.spinup + 1, last + 1):
            state = rho * state * self.step_rotation + math.sqrt(1 - rho**2) * self.innovation(n)
            if n >= first:
                anchors.append(state)
        self.first_anchor, self.anchors = first, np.stack(anchors)

    def anchor_index(self, hours) -> np.ndarray:
        return np.floor_divide(hours, 24 * self.noise.spacing_days).astype(np.int64)

    def spectra(self, hours: np.ndarray) -> np.ndarray:
        """Zonal Fourier coefficients of the field at each time, shape (time, lat, k).

        The field at time t blends the anchor before t (drifted forward) with
        the anchor after t (drifted back), weighted by how far t lies between them.
        """
        days = self.noise.spacing_days
        n = self.anchor_index(hours)
        theta = hours / (24.0 * days) - n                           # 0..1 between anchors
        # Only a few distinct positions between anchors occur (4 a day for
        # 6-hourly data): compute the drift factors once for each.
        positions, which = np.unique(theta, return_inverse=True)
        pos = positions[:, None, None]
        weight = pos**2 * (3 - 2 * pos)                             # smoothstep
        rho = self.noise.rho
        norm = np.sqrt((1 - weight) ** 2 + weight**2 + 2 * weight * (1 - weight) * rho)
        forward = (1 - weight) / norm * np.exp(-1j * _K * self.speed * (pos * days))
        backward = weight / norm * np.exp(1j * _K * self.speed * ((1 - pos) * days))
        i = n - self.first_anchor
        return self.anchors[i] * forward[which] + self.anchors[i + 1] * backward[which]

    @staticmethod
    def to_grid(spectra: np.ndarray) -> np.ndarray:
        return np.fft.irfft(spectra, n=COARSE_LON.size, axis=-1)


class Upsampler:
    """Bilinear interpolation from the coarse 2.5-degree grid to the output grid."""

    def __init__(self, lat: np.ndarray, lon: np.ndarray):
        pos = (90 - lat) / COARSE_RES
        self.i0 = np.minimum(np.floor(pos).astype(int), COARSE_LAT.size - 2)
        self.wy = (pos - self.i0).astype(np.float32)[:, None]
        pos = lon / COARSE_RES
        self.j0 = np.floor(pos).astype(int) % COARSE_LON.size
        self.j1 = (self.j0 + 1) % COARSE_LON.size
        self.wx = (pos - np.floor(pos)).astype(np.float32)

    def __call__(self, coarse: np.ndarray) -> np.ndarray:
        coarse = coarse.astype(np.float32)
        rows = coarse[:, self.i0, :] * (1 - self.wy) + coarse[:, self.i0 + 1, :] * self.wy
        return rows[..., self.j0] * (1 - self.wx) + rows[..., self.j1] * self.wx


# --------------------------------------------------------------------------------------
# Climate: the smooth, predictable part
# --------------------------------------------------------------------------------------

# Zonal-mean sea-level 2 m temperature (K) by latitude.
_T_TABLE = ([-90, -75, -60, -45, -30, -15, 0, 15, 30, 45, 60, 75, 90],
            [252, 258, 274, 285, 294, 300, 302, 301, 296, 287, 276, 264, 258])
# Climatological 10 m winds (m/s) by latitude: trade winds, westerlies, polar easterlies.
_U_TABLE = ([-90, -75, -65, -50, -35, -15, 0, 15, 30, 45, 60, 75, 90],
            [0, -2, -1, 8, 3, -6, -3, -6, -1, 6, 3, -1, 0])
_V_TABLE = ([-90, -60, -40, -25, -15, 0, 15, 25, 40, 60, 90],
            [0, 0, -1, 0, 3, 0, -3, 0, 1, 0, 0])

LAPSE_RATE = 0.0065          # K per metre
OMEGA_YEAR = 2 * np.pi / 365.2422


def _ramp(x, lo, hi):
    return np.clip((np.asarray(x) - lo) / (hi - lo), 0, 1)


def _gauss(x, mu, sigma):
    return np.exp(-0.5 * ((np.asarray(x) - mu) / sigma) ** 2)


def _heat_wave_events(seed: int, year: int, month: int, coarse_land: np.ndarray) -> list[dict]:
    """Heat waves starting in one month: random, reproducible, over summer land."""
    rng = np.random.default_rng([seed, 77, year, month])
    first, last = month_hours(year, month)
    events = []
    for north in (True, False):
        summer = month in (5, 6, 7, 8, 9) if north else month in (11, 12, 1, 2, 3)
        if not summer:
            continue
        for _ in range(rng.poisson(1.5 if north else 1.0)):
            lo, hi = (25, 62) if north else (-45, -15)
            for _attempt in range(200):      # rejection sampling: centre on land
                lat0, lon0 = rng.uniform(lo, hi), rng.uniform(0, 360)
                i = int(round((90 - lat0) / COARSE_RES))
                j = int(round(lon0 / COARSE_RES)) % COARSE_LON.size
                if coarse_land[i, j] > 0.5:
                    break
            events.append({
                "lat": lat0, "lon": lon0, "radius": rng.uniform(5, 12),
                "amplitude": rng.uniform(4, 9), "start": rng.uniform(first, last),
                "duration": rng.uniform(4, 12) * 24,
            })
    return events


class MonthGenerator:
    """All fields of one month, produced a chunk of time steps at a time."""

    def __init__(self, spec: Spec, seed: int, static: dict, year: int, month: int):
        self.spec, self.seed = spec, seed
        self.hours = spec.steps(year, month)
        lat, lon = grid(spec)
        self.lat, self.lon = lat, lon
        f = static["lsm"].astype(np.float64)
        self.lsm = static["lsm"]
        self.height = static["height"]
        self.ocean_missing = static["lsm"] > LAND_THRESHOLD
        phi = lat[:, None]
        sinphi = np.abs(np.sin(np.radians(phi)))
        h = hemisphere(phi)
        f32 = np.float32

        # Annual mean t2m: latitude, land/sea, altitude (lapse rate).
        t_sea_level = np.interp(lat, *_T_TABLE)[:, None]
        land_adjust = 2.5 * _gauss(np.abs(phi), 25, 8) - 6 * _ramp(phi, 45, 70)   # deserts, Siberia
        self.t_mean = f32(t_sea_level + f * land_adjust - LAPSE_RATE * self.height)

        # Seasonal cycle: bigger over land and towards the poles, opposite phase
        # in the two hemispheres; the ocean lags the land by about a month.
        amp_land = 1 + 17 * sinphi**1.5
        amp_ocean = 0.5 + 4 * sinphi**2 + 10 * _ramp(np.abs(phi), 62, 85)        # sea ice
        lag_land, lag_ocean = 18 * OMEGA_YEAR, 45 * OMEGA_YEAR
        self.season_cos = f32(-h * (f * amp_land * np.cos(lag_land) + (1 - f) * amp_ocean * np.cos(lag_ocean)))
        self.season_sin = f32(-h * (f * amp_land * np.sin(lag_land) + (1 - f) * amp_ocean * np.sin(lag_ocean)))

        # Diurnal cycle (local solar time), much larger over land, largest over deserts.
        self.diurnal_land = f32(f * (4.0 + 3.0 * _gauss(np.abs(phi), 23, 8)))
        self.diurnal_ocean = f32((1 - f) * 0.35)
        local_phase = 2 * np.pi * (lon / 15.0 - 15.0) / 24.0        # peak at 15:00 local
        self.lon_cos, self.lon_sin = f32(np.cos(local_phase)), f32(np.sin(local_phase))

        # Weather amplitude, warming trend.
        self.t_sigma = f32(f * (1.5 + 3.5 * sinphi) + (1 - f) * (0.5 + 1.5 * sinphi))
        arctic = 1 + 1.5 * np.clip(np.sin(np.radians(phi)), 0, 1) ** 3
        self.trend = f32((0.03 * f + 0.015 * (1 - f)) * arctic)                  # K per year

        # Sea surface temperature (by latitude; computed over land too, then
        # marked missing there).  Small seasonal cycle, two months behind the sun.
        self.sst_mean = f32(np.maximum(t_sea_level + 0.8, 271.46))
        amp_sst = 0.3 + 3.5 * sinphi**2 * (1 - _ramp(np.abs(phi), 60, 75))
        lag_sst = 60 * OMEGA_YEAR
        self.sst_cos = f32(-h * amp_sst * np.cos(lag_sst))
        self.sst_sin = f32(-h * amp_sst * np.sin(lag_sst))
        self.sst_sigma = f32(0.4 + 0.4 * sinphi)

        # Rain: where a latent "wetness" (its own weather fields, see _coarse_weather)
        # plus a climatological offset (see _rain_offset) is above zero.  Static parts:
        self.land = f32(f)
        self.rain_dry = f32(-0.9 * f * _gauss(np.abs(phi), 24, 7)                  # deserts
                            - 0.8 * f * _ramp(-phi, 65, 80))                     # Antarctic plateau
        self.lon_cos17 = f32(np.cos(2 * np.pi * (lon / 15.0 - 17.0) / 24.0))    # land: 17:00 local
        self.lon_sin17 = f32(np.sin(2 * np.pi * (lon / 15.0 - 17.0) / 24.0))

        # Wind: climatology by latitude, slowed down over rough land.
        self.u_mean = f32(np.interp(lat, *_U_TABLE)[:, None])
        self.v_mean = f32(np.interp(lat, *_V_TABLE)[:, None])
        self.roughness = f32(1 - 0.4 * f)

        # Heat waves that started this month or the month before.
        prev = (year - 1, 12) if month == 1 else (year, month - 1)
        self.heat_waves = []
        for event in (_heat_wave_events(seed, *prev, static["coarse_land"])
                      + _heat_wave_events(seed, year, month, static["coarse_land"])):
            if event["start"] < self.hours[-1] and event["start"] + event["duration"] > self.hours[0]:
                blob = np.exp(-0.5 * (great_circle(lat, lon, event["lat"], event["lon"]) / event["radius"]) ** 2)
                self.heat_waves.append((event, f32(blob * f * event["amplitude"])))

        self.noise = {name: NoiseField(noise, seed) for name, noise in NOISE.items()}
        for field in self.noise.values():
            field.prepare(self.hours)
        self.upsample = Upsampler(lat, lon)
        # About 4 MB per float32 field on the output grid, and at most 32 steps
        # (the coarse weather grid needs memory too): a few tens of MB in all.
        self.chunk_steps = int(max(1, min(len(self.hours), 32, 1_000_000 // lat.size // lon.size)))

    def chunks(self):
        """Yield (first index, fields) for consecutive chunks of time steps."""
        for start in range(0, len(self.hours), self.chunk_steps):
            yield start, self.fields(self.hours[start:start + self.chunk_steps])

    def _coarse_weather(self, hours: np.ndarray) -> dict:
        """Weather anomalies on the coarse grid for these time stamps."""
        lat = COARSE_LAT[None, :, None]
        h = hemisphere(lat)
        pressure_spec = self.noise["pressure"].spectra(hours)
        pressure = NoiseField.to_grid(pressure_spec)
        # Winds blow along the isobars around lows and highs (geostrophic-like),
        # anticlockwise around lows in the north, clockwise in the south.
        scale = np.radians(NOISE["pressure"].sigma_deg) * math.sqrt(2)
        dp_dlon = NoiseField.to_grid(1j * _K * pressure_spec)
        dp_dlat = -np.gradient(pressure, axis=1) / np.radians(COARSE_RES)
        coslat = np.maximum(np.cos(np.radians(lat)), 0.1)
        u_anom = -5.0 * h * dp_dlat * scale
        v_anom = 5.0 * h * dp_dlon / coslat * scale
        temperature = NoiseField.to_grid(self.noise["temperature"].spectra(hours))
        ocean = NoiseField.to_grid(self.noise["ocean"].spectra(hours))
        # Wetness: unit variance at every latitude.  Rain has its own fields (rain
        # areas and showers), so it is not a function of the temperature or the
        # winds; outside the tropics it also comes with low pressure (fronts), which
        # sets the winds only through its gradient.  (Summed as spectra: one FFT.)
        fronts = 0.7 * _ramp(np.abs(COARSE_LAT), 15, 35)[:, None]
        wetness = NoiseField.to_grid(
            (0.75 * self.noise["rain"].spectra(hours) + 0.65 * self.noise["showers"].spectra(hours)
             - fronts * pressure_spec) / np.sqrt(0.75**2 + 0.65**2 + fronts**2))
        return {
            # Poleward wind brings warm air: part of the temperature anomaly.
            "t2m": 0.8 * temperature + 0.6 * h * np.clip(v_anom / 5.0, -3, 3),
            "sst": ocean,
            "wetness": wetness,
            "u10": u_anom,
            "v10": v_anom,
        }

    def fields(self, hours: np.ndarray) -> dict:
        """Float32 fields (time, lat, lon) for the given time stamps."""
        f32 = np.float32
        weather = {name: self.upsample(field) for name, field in self._coarse_weather(hours).items()}
        days = (hours - _HOURS_2000) / 24.0
        years = f32(days / 365.2422)[:, None, None]
        season_c = f32(np.cos(OMEGA_YEAR * days))[:, None, None]
        season_s = f32(np.sin(OMEGA_YEAR * days))[:, None, None]
        hour = (hours % 24).astype(np.float64)
        hour_c = f32(np.cos(2 * np.pi * hour / 24))[:, None, None]
        hour_s = f32(np.sin(2 * np.pi * hour / 24))[:, None, None]
        phi = np.radians(self.lat)[None, :, None]
        declination = np.radians(23.44) * np.sin(OMEGA_YEAR * (days - 80))[:, None, None]
        sun = f32(np.maximum(np.cos(phi - declination), 0.15))             # (t, lat, 1)
        winter = f32(1 + 0.35 * hemisphere(self.lat)[None, :, None] * np.cos(OMEGA_YEAR * (days - 18))[:, None, None])

        # 2 metre temperature.
        t2m = self.t_mean + self.season_cos * season_c + self.season_sin * season_s
        diurnal_wave = self.lon_cos * hour_c - self.lon_sin * hour_s        # cos(2 pi (LST - 15) / 24)
        t2m += (self.diurnal_land * sun + self.diurnal_ocean) * diurnal_wave
        t2m += self.trend * years
        t2m += self.t_sigma * winter * weather["t2m"]
        for event, blob in self.heat_waves:
            phase = np.clip((hours - event["start"]) / event["duration"], 0, 1)
            envelope = f32(np.sin(np.pi * phase) ** 2)[:, None, None]
            if envelope.any():
                t2m += envelope * blob

        # Sea surface temperature: slow, never below the freezing point of sea water.
        sst = self.sst_mean + self.sst_cos * season_c + self.sst_sin * season_s
        sst = sst + self.sst_sigma * weather["sst"] + self.trend * years
        np.maximum(sst, f32(271.46), out=sst)

        # Total precipitation over the time step (m): it rains where wetness + offset > 0,
        # more the further above zero, and more in the tropics.
        offset, amount = self._rain_offset(days, hour_c, hour_s)
        excess = np.maximum(weather["wetness"] + offset, 0)
        tp = amount * excess ** f32(1.3)

        # 10 metre wind.
        u10 = (self.u_mean + weather["u10"]) * self.roughness
        v10 = (self.v_mean + weather["v10"]) * self.roughness
        return {"t2m": t2m, "sst": sst, "tp": tp, "u10": u10, "v10": v10}

    def _rain_offset(self, days, hour_c, hour_s):
        """Where and when rain is likely: the offset added to the wetness, and the amount scale.

        With wetness ~ N(0, 1), a point is wet with probability Phi(offset): about 60 % in
        the ITCZ, which follows the sun (further over land: monsoons), 10-15 % over the
        subtropical oceans, a few % over deserts, about half the time in the storm tracks
        near 45-50 degrees (more in winter), and over land more in the late afternoon and
        evening, by local solar time (at sea, a little more before dawn).
        """
        f32 = np.float32
        lat = self.lat[None, :, None]
        sun = np.sin(OMEGA_YEAR * (days - 110))[:, None, None]       # +1 late July, -1 late January
        itcz_sea, itcz_land = 5 + 5 * sun, 4 + 12 * sun
        tropics = self.land * f32(_gauss(lat, itcz_land, 8)) + (1 - self.land) * f32(_gauss(lat, itcz_sea, 6))
        winter = np.cos(OMEGA_YEAR * (days - 18))[:, None, None] * np.sign(lat)   # +1 in the winter hemisphere
        storms = _gauss(np.abs(lat), 48 - 4 * winter, 11) * (1 + 0.2 * winter)
        offset = f32(-1.15 + 1.25 * storms) + f32(2.0) * tropics + self.rain_dry
        land_wave = self.lon_cos17 * hour_c - self.lon_sin17 * hour_s          # cos(2 pi (LST - 17) / 24)
        offset += (self.land * (f32(0.2) + f32(0.4) * tropics)            # land: peak at 17:00
                   - (1 - self.land) * f32(0.1)) * land_wave              # sea: peak at 05:00
        amount = f32(self.spec.step_hours / 24 / 1000) * (f32(5.0) + f32(14.0) * tropics
                                                         + f32(4.0 * storms))   # m per step
        return offset, amount


_HOURS_2000 = month_hours(2000, 1)[0]


# --------------------------------------------------------------------------------------
# Writing one monthly file (runs in a worker process)
# --------------------------------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(spec: Spec, seed: int, static: dict) -> None:
    """Process-pool initializer: keep the shared inputs in this worker."""
    _WORKER.update(spec=spec, seed=seed, static=static)


def _global_attributes(spec: Spec, seed: int) -> dict:
    # No dates or times here: the files must be identical every time.
    return {
        "Conventions": "CF-1.6",
        "title": "ERA5-like synthetic hourly data on single levels (course dataset)",
        "institution": "Parallel Python with Large Datasets (open course); synthetic, not ECMWF data",
        "source": f"data/era5_like.py {GENERATOR_VERSION}: synthetic fields shaped like ERA5",
        "history": f"Generated by era5_like.py {GENERATOR_VERSION} (size {spec.name}, seed {seed})",
        "comment": ("Plausible but NOT real weather. Land-sea mask rasterised from Natural Earth "
                    "110m land (public domain). Layout follows ERA5 NetCDF files from the "
                    "Copernicus Climate Data Store."),
        "references": "https://confluence.ecmwf.int/display/CKB/ERA5%3A+data+documentation",
        "era5_like_size": spec.name,
        "era5_like_seed": int(seed),
    }


def write_month(year: int, month: int, directory: str) -> tuple[str, int, str]:
    """Generate one month into ``directory``; returns (file name, bytes, sha256).

    The file is written as ``.<name>.part`` and renamed when complete, so a
    file with its final name is always whole.
    """
    import netCDF4

    spec, seed, static = _WORKER["spec"], _WORKER["seed"], _WORKER["static"]
    directory = Path(directory)
    name = file_name(year, month)
    partial = directory / f".{name}{PARTIAL_SUFFIX}"
    gen = MonthGenerator(spec, seed, static, year, month)
    lat, lon = grid(spec)

    with netCDF4.Dataset(partial, "w", format="NETCDF4") as nc:
        nc.setncatts(_global_attributes(spec, seed))
        nc.createDimension("longitude", lon.size)
        nc.createDimension("latitude", lat.size)
        nc.createDimension("time", len(gen.hours))
        coords = {
            "longitude": ("f4", lon, {"units": "degrees_east", "long_name": "longitude",
                                      "standard_name": "longitude", "axis": "X"}),
            "latitude": ("f4", lat, {"units": "degrees_north", "long_name": "latitude",
                                     "standard_name": "latitude", "axis": "Y"}),
            "time": ("i4", gen.hours, {"units": "hours since 1900-01-01 00:00:00.0",
                                       "long_name": "time", "standard_name": "time",
                                       "calendar": "gregorian", "axis": "T"}),
        }
        for cname, (dtype, values, attrs) in coords.items():
            var = nc.createVariable(cname, dtype, (cname,))
            var.setncatts(attrs)
            var[:] = values
        # Static fields: no time dimension, float32, in every file (like CDS downloads).
        lsm = nc.createVariable("lsm", "f4", ("latitude", "longitude"))
        lsm.setncatts({"units": "(0 - 1)", "long_name": "Land-sea mask",
                       "standard_name": "land_area_fraction",
                       "comment": "Fraction of land in the grid box; land where lsm > 0.5"})
        lsm[:] = gen.lsm
        z = nc.createVariable("z", "f4", ("latitude", "longitude"))
        z.setncatts({"units": "m**2 s**-2", "long_name": "Geopotential",
                     "standard_name": "geopotential", "comment": "Surface geopotential (orography)"})
        z[:] = gen.height * np.float32(9.80665)
        # Time-varying fields, packed as int16 like ERA5.
        out = {}
        for vname, meta in VARIABLES.items():
            var = nc.createVariable(vname, "i2", ("time", "latitude", "longitude"),
                                    fill_value=np.int16(FILL_VALUE), contiguous=True)
            var.set_auto_maskandscale(False)
            var.setncatts({"scale_factor": np.float32(meta.scale_factor),
                           "add_offset": np.float32(meta.add_offset),
                           "missing_value": np.int16(FILL_VALUE), "units": meta.units,
                           "long_name": meta.long_name, "standard_name": meta.standard_name})
            if vname == "tp":
                var.setncatts({"cell_methods": "time: sum",
                               "comment": "Accumulated over the time step ending at the time stamp"})
            out[vname] = var
        for start, fields in gen.chunks():
            stop = start + len(fields["t2m"])
            for vname, values in fields.items():
                missing = gen.ocean_missing if vname == "sst" else None
                out[vname][start:stop] = pack(values, VARIABLES[vname], missing)

    size, digest = partial.stat().st_size, sha256(partial)
    os.replace(partial, directory / name)
    return name, size, digest


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------------------
# Orchestration: manifest, resume, lock, disk space, progress, process pool
# --------------------------------------------------------------------------------------

def _read_manifest(directory: Path) -> dict | None:
    path = directory / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
        manifest["files"]  # noqa: B018  (must exist)
        return manifest
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise DatasetError(f"{path} is unreadable ({exc}); delete it to regenerate the dataset.") from exc


def _write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (temporary file, then rename); stable key order."""
    tmp = path.with_name(f".{path.name}{PARTIAL_SUFFIX}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _new_manifest(spec: Spec, seed: int) -> dict:
    lat, lon = grid(spec)
    return {
        "generator": "era5_like.py", "generator_version": GENERATOR_VERSION,
        "size": spec.as_dict(), "seed": int(seed),
        "grid": {"nlat": int(lat.size), "nlon": int(lon.size), "resolution_deg": spec.resolution},
        "variables": ["t2m", "sst", "tp", "u10", "v10", "lsm", "z"],
        "expected": spec.file_names(), "files": {}, "complete": False,
    }


def _is_complete(directory: Path, spec: Spec, seed: int) -> bool:
    """Quick test (no checksums): manifest complete and every file present with its size."""
    try:
        manifest = _read_manifest(directory)
    except DatasetError:
        return False
    if not manifest or not manifest.get("complete"):
        return False
    if (manifest.get("size") != spec.as_dict() or manifest.get("seed") != seed
            or manifest.get("generator_version") != GENERATOR_VERSION):
        return False
    for name in spec.file_names():
        info = manifest["files"].get(name)
        path = directory / name
        if info is None or not path.exists() or path.stat().st_size != info["bytes"]:
            return False
    return True


@contextlib.contextmanager
def _lock(directory: Path, quiet: bool):
    """Hold an exclusive lock on the directory while generating (waits if taken)."""
    fh = open(directory / LOCK, "a+")
    try:
        if os.name == "nt":
            import msvcrt
            told = False
            while True:
                try:
                    msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
                    break
                except OSError:
                    if not told and not quiet:
                        print(f"Another process is generating data in {directory}; waiting...", flush=True)
                        told = True
                    time.sleep(1)
        else:
            import fcntl
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                if not quiet:
                    print(f"Another process is generating data in {directory}; waiting...", flush=True)
                fcntl.flock(fh, fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            if os.name == "nt":
                import msvcrt
                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        fh.close()


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _human(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(nbytes) < 1000 or unit == "TB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{nbytes:.0f} B"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class _Progress:
    """Prints one progress line at most every few seconds (and at the end)."""

    def __init__(self, total_files: int, total_bytes: int, quiet: bool, every: float = 5.0):
        self.total_files, self.total_bytes = total_files, total_bytes
        self.files = self.bytes = 0
        self.quiet, self.every = quiet, every
        self.start = self.last = time.perf_counter()

    def update(self, name: str, nbytes: int) -> None:
        self.files += 1
        self.bytes += nbytes
        now = time.perf_counter()
        if self.quiet or (now - self.last < self.every and self.files < self.total_files):
            return
        self.last = now
        elapsed = now - self.start
        rate = self.bytes / elapsed if elapsed > 0 else 0
        left = max(self.total_bytes - self.bytes, 0) / rate if rate > 0 else 0
        pct = 100 * self.bytes / max(self.total_bytes, 1)
        print(f"  [{self.files:>{len(str(self.total_files))}}/{self.total_files}] {name}  "
              f"{pct:5.1f}%  {_human(rate)}/s  elapsed {_duration(elapsed)}"
              + (f"  ETA {_duration(left)}" if self.files < self.total_files else ""), flush=True)


def _check_free_space(directory: Path, needed: int) -> None:
    free = shutil.disk_usage(directory).free
    margin = 1.02 * needed + 50e6
    if free < margin:
        raise DatasetError(
            f"Not enough free disk space in {directory}: about {_human(margin)} needed, "
            f"{_human(free)} free; free some space, pick a smaller --size or another --out.")


def _stop_pool(pool) -> None:
    """Cancel queued tasks and stop the workers now (on Ctrl-C or an error)."""
    pool.shutdown(wait=False, cancel_futures=True)
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.terminate()


def generate(size="small", out=None, workers=None, seed: int = DEFAULT_SEED,
             quiet: bool = False, verify: bool = False) -> Path:
    """Generate (or finish) a dataset in this process and its worker pool.

    Prefer :func:`ensure_dataset` from scripts and notebooks; this function is
    what the command line runs.  ``out`` is the directory that will hold the
    monthly files (default :func:`default_directory`).  ``workers`` defaults to
    all cores; 1 runs everything in this process.  ``verify=True`` checksums
    the files already there and regenerates damaged ones (normally only their
    sizes are compared).  Returns the directory.
    """
    spec = parse_size(size)
    directory = Path(out).expanduser() if out else default_directory(spec.name)
    workers = _default_workers() if workers is None else int(workers)
    if workers < 1:
        raise DatasetError(f"--workers must be at least 1, not {workers}.")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"Cannot create the output directory {directory}: {exc.strerror}.") from exc
    if not os.access(directory, os.W_OK):
        raise DatasetError(f"The output directory {directory} is not writable; choose another --out.")

    with _lock(directory, quiet):
        manifest = _read_manifest(directory)
        if manifest is None:
            strangers = sorted(p.name for p in directory.glob("*.nc"))
            if strangers:
                raise DatasetError(
                    f"{directory} already holds NetCDF files ({strangers[0]}, ...) that this "
                    f"generator did not make (no {MANIFEST}); choose an empty or new directory.")
            manifest = _new_manifest(spec, seed)
        elif manifest.get("size") != spec.as_dict() or manifest.get("seed") != seed:
            old = manifest.get("size", {}).get("name", "?")
            raise DatasetError(
                f"{directory} holds a dataset made with other settings (size {old}, seed "
                f"{manifest.get('seed')}); delete it or choose another --out.")
        elif manifest.get("generator_version") != GENERATOR_VERSION:
            if not quiet:
                print(f"{directory} was made by version {manifest.get('generator_version')} of "
                      f"this generator; remaking it with version {GENERATOR_VERSION}.", flush=True)
            manifest = _new_manifest(spec, seed)     # every file is redone (replaced atomically)

        # Leftovers of an interrupted run are never complete: remove them.
        for partial in directory.glob(f".*{PARTIAL_SUFFIX}"):
            partial.unlink()
        # Keep finished files whose size matches the manifest; redo the rest.
        todo = []
        for (year, month), name in zip(spec.month_list(), spec.file_names()):
            info = manifest["files"].get(name)
            path = directory / name
            if info is not None and path.exists() and path.stat().st_size == info["bytes"]:
                if not verify or sha256(path) == info["sha256"]:
                    continue
            manifest["files"].pop(name, None)
            todo.append((year, month))
        if not todo and manifest.get("complete"):
            return directory
        manifest["complete"] = not todo
        _write_json(directory / MANIFEST, manifest)
        if not todo:
            return directory

        needed = sum(spec.expected_bytes(y, m) for y, m in todo)
        _check_free_space(directory, needed)
        workers = min(workers, len(todo))
        done = len(spec.file_names()) - len(todo)
        if not quiet:
            verb = "Resuming" if done else "Generating"
            print(f"{verb} the ERA5-like '{spec.name}' dataset in {directory}: "
                  f"{len(todo)} of {spec.months} monthly files, about {_human(needed)}, "
                  f"{spec.nlat}x{spec.nlon} grid every {spec.step_hours} h, "
                  f"{workers} worker{'s' if workers > 1 else ''}.", flush=True)
        started = time.perf_counter()
        progress = _Progress(len(todo), needed, quiet)
        static = static_fields(spec)

        def record(result):
            name, nbytes, digest = result
            manifest["files"][name] = {"bytes": nbytes, "sha256": digest}
            _write_json(directory / MANIFEST, manifest)
            progress.update(name, nbytes)

        if workers == 1:
            _init_worker(spec, seed, static)
            for year, month in todo:
                record(write_month(year, month, str(directory)))
        else:
            import concurrent.futures as cf
            import multiprocessing as mp
            # "spawn" behaves the same on Linux, macOS and Windows, and is safe
            # from inside Jupyter kernels and threaded programs.
            pool = cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                          initializer=_init_worker, initargs=(spec, seed, static))
            try:
                futures = [pool.submit(write_month, y, m, str(directory)) for y, m in todo]
                for future in cf.as_completed(futures):
                    record(future.result())
            except BaseException:
                _stop_pool(pool)
                raise
            pool.shutdown()
        manifest["complete"] = all(n in manifest["files"] for n in spec.file_names())
        _write_json(directory / MANIFEST, manifest)
        if not quiet:
            elapsed = time.perf_counter() - started
            print(f"Done: {len(todo)} file{'s' if len(todo) > 1 else ''}, {_human(progress.bytes)} in {_duration(elapsed)} "
                  f"({_human(progress.bytes / max(elapsed, 1e-9))}/s) -> {directory}", flush=True)
    return directory


# --------------------------------------------------------------------------------------
# Public helpers used by the labs
# --------------------------------------------------------------------------------------

def _run_cli(args: list[str]) -> None:
    """Run this file as a separate program, echoing its output.

    Generation always runs in a fresh Python process: process pools started
    from a notebook or from a lab script without an ``if __name__ ==
    "__main__"`` guard misbehave on macOS and Windows; the command line is safe.
    """
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    error = None
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env) as proc:
        try:
            for line in proc.stdout:
                if line.startswith("era5_like: error: "):
                    error = line[len("era5_like: error: "):].strip()
                else:
                    print(line, end="", flush=True)
            proc.wait()
        except BaseException:
            proc.terminate()
            proc.wait()
            raise
    if proc.returncode != 0:
        raise DatasetError(error or f"Dataset generation failed (exit code {proc.returncode}).")


def ensure_dataset(size="small", out=None, workers=None, seed: int = DEFAULT_SEED) -> Path:
    """Directory holding the monthly NetCDF files; generated (or resumed) if incomplete.

    ``size``: ``"small"`` (default), ``"workshop"``, ``"large"`` or e.g. ``"30GB"``.
    ``out``: directory for the files (default ``data/era5/<size>``, or
    ``$COURSE_DATA_DIR/<size>`` when that variable is set).  ``workers``:
    processes to use (default: all cores).  When the dataset is already
    complete this only reads the manifest, so it returns at once.
    """
    spec = parse_size(size)
    directory = Path(out).expanduser() if out else default_directory(spec.name)
    if _is_complete(directory, spec, seed):
        return directory
    args = ["--size", spec.name, "--out", str(directory), "--seed", str(seed)]
    if workers is not None:
        args += ["--workers", str(workers)]
    _run_cli(args)
    if not _is_complete(directory, spec, seed):
        raise DatasetError(f"Generation finished but {directory} is still incomplete; "
                           f"run python data/era5_like.py --check {directory}.")
    return directory


def check(directory) -> list[str]:
    """Problems with a generated dataset, one sentence each; empty when all is well.

    Verifies that every expected file exists with the size and SHA-256 recorded
    in ``manifest.json``, and reports leftovers of interrupted runs.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return [f"{directory} does not exist or is not a directory."]
    try:
        manifest = _read_manifest(directory)
    except DatasetError as exc:
        return [str(exc)]
    if manifest is None:
        return [f"{directory} has no {MANIFEST}: it was not made by era5_like.py, "
                f"or generation never started."]
    problems = []
    expected = manifest.get("expected") or sorted(manifest["files"])
    for name in expected:
        path, info = directory / name, manifest["files"].get(name)
        try:
            if not path.exists():
                problems.append(f"{name}: missing.")
            elif info is None:
                problems.append(f"{name}: not recorded in {MANIFEST} (its generation was "
                                f"interrupted); resume to regenerate it.")
            elif path.stat().st_size != info["bytes"]:
                problems.append(f"{name}: truncated or wrong size ({path.stat().st_size} bytes, "
                                f"expected {info['bytes']}).")
            elif sha256(path) != info["sha256"]:
                problems.append(f"{name}: corrupt (SHA-256 checksum does not match {MANIFEST}).")
        except OSError as exc:
            problems.append(f"{name}: cannot be read ({exc.strerror}).")
    for partial in sorted(directory.glob(f".*{PARTIAL_SUFFIX}")):
        problems.append(f"{partial.name}: partial file from an interrupted run "
                        f"(removed when generation resumes).")
    if not manifest.get("complete") and not problems:
        problems.append(f"{MANIFEST} says generation is incomplete; resume to finish it.")
    return problems


# --------------------------------------------------------------------------------------
# PNG map folder (for the GNU parallel episode)
# --------------------------------------------------------------------------------------

IMAGE_RANGE = (230.0, 320.0)     # K, fixed so that colours mean the same in every image
IMAGE_CMAP = "RdBu_r"
IMAGE_WIDTH = 720                # pixels (at least); each grid cell is a square block


def _image_mode(step_hours: int) -> str:
    """Daily images for 6-hourly sizes, monthly means for the hourly (large) grid."""
    return "monthly" if step_hours == 1 else "daily"


def _png(values: np.ndarray, path: Path, label: str) -> None:
    """Write one t2m map as a colour PNG, atomically, with its colour scale as metadata."""
    from matplotlib import colormaps
    from PIL import Image, PngImagePlugin

    lut = (colormaps[IMAGE_CMAP](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)
    lo, hi = IMAGE_RANGE
    index = np.clip((values - lo) / (hi - lo) * 255, 0, 255)
    index = np.nan_to_num(index, nan=0).round().astype(np.uint8)
    zoom = max(1, int(math.ceil(IMAGE_WIDTH / values.shape[1])))
    rgb = lut[np.repeat(np.repeat(index, zoom, axis=0), zoom, axis=1)]
    info = PngImagePlugin.PngInfo()
    for key, value in {"Title": f"2 metre temperature {label}", "variable": "t2m", "units": "K",
                       "vmin": str(lo), "vmax": str(hi), "colormap": IMAGE_CMAP,
                       "projection": "equirectangular, longitude 0..360 east, latitude 90..-90",
                       "Source": "ERA5-like synthetic data (data/era5_like.py)"}.items():
        info.add_text(key, value)
    tmp = path.with_name(f".{path.name}{PARTIAL_SUFFIX}")
    Image.fromarray(rgb).save(tmp, format="PNG", pnginfo=info)
    os.replace(tmp, path)


def images_for_file(nc_path: str, image_dir: str, mode: str) -> list[str]:
    """Write the PNG maps of one monthly file (daily or one monthly mean); returns names."""
    import netCDF4

    names = []
    with netCDF4.Dataset(nc_path) as nc:
        t2m = nc["t2m"]
        t2m.set_auto_maskandscale(False)
        scale, offset = np.float32(t2m.scale_factor), np.float32(t2m.add_offset)
        times = netCDF4.num2date(nc["time"][:], nc["time"].units, nc["time"].calendar)
        days = np.array([f"{t.year:04d}-{t.month:02d}-{t.day:02d}" for t in times])
        if mode == "daily":
            for day in dict.fromkeys(days):
                idx = np.flatnonzero(days == day)
                mean = t2m[idx[0]:idx[-1] + 1].astype(np.float32).mean(axis=0) * scale + offset
                name = f"t2m_{day}.png"
                if not (Path(image_dir) / name).exists():
                    _png(mean, Path(image_dir) / name, day)
                names.append(name)
        else:
            total = np.zeros(t2m.shape[1:], dtype=np.float64)
            for start in range(0, len(days), 24):             # one day at a time: little memory
                total += t2m[start:start + 24].astype(np.float64).sum(axis=0)
            mean = (total / len(days)).astype(np.float32) * scale + offset
            name = f"t2m_{days[0][:7]}.png"
            if not (Path(image_dir) / name).exists():
                _png(mean, Path(image_dir) / name, days[0][:7])
            names.append(name)
    return names


def make_images(dataset_dir, image_dir=None, workers=None, quiet: bool = False) -> Path:
    """Make the PNG folder from a complete dataset (in this process and a pool)."""
    dataset_dir = Path(dataset_dir)
    manifest = _read_manifest(dataset_dir)
    if manifest is None or not manifest.get("complete"):
        raise DatasetError(f"{dataset_dir} is not a complete dataset; generate it first.")
    image_dir = Path(image_dir) if image_dir else dataset_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    for partial in image_dir.glob(f".*{PARTIAL_SUFFIX}"):
        partial.unlink()
    fingerprint = _fingerprint(manifest)
    try:
        previous = json.loads((image_dir / MANIFEST).read_text()).get("dataset_fingerprint")
    except (OSError, ValueError):
        previous = None
    if previous != fingerprint:              # images of other data: start afresh
        for old in image_dir.glob("t2m_*.png"):
            old.unlink()
    mode = _image_mode(manifest["size"]["step_hours"])
    files = [str(dataset_dir / n) for n in manifest["expected"]]
    workers = min(_default_workers() if workers is None else int(workers), len(files))
    started = time.perf_counter()
    if not quiet:
        print(f"Making {mode} t2m PNG maps of {dataset_dir} in {image_dir} ...", flush=True)
    names = []
    if workers <= 1:
        for path in files:
            names += images_for_file(path, str(image_dir), mode)
    else:
        import concurrent.futures as cf
        import multiprocessing as mp
        pool = cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
        try:
            for result in pool.map(images_for_file, files, [str(image_dir)] * len(files),
                                   [mode] * len(files)):
                names += result
        except BaseException:
            _stop_pool(pool)
            raise
        pool.shutdown()
    _write_json(image_dir / MANIFEST, {"dataset": str(dataset_dir.resolve()), "mode": mode,
                                       "dataset_fingerprint": fingerprint,
                                       "images": names, "complete": True,
                                       "range_K": list(IMAGE_RANGE), "colormap": IMAGE_CMAP})
    if not quiet:
        print(f"Done: {len(names)} images in {_duration(time.perf_counter() - started)} "
              f"-> {image_dir}", flush=True)
    return image_dir


def _fingerprint(dataset_manifest: dict) -> str:
    """Short hash of a dataset's checksums: tells whether images were made from it."""
    text = json.dumps(dataset_manifest["files"], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _images_complete(image_dir: Path, dataset_dir: Path) -> bool:
    try:
        manifest = json.loads((image_dir / MANIFEST).read_text())
        dataset = _read_manifest(dataset_dir)
    except (OSError, ValueError, DatasetError):
        return False
    return (bool(manifest.get("complete")) and dataset is not None
            and manifest.get("dataset_fingerprint") == _fingerprint(dataset)
            and all((image_dir / n).exists() for n in manifest["images"]))


def ensure_images(size="small", out=None) -> Path:
    """Folder of PNG maps of t2m (``t2m_YYYY-MM-DD.png``), made from the dataset.

    One image per day (daily mean) for the 6-hourly sizes, one per month
    (``t2m_YYYY-MM.png``, monthly mean) for the hourly large grid.  Colours map
    t2m from 230 K (blue) to 320 K (red) with the RdBu_r colormap; each PNG
    carries that scale in its text metadata.  ``out`` defaults to
    ``<dataset directory>/images``.
    """
    dataset_dir = ensure_dataset(size)
    image_dir = Path(out).expanduser() if out else dataset_dir / "images"
    if _images_complete(image_dir, dataset_dir):
        return image_dir
    _run_cli(["--size", parse_size(size).name, "--out", str(dataset_dir), "--images", str(image_dir)])
    if not _images_complete(image_dir, dataset_dir):
        raise DatasetError(f"Image generation finished but {image_dir} is incomplete.")
    return image_dir


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise DatasetError(f"{message[0].upper()}{message[1:]} (see --help).")


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status."""
    sizes = __doc__[__doc__.index("=========  ======"):__doc__.index("Command line")]
    parser = _Parser(prog="era5_like.py", description=__doc__.split("\n\n")[0],
                     epilog="sizes:\n" + sizes.strip(),
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small",
                        help="small (default), workshop, large, or an amount such as 30GB")
    parser.add_argument("--out", help="directory for the monthly files "
                        "(default data/era5/<size>, or $COURSE_DATA_DIR/<size>)")
    parser.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default 0)")
    parser.add_argument("--check", metavar="DIR", help="verify a dataset and name every problem")
    parser.add_argument("--images", nargs="?", const="", metavar="IMAGE_DIR",
                        help="also make the PNG map folder (default <out>/images)")
    parser.add_argument("--verify", action="store_true",
                        help="checksum existing files first and regenerate damaged ones")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    try:
        args = parser.parse_args(argv)
        if args.check:
            problems = check(args.check)
            for problem in problems:
                print(problem)
            if problems:
                print("To repair: run the generator again with the same --size, --out and "
                      "--seed plus --verify; it regenerates only what is damaged or missing.")
            else:
                manifest = _read_manifest(Path(args.check))
                total = sum(i["bytes"] for i in manifest["files"].values())
                print(f"OK: {len(manifest['files'])} files, {_human(total)}, checksums match.")
            return 1 if problems else 0
        directory = generate(args.size, args.out, args.workers, args.seed, args.quiet, args.verify)
        if args.images is not None:
            make_images(directory, args.images or None, args.workers, args.quiet)
        return 0
    except DatasetError as exc:
        print(f"era5_like: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("era5_like: error: Interrupted; run the same command again to resume.",
              file=sys.stderr, flush=True)
        return 130
    except Exception as exc:  # noqa: BLE001  (one sentence, never a traceback)
        if os.environ.get("ERA5_LIKE_DEBUG"):
            raise
        print(f"era5_like: error: Unexpected {type(exc).__name__}: {exc} "
              f"(set ERA5_LIKE_DEBUG=1 to see the traceback).", file=sys.stderr, flush=True)
        return 1


def _sigterm_as_interrupt() -> None:
    """Turn SIGTERM into KeyboardInterrupt so workers are stopped and nothing is left running."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError, AttributeError, OSError):
        signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    _sigterm_as_interrupt()
    # Import the module by name so that worker processes find its functions as
    # era5_like.<name> rather than __main__.<name>.
    sys.path.insert(0, str(HERE))
    import era5_like
    sys.exit(era5_like.main())
