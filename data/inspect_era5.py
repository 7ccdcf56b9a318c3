#!/usr/bin/env python
"""What the course can do with a set of ERA5 NetCDF files (the files ``COURSE_ERA5`` would name).

    python data/inspect_era5.py /nas/era5                 # a folder, searched with its sub-folders
    python data/inspect_era5.py '/nas/era5/2010-*/*.nc'   # or a glob (quoted, so the shell leaves it)
    python data/inspect_era5.py                           # $COURSE_ERA5, else the course's generated files

Prints the formats, variables, period and time step, grid, size, what opening them for the course
renames or converts, and which episodes can run (and which of their sections they skip). Exits with
status 1, and one sentence saying what to do, when nothing usable is there. The code is in
``labs/course/era5.py`` (``course.era5.main``), the one place that knows the formats.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "labs"))

from course import era5  # noqa: E402

if __name__ == "__main__":
    sys.exit(era5.main())
