"""The ERA5 files a lab reads: the course's generated set, or the lab's own (``COURSE_ERA5``).

STUB (the contract every lab codes against; the own-data work fills it in):

* ``own_data()``            True when ``$COURSE_ERA5`` names the learner's own files.
* ``files()``               the NetCDF files to open, in time order.
* ``normalise(ds)``         one file's Dataset in the course's conventions; pass it to
                            ``xr.open_mfdataset(files, preprocess=course.era5.normalise, ...)``.
* ``open(**kwargs)``        ``xr.open_mfdataset(files(), preprocess=normalise, **kwargs)``.
* ``needs(ds, variables, what)``  True when ``ds`` has every variable; otherwise prints one line naming
                            the section (``what``) it skips and the missing variables, and returns False.

The course's conventions are those of the generated files: dimensions ``time``, ``latitude`` (90 → −90),
``longitude`` (0 → 360); ERA5 short names; the units ERA5 uses (K, m of precipitation per step).
"""

from __future__ import annotations

import os
from pathlib import Path


def own_data() -> bool:
    return bool(os.environ.get("COURSE_ERA5", "").strip())


def files() -> list[Path]:
    import course

    return sorted(course.dataset().glob("era5_*.nc"))


def normalise(ds):
    return ds


def open(**kwargs):  # noqa: A001 - read as course.era5.open
    import xarray as xr

    return xr.open_mfdataset(files(), preprocess=normalise, **kwargs)


def needs(ds, variables, what: str) -> bool:
    missing = [v for v in variables if v not in ds]
    if missing:
        print(f"Skipping {what}: it needs {', '.join(missing)}, which these files do not have.")
        return False
    return True
