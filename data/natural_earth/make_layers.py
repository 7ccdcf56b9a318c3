"""Build the Natural Earth 110m layers that the course ships for offline maps.

Cartopy draws coastlines, land and borders from Natural Earth shapefiles and
normally downloads them on first use.  Classrooms and HPC nodes are often
offline, so the course ships the four small 110m layers it needs, in the
directory layout cartopy expects (see ``data/offline_maps.py``)::

    shapefiles/natural_earth/physical/ne_110m_land.shp
    shapefiles/natural_earth/physical/ne_110m_ocean.shp
    shapefiles/natural_earth/physical/ne_110m_coastline.shp
    shapefiles/natural_earth/cultural/ne_110m_admin_0_countries.shp
    shapefiles/natural_earth/cultural/ne_110m_admin_0_boundary_lines_land.shp

Source: the Natural Earth 110m "Admin 0 - Countries" layer (public domain) that
the pyogrio wheel carries as a test fixture (``naturalearth_lowres``).  From
those 177 country polygons this script derives

* land      -- the union (dissolve) of all countries;
* ocean     -- the globe minus the land;
* coastline -- the land's outline, without the artificial edges along the
               date line (+-180 degrees) and the South Pole;
* borders   -- the edges that two countries share (each such edge appears in
               the outline of both neighbours; an edge that appears once is
               coast).

Run it again (``python data/natural_earth/make_layers.py``) only to rebuild the
shipped files; the course never runs it by itself.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.raw
import shapely

HERE = Path(__file__).resolve().parent
OUT = HERE / "shapefiles" / "natural_earth"


def source_path() -> Path:
    """Path of the Natural Earth 110m countries shapefile inside pyogrio."""
    fixture = Path(pyogrio.__file__).parent / "tests" / "fixtures" / "naturalearth_lowres"
    path = fixture / "naturalearth_lowres.shp"
    if not path.exists():
        raise SystemExit(f"Cannot find {path}: install pyogrio from PyPI (its wheel carries the file).")
    return path


def write_layer(path: Path, geoms, fields: dict[str, np.ndarray] | None = None) -> None:
    """Write shapely geometries (plus optional attribute columns) as a shapefile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    geoms = np.asarray(geoms, dtype=object)
    fields = fields or {"featurecla": np.array(["feature"] * len(geoms), dtype=object)}
    geom_type = {"Polygon": "MultiPolygon", "MultiPolygon": "MultiPolygon",
                 "LineString": "MultiLineString", "MultiLineString": "MultiLineString"}
    kind = geom_type[geoms[0].geom_type]
    for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
        path.with_suffix(ext).unlink(missing_ok=True)
    pyogrio.raw.write(
        path, shapely.to_wkb(geoms), list(fields.values()), fields=list(fields),
        geometry_type=kind, crs="EPSG:4326", driver="ESRI Shapefile", encoding="UTF-8",
    )


def segments(geom) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """All straight edges of all rings of a (multi)polygon, endpoints rounded."""
    out = []
    for ring in shapely.get_rings(shapely.get_parts(geom)):
        xy = np.round(shapely.get_coordinates(ring), 6)
        out += [(tuple(a), tuple(b)) for a, b in zip(xy[:-1], xy[1:]) if tuple(a) != tuple(b)]
    return out


def is_artificial(a, b) -> bool:
    """True for edges along the date line or the South Pole (not real coast)."""
    on_seam = abs(abs(a[0]) - 180) < 1e-6 and abs(abs(b[0]) - 180) < 1e-6
    on_pole = a[1] < -89.999 and b[1] < -89.999
    return on_seam or on_pole


def merged_lines(edges) -> list:
    """Join a bag of edges into as few (multi)line strings as possible."""
    lines = shapely.line_merge(shapely.MultiLineString([list(e) for e in edges]))
    return list(shapely.get_parts(lines))


def main() -> None:
    meta, _, wkb, columns = pyogrio.raw.read(source_path())
    countries = shapely.make_valid(shapely.from_wkb(wkb))
    names = dict(zip(meta["fields"], columns))

    # Countries: keep Natural Earth's upper-case field names.
    write_layer(OUT / "cultural" / "ne_110m_admin_0_countries.shp", countries, {
        "NAME": names["name"], "ISO_A3": names["iso_a3"], "CONTINENT": names["continent"],
        "POP_EST": names["pop_est"].astype("float64"), "GDP_MD_EST": names["gdp_md_est"],
    })

    # Land: dissolve all countries into one multipolygon, one feature per part.
    land = shapely.union_all(countries, grid_size=1e-6)
    land_parts = list(shapely.get_parts(land))
    write_layer(OUT / "physical" / "ne_110m_land.shp", land_parts,
                {"featurecla": np.array(["Land"] * len(land_parts), dtype=object)})

    # Ocean: the whole globe minus the land.
    ocean = shapely.difference(shapely.box(-180, -90, 180, 90), land, grid_size=1e-6)
    write_layer(OUT / "physical" / "ne_110m_ocean.shp", [ocean],
                {"featurecla": np.array(["Ocean"], dtype=object)})

    # Count every country edge: shared edges are borders, single ones are coast.
    count = collections.Counter()
    for country in countries:
        for a, b in segments(country):
            count[(min(a, b), max(a, b))] += 1
    borders = [e for e, n in count.items() if n >= 2]
    coast = [e for e, n in count.items() if n == 1 and not is_artificial(*e)]
    coast_lines = merged_lines(coast)
    border_lines = merged_lines(borders)
    write_layer(OUT / "physical" / "ne_110m_coastline.shp", coast_lines,
                {"featurecla": np.array(["Coastline"] * len(coast_lines), dtype=object)})
    write_layer(OUT / "cultural" / "ne_110m_admin_0_boundary_lines_land.shp", border_lines,
                {"featurecla": np.array(["International boundary (verify)"] * len(border_lines),
                                        dtype=object)})

    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"{len(countries)} countries -> {len(land_parts)} land polygons, "
          f"{len(coast_lines)} coastlines, {len(border_lines)} border lines; "
          f"{total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
