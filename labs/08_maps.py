# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Maps with Cartopy
#
# **Teaching:** 25 min · **Exercises:** 20 min
#
# ## Objectives
# - Tell the *projection* of a map (how it is drawn) from the *coordinate system of the data* (where
#   the numbers are), and give Cartopy both.
# - Draw the same field in the PlateCarree, Robinson, Orthographic and a regional Lambert conformal
#   projection.
# - Add coastlines, borders and labelled gridlines, all drawn offline from the layers the course ships.
# - Plot xarray data on Cartopy axes with `transform=`, as a climatology (sequential colour map) and
#   as an anomaly (diverging colour map centred on zero).
#
# ## Why maps need care
# The Earth is round and a screen is flat: every map projection distorts areas, shapes, distances or
# directions, and the choice changes what the reader sees. A 2 m temperature field stored on a
# latitude/longitude grid can be drawn on any projection, but only if the plotting library is told
# that the numbers are on a latitude/longitude grid. Forget that and the map looks plausible and is
# wrong. Colour is the other trap: a rainbow colour map invents boundaries that are not in the data
# and hides everything from readers with a colour-vision deficiency (about 1 in 12 men).
#
# Cartopy normally downloads coastlines from Natural Earth the first time it draws them, which fails
# on trains, in classrooms and on HPC compute nodes. The course ships the coarse (110m) layers and
# `import course` points Cartopy at them. **This lab switches the network off** right after its
# imports and draws every map without it.

# %%
import socket
import time

import cartopy
import cartopy.crs as ccrs
import cartopy.feature as cfeature
import dask
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

import course
from course import era5

FIGURES = course.BUILD / "08_maps"  # PNG copies of the maps, for reuse outside the notebook
FIGURES.mkdir(parents=True, exist_ok=True)


class NetworkBlocked(OSError):
    """Raised instead of opening a network connection."""


class NoNetwork:
    """Make every attempt to open a network connection fail, and remember each attempt.

    Python's ``socket.socket`` inherits ``connect`` from the C socket type; we put a refusing version
    on ``socket.socket`` itself, and deleting it again restores the real one (also when the lab is
    re-run in the same kernel)."""

    def __init__(self):
        self.attempts = []

    def refuse(self, sock, address, *args):
        self.attempts.append(address)
        raise NetworkBlocked(f"network switched off by the lab (tried to reach {address})")

    def start(self):
        socket.socket.connect = lambda sock, address: self.refuse(sock, address)
        socket.socket.connect_ex = lambda sock, address: self.refuse(sock, address)
        return self

    def stop(self):
        for name in ("connect", "connect_ex"):
            if name in vars(socket.socket):
                delattr(socket.socket, name)

    @property
    def active(self):
        return "connect" in vars(socket.socket)


network = NoNetwork().start()
try:  # prove that the block works before we rely on it
    socket.create_connection(("127.0.0.1", 9), timeout=1)
    block_works = False
except NetworkBlocked:
    block_works = True
network.attempts.clear()
print("network switched off:", block_works)


def save(fig, name):
    """Draw ``fig`` now (with the network off) and keep a PNG copy in _build/08_maps/."""
    assert network.active, "the maps must be drawn with the network switched off"
    fig.savefig(FIGURES / f"{name}.png", bbox_inches="tight")

# %% [markdown]
# ## 1. The data: a climatology and one unusual day *(core)*
#
# We open the course's NetCDF files lazily (as in episode 07) and compute three things in **one**
# pass over the data, with `dask.compute`, so that each file is read once:
#
# - the **climatology**: the mean 2 m temperature of every grid cell over the whole record;
# - the mean of every calendar month (the seasonal cycle);
# - the daily mean temperature over western Europe, to find the day that was warmest **relative to
#   its month** there.
#
# The map of that day minus its month's mean is the **anomaly**: how unusual the day was, everywhere.

# %%
FILES = era5.files()  # the course's files, or your own with COURSE_ERA5 (README: "Teaching on your own data")
ds = xr.open_mfdataset(FILES, combine="by_coords", data_vars="minimal", coords="minimal", compat="override",
                       **era5.OPEN)  # preprocess=era5.normalise: the course's names, latitude 90 → −90, longitude 0 → 360
era5.report()  # own files only: what normalising did
era5.require(ds, ["t2m"], "episode 08")
t2m = ds.t2m - 273.15  # K -> °C
t2m.attrs = {"long_name": "2 m temperature", "units": "°C"}

EUROPE = {"latitude": slice(60, 40), "longitude": slice(0, 20)}  # the Low Countries to the Alps
weights = np.cos(np.deg2rad(ds.latitude.sel(latitude=EUROPE["latitude"])))

start = time.perf_counter()
climatology, monthly, europe_daily = dask.compute(
    t2m.mean("time"),
    t2m.groupby("time.month").mean(),
    t2m.sel(EUROPE).weighted(weights).mean(["latitude", "longitude"]).resample(time="1D").mean(),
)
t_compute = time.perf_counter() - start
climatology.attrs = monthly.attrs = t2m.attrs

europe_anomaly = europe_daily.groupby("time.month") - monthly.sel(EUROPE).weighted(weights).mean(["latitude", "longitude"])
day = pd.Timestamp(europe_anomaly.idxmax().values)
DAY = day.strftime("%Y-%m-%d")
anomaly = t2m.sel(time=DAY).mean("time").compute() - monthly.sel(month=day.month, drop=True)
anomaly.attrs = {"long_name": "2 m temperature anomaly", "units": "°C"}

# %%
#| label: data-summary
print(f"{len(FILES)} files, {ds.sizes['time']} time steps on a {ds.sizes['latitude']} × {ds.sizes['longitude']} grid "
      f"({float(abs(ds.longitude[1] - ds.longitude[0])):g}° cells)")
print(f"climatology, monthly means and Europe's daily series in one pass: {t_compute:.1f} s")
print(f"warmest day over western Europe relative to its month: {DAY}, "
      f"{float(europe_anomaly.max()):+.1f} °C")
print(course.hardware())

# %% [markdown]
# ## 2. Projection and transform: two different questions *(core)*
#
# Every Cartopy map answers two questions, and people mix them up:
#
# - `projection=` (on the axes): **how should the map be drawn?** Robinson for a pleasant world map,
#   Orthographic for "the globe seen from space", Lambert conformal for a mid-latitude region, ...
# - `transform=` (on each plot call): **in which coordinate system are these numbers?** For
#   ERA5-like data on a latitude/longitude grid that is always `ccrs.PlateCarree()`, whatever the map
#   projection is.
#
# With xarray the plot call is the usual `.plot(...)`, with `ax=` a Cartopy axes and
# `transform=ccrs.PlateCarree()`. The same field in four projections:

# %%
DATA_CRS = ccrs.PlateCarree()  # the data: plain latitude/longitude
LAMBERT_EUROPE = ccrs.LambertConformal(central_longitude=10, central_latitude=52, standard_parallels=(35, 65))
PROJECTIONS = {
    "PlateCarree": ccrs.PlateCarree(),
    "Robinson": ccrs.Robinson(),
    "Orthographic": ccrs.Orthographic(central_longitude=5, central_latitude=45),
    "Lambert conformal (Europe)": LAMBERT_EUROPE,
}
EUROPE_EXTENT = [-15, 35, 33, 68]  # lon_min, lon_max, lat_min, lat_max (degrees)

# %%
#| label: fig-projections
#| fig-cap: "The same 2 m temperature climatology in four projections: PlateCarree, Robinson, Orthographic and a Lambert conformal map of Europe."
#| fig-alt: "Four maps in a two-by-two grid, all coloured with the cividis colour map from dark blue (cold) to yellow (warm): a rectangular world map, an oval Robinson world map, a globe centred on Europe, and a cone-shaped map of Europe with curved parallels. Coastlines are drawn in black on each."
fig = plt.figure(figsize=(13, 6.8))
axes_by_name = {}
for i, (name, projection) in enumerate(PROJECTIONS.items()):
    ax = fig.add_subplot(2, 2, i + 1, projection=projection)
    mesh = climatology.plot(ax=ax, transform=DATA_CRS, cmap="cividis", vmin=-40, vmax=30, add_colorbar=False)
    if name.startswith("Lambert"):
        ax.set_extent(EUROPE_EXTENT, crs=DATA_CRS)
    else:
        ax.set_global()
    ax.coastlines(resolution="110m", linewidth=0.7)
    ax.set_title(name)
    axes_by_name[name] = ax
fig.colorbar(mesh, ax=list(axes_by_name.values()), orientation="horizontal", shrink=0.5, pad=0.05,
             label="mean 2 m temperature (°C)")
save(fig, "projections")

# %% [markdown]
# Look at the same pattern four times. PlateCarree is the data's own grid: simple, but it stretches
# the polar regions across the whole width. Robinson is a compromise for world maps. Orthographic
# shows half the globe as seen from space, which is honest about distances near the centre and useless
# at the edge. Lambert conformal keeps shapes right in mid-latitudes, which is why national weather
# services use it for Europe.
#
# The white spot at the North Pole of the globe is a lesson in grids: the top row of cells is centred
# *on* 90° N, so its edges lie half a cell beyond the pole, which no projection can place, and Cartopy
# leaves those cells out. On the workshop's 1° grid the spot is half as wide as on the small 2° grid.

# %% [markdown]
# ## 3. What `transform=` is for *(core)*
#
# Leave `transform=` out and Cartopy assumes the numbers are already in the coordinates of the map's
# projection. On a PlateCarree map centred on the Pacific (`central_longitude=180`) that shifts the
# data by half a globe: the warm continents land in the oceans. (On a Robinson map, whose coordinates
# are metres, the whole world would shrink to a few hundred metres around (0, 0) and vanish.)

# %%
#| label: fig-transform
#| fig-cap: "The same climatology on a Pacific-centred map, with transform=ccrs.PlateCarree() (left) and without it (right): without it, the data are drawn 180° away from the coastlines."
#| fig-alt: "Two world maps side by side, centred on the Pacific. In the left map, warm colours sit over the tropical continents and cold colours over Antarctica and Greenland, matching the black coastlines. In the right map, the temperature pattern is shifted half a globe sideways and does not match the coastlines."
pacific = ccrs.PlateCarree(central_longitude=180)
fig, (good, bad) = plt.subplots(1, 2, figsize=(13, 3.8), subplot_kw={"projection": pacific})
climatology.plot(ax=good, transform=DATA_CRS, cmap="cividis", vmin=-40, vmax=30, add_colorbar=False)
climatology.plot(ax=bad, cmap="cividis", vmin=-40, vmax=30, add_colorbar=False)  # no transform: wrong
for ax, title in [(good, "transform=ccrs.PlateCarree()"), (bad, "no transform: shifted by 180°")]:
    ax.set_global()
    ax.coastlines(resolution="110m", linewidth=0.7)
    ax.set_title(title)
save(fig, "transform")

# %% [markdown]
# ## 4. A climatology map: coastlines, borders, labelled gridlines *(core)*
#
# A map for a paper or a slide needs context: coastlines, country borders and gridlines labelled in
# degrees. A **sequential**, perceptually uniform colour map fits a quantity that runs from low to high:
# `cividis` (readable with every common colour-vision deficiency, and in greyscale) or `viridis`.
#
# `resolution="110m"` asks for Natural Earth's coarsest layers (1:110 million), the ones the course
# ships. That is plenty for a world map and for our 2° (small) or 1° (workshop) grid.
#
# One xarray habit to know: when a field has negative *and* positive values (temperatures in °C do),
# xarray assumes it is an anomaly and centres the colour scale on zero, stretching it symmetrically.
# `center=False` tells it that this is an ordinary quantity.

# %%
#| label: fig-climatology
#| fig-cap: "Mean 2 m temperature over the whole record, Robinson projection, cividis colour map, with coastlines, country borders and labelled gridlines."
#| fig-alt: "World map in the Robinson projection. Temperatures run from dark blue over Antarctica, Greenland and the Arctic to yellow in the tropics, with colder colours over high mountains. Black coastlines, thin grey country borders and dashed gridlines every 30 degrees with degree labels on the left and bottom."
fig = plt.figure(figsize=(11, 5.2))
ax = fig.add_subplot(projection=ccrs.Robinson())
climatology_mesh = climatology.plot(
    ax=ax, transform=DATA_CRS, cmap="cividis", center=False,  # not an anomaly: see below
    cbar_kwargs={"orientation": "horizontal", "shrink": 0.6, "pad": 0.08, "label": "°C"},
)
ax.set_global()
ax.coastlines(resolution="110m", linewidth=0.8)
ax.add_feature(cfeature.BORDERS.with_scale("110m"), linewidth=0.4, edgecolor="#555555")
ax.gridlines(draw_labels=["left", "bottom"], xlocs=range(-120, 121, 60), ylocs=range(-60, 61, 30),
             linewidth=0.4, color="#777777", linestyle="--")
PERIOD = f"{ds.time.dt.strftime('%b %Y').values[0]} – {ds.time.dt.strftime('%b %Y').values[-1]}"
ax.set_title(f"Mean 2 m temperature, {PERIOD}")
save(fig, "climatology")

# %% [markdown]
# ### Exercise 1: a precipitation climatology for the flood modeller (6 min)
# Map the mean daily precipitation over Europe in the Lambert projection of section 2
# (`LAMBERT_EUROPE`, `EUROPE_EXTENT`), with 110m coastlines and borders as above. `tp` is in metres per
# time step (12 hours on the small dataset, 6 at workshop size): sum per day and convert to mm/day.
# Which colour map, and why not `RdBu_r`?
#
# <details><summary>Solution</summary>
#
# ```python
# steps_per_day = np.timedelta64(1, "D") // (ds.time[1] - ds.time[0]).values
# rain = (ds.tp.mean("time") * steps_per_day * 1000).compute()  # m per step -> mm/day
# fig = plt.figure(figsize=(10, 7.5))
# ax = fig.add_subplot(projection=LAMBERT_EUROPE)
# rain.plot(ax=ax, transform=DATA_CRS, cmap="viridis", cbar_kwargs={"label": "mm/day"})
# ax.set_extent(EUROPE_EXTENT, crs=DATA_CRS)
# ax.coastlines(resolution="110m")
# ax.add_feature(cfeature.BORDERS.with_scale("110m"), linewidth=0.5)
# ```
# Precipitation runs from zero upwards and has no meaningful middle, so it needs a *sequential* map
# (`viridis`, `cividis`, or `Blues`); a diverging map would suggest that some value is "neutral".
# For a precipitation *anomaly* a diverging map is right, and `BrBG` (brown = dry, green = wet) reads
# more naturally than red–blue.
# </details>

# %% [markdown]
# ## 5. An anomaly map: diverging and centred on zero *(core)*
#
# An anomaly has a meaningful middle: zero, "as usual for the season". A **diverging** colour map
# shows that: white at zero, red for warmer, blue for colder (`RdBu_r`; red–blue stays distinguishable
# for the common colour-vision deficiencies, unlike red–green). Two rules: centre it on zero
# (`center=0`), and make it symmetric, so that +3 °C and −3 °C get equally strong colours. xarray does
# both when you pass `center=0`; `robust=True` takes the limits from the 2nd and 98th percentiles so
# that one extreme cell does not wash out the rest.

# %%
#| label: fig-anomaly
#| fig-cap: "2 m temperature anomaly of the warmest day over western Europe relative to its month, RdBu_r centred on zero."
#| fig-alt: "World map in the Robinson projection coloured red where the day was warmer than the month's mean and blue where it was colder, white near zero. Coastlines in black and labelled gridlines."
fig = plt.figure(figsize=(11, 5.2))
ax = fig.add_subplot(projection=ccrs.Robinson())
anomaly_mesh = anomaly.plot(
    ax=ax, transform=DATA_CRS, cmap="RdBu_r", center=0, robust=True,
    cbar_kwargs={"orientation": "horizontal", "shrink": 0.6, "pad": 0.08, "label": "°C, relative to the month's mean"},
)
ax.set_global()
ax.coastlines(resolution="110m", linewidth=0.8)
ax.gridlines(draw_labels=["left", "bottom"], xlocs=range(-120, 121, 60), ylocs=range(-60, 61, 30),
             linewidth=0.4, color="#777777", linestyle="--")
ax.set_title(f"2 m temperature anomaly on {DAY}")
save(fig, "anomaly")

# %% [markdown]
# ### Exercise 2: your own globe (5 min)
# Draw the anomaly on an `Orthographic` projection centred on where you live, with coastlines, borders
# and gridlines (labels off). What happens to the grid cells near the edge of the globe?
#
# <details><summary>Solution</summary>
#
# `ccrs.Orthographic(central_longitude=LON, central_latitude=LAT)` and the same plotting code as in
# section 5 with `draw_labels=False`. Near the limb the cells are seen edge-on and squeezed into thin
# slivers: Orthographic is a view of the globe, not a map for reading values.
# </details>

# %% [markdown]
# ### Exercise 3: find the bug (4 min)
# A colleague maps the anomaly of the same unusual day with the same colour scale and projection, but
# their map is warm over one whole hemisphere and cold over the other, and Europe hardly stands out.
# Their anomaly is `bad = t2m.sel(time=DAY).mean("time") - climatology`. What is wrong? Plot `bad`
# next to `anomaly` (section 5) to check, and say what their map really shows.
#
# <details><summary>Solution</summary>
#
# `climatology` is the mean over *all* times, so `bad` is the day minus the annual mean: it shows the
# season (summer in one hemisphere, winter in the other), which swamps the day's weather. An anomaly
# must be taken against the climatology of the same time of year: section 1 subtracts
# `monthly.sel(month=day.month)`, the mean of that calendar month over every year (with more years, a
# day-of-year climatology is better still). `(bad - anomaly)` is the same for every day of a month:
# the month's mean minus the annual mean.
# </details>

# %% [markdown]
# ### Exercise 4: an honest colour scale (5 min)
# Plot the anomaly once with `cmap="RdBu_r", robust=True` but *without* `center=0`. Compare the colour
# bar with the one above. Why can that map mislead?
#
# <details><summary>Solution</summary>
#
# Without `center=0` the colour limits follow the data (e.g. −4 to +7 °C), so white no longer means
# zero: cells that were warmer than usual can look pale blue. Diverging maps must be centred on the
# value that means "nothing unusual" and should be symmetric around it.
# </details>

# %% [markdown]
# ## 6. A regional map for the flood modeller *(core)*
#
# Regional maps use a projection made for their latitude: Lambert conformal with standard parallels
# at 35° and 65° N is the usual choice for Europe. `set_extent` (in longitude/latitude, hence
# `crs=ccrs.PlateCarree()`) picks the region.
#
# **Offline trap.** For a map this small Cartopy *automatically* asks for the finer 1:50 million
# coastlines (and 1:10 million below about 15°), which are not shipped, so it tries to download
# them. Always say which layers you want: `ax.coastlines(resolution="110m")` and
# `cfeature.BORDERS.with_scale("110m")`. (If you forget, the course's `data/offline_maps.py` notices
# the failed download and draws the 110m layer instead, with one warning; with a network Cartopy
# downloads the finer layer once and caches it.)

# %%
#| label: fig-europe
#| fig-cap: "The same day's 2 m temperature anomaly over Europe, Lambert conformal projection, with 110m coastlines and borders drawn offline."
#| fig-alt: "Map of Europe in a Lambert conformal projection, with curved parallels and converging meridians, labelled every 10 degrees. Grid cells coloured red where the day was warmer than usual and blue where colder; coastlines in black and country borders in grey."
fig = plt.figure(figsize=(10, 6.6))
ax = fig.add_subplot(projection=LAMBERT_EUROPE)
europe_mesh = anomaly.plot(
    ax=ax, transform=DATA_CRS, cmap="RdBu_r", center=0, robust=True,
    cbar_kwargs={"shrink": 0.7, "label": "°C, relative to the month's mean"},
)
ax.set_extent(EUROPE_EXTENT, crs=DATA_CRS)
ax.coastlines(resolution="110m", linewidth=0.9)  # not the automatic 50m: works offline
ax.add_feature(cfeature.BORDERS.with_scale("110m"), linewidth=0.6, edgecolor="#444444")
ax.gridlines(draw_labels=["left", "bottom"], xlocs=range(-20, 41, 10), ylocs=range(30, 71, 10),
             x_inline=False, y_inline=False, rotate_labels=False, linewidth=0.4, color="#777777", linestyle="--")
ax.set_title(f"Europe, {DAY}")
save(fig, "europe")

# %% [markdown]
# Each coloured square is one grid cell of the data: 2° on the small dataset, 1° at workshop size
# (`COURSE_SIZE=workshop`). Resist the urge to smooth it; the map should show what the data resolve.
# For the polders of the Netherlands even 0.25° ERA5 is coarse, which is why flood modellers downscale.

# %% [markdown]
# ## 7. Did anything try the network? *(optional)*
# %%
#| label: offline-check
downloader = cartopy.config["downloaders"][("shapefiles", "natural_earth")]
used_fallback = getattr(type(downloader), "warned", False)
pngs = sorted(p.name for p in FIGURES.glob("*.png"))
print(f"network switched off for the whole lab: {network.active}")
print(f"connection attempts: {len(network.attempts)}")
print(f"finer layers requested, replaced by 110m: {used_fallback}")
print(f"maps drawn: {len(pngs)} PNGs in {FIGURES.relative_to(course.ROOT).as_posix()}")

# %% [markdown]
# ## Key points
# - `projection=` says how to draw the map; `transform=ccrs.PlateCarree()` says the data are
#   longitude/latitude. Always pass both.
# - Choose the projection for the region: Robinson for the world, Lambert conformal for mid-latitude
#   regions, Orthographic for a view of the globe.
# - Sequential, perceptually uniform colour maps (`cividis`, `viridis`) for quantities; diverging maps
#   (`RdBu_r`) centred on zero for anomalies. Never a rainbow.
# - Ask for the layers you have: `coastlines(resolution="110m")`, `BORDERS.with_scale("110m")`; regional
#   maps otherwise request finer layers, which needs a network.
# - Compute the fields with Dask first (one pass over the files), then plot small results.

# %%
network.stop()  # the network is back for whatever you run next

# %% [markdown]
# ## Checks
# Run by `pytest labs/08_maps.py`; the slides never show this cell.

# %% tags=["checks"]
def test_maps_drawn_with_the_network_off():
    assert block_works, "the network block did not work, so the offline check proves nothing"
    assert network.attempts == [], f"something tried the network: {network.attempts}"
    for name in ("projections", "transform", "climatology", "anomaly", "europe"):
        assert (FIGURES / f"{name}.png").stat().st_size > 10_000, name


def test_no_finer_layer_was_needed():
    assert not used_fallback


def test_projections():
    expected = {"PlateCarree": ccrs.PlateCarree, "Robinson": ccrs.Robinson,
                "Orthographic": ccrs.Orthographic, "Lambert conformal (Europe)": ccrs.LambertConformal}
    for name, cls in expected.items():
        assert isinstance(axes_by_name[name].projection, cls), name


def test_colour_maps():
    assert climatology_mesh.get_cmap().name == "cividis"
    for mesh in (anomaly_mesh, europe_mesh):
        assert mesh.get_cmap().name == "RdBu_r"
        assert np.isclose(mesh.norm.vmin, -mesh.norm.vmax)


def test_fields_are_sane():
    assert climatology.dims == ("latitude", "longitude") and anomaly.dims == ("latitude", "longitude")
    coldest, warmest = (-60, 45) if not era5.own_data() else (-90, 60)  # own files: any season, any place on Earth
    assert coldest < float(climatology.min()) < float(climatology.max()) < warmest
    assert float(europe_anomaly.max()) > 0


course.run_checks(globals())
