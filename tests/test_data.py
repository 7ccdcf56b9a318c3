"""Checks of the course dataset: data/era5_like.py, data/era5_cloud.py.

Run with ``pytest tests/test_data.py`` (about half a minute on 2 cores).  The
small dataset is generated once into a temporary directory; determinism and
resume tests use a tiny custom size ("0.03GB": three monthly files of the small grid).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import signal
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
sys.path.insert(0, str(DATA))

try:
    import resource                      # not on Windows
except ImportError:
    resource = None

import era5_cloud  # noqa: E402
import era5_like  # noqa: E402

TINY = "0.03GB"            # 3 months on the small grid: about 30 MB, a second or two
SMALL = era5_like.SIZES["small"]


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A private COURSE_DATA_DIR for this test session."""
    root = tmp_path_factory.mktemp("course_data")
    patch = pytest.MonkeyPatch()
    patch.setenv("COURSE_DATA_DIR", str(root))
    yield root
    patch.undo()


@pytest.fixture(scope="session")
def small(data_root):
    """The small dataset, made on demand exactly as the labs make it.

    It is made in a fresh Python process, so that the peak memory measured covers the generator
    and its workers only, not processes that earlier tests (the labs' kernels) started.
    """
    start = time.perf_counter()
    code = (
        "import resource, sys, era5_like; era5_like.ensure_dataset('small');"
        "r = resource.getrusage; print(max(r(resource.RUSAGE_SELF).ru_maxrss, r(resource.RUSAGE_CHILDREN).ru_maxrss))"
        if resource is not None else "import era5_like; era5_like.ensure_dataset('small'); print(-1)"
    )
    env = {**os.environ, "PYTHONPATH": str(DATA)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    seconds = time.perf_counter() - start
    directory = era5_like.ensure_dataset("small")
    peak = int(out.stdout.strip().splitlines()[-1])
    peak_mb = None if peak < 0 else (peak / 2**20 if sys.platform == "darwin" else peak / 1024)
    print(f"\nsmall dataset: {seconds:.1f} s, largest process {peak_mb} MB")
    return {"dir": directory, "seconds": seconds, "peak_mb": peak_mb}


@pytest.fixture(scope="session")
def ds(small):
    xr = pytest.importorskip("xarray")
    with xr.open_mfdataset(str(small["dir"] / "era5_*.nc"), data_vars="minimal",
                           coords="minimal", compat="override") as dataset:
        yield dataset.load()


@pytest.fixture(scope="module")
def tiny_reference(tmp_path_factory):
    """A tiny dataset generated in one go, in this process (workers=1)."""
    out = tmp_path_factory.mktemp("tiny_ref")
    era5_like.generate(TINY, out=out, workers=1, quiet=True)
    return out


def manifest_files(directory) -> dict:
    return json.loads((Path(directory) / "manifest.json").read_text())["files"]


# --- the small dataset -----------------------------------------------------------------

def test_small_is_made_on_demand_and_complete(small):
    directory = small["dir"]
    assert directory == Path(os.environ["COURSE_DATA_DIR"]) / "small"
    names = sorted(p.name for p in directory.glob("era5_*.nc"))
    assert names == [f"era5_2000-{m:02d}.nc" for m in range(1, 13)]
    total = sum((directory / n).stat().st_size for n in names)
    assert 80e6 < total < 160e6            # 2° grid, 12-hourly, one year: about 120 MB
    assert era5_like.check(directory) == []
    if small["peak_mb"] is not None:
        assert small["peak_mb"] < 1024, "every generator process must stay under 1 GiB"


def test_ensure_dataset_returns_quickly_when_complete(small):
    start = time.perf_counter()
    assert era5_like.ensure_dataset("small") == small["dir"]
    assert time.perf_counter() - start < 2


def test_layout_and_cf_metadata(small):
    netCDF4 = pytest.importorskip("netCDF4")
    files = sorted(small["dir"].glob("era5_*.nc"))
    previous_end = -np.inf
    for path in files:
        with netCDF4.Dataset(path) as nc:
            assert nc.Conventions.startswith("CF-")
            # no time stamps anywhere: files must be bit-for-bit reproducible
            assert not re.search(r"\d{4}-\d{2}-\d{2}", " ".join(map(str, nc.__dict__.values())))
            lat, lon, time_ = nc["latitude"][:], nc["longitude"][:], nc["time"][:]
            assert lat[0] == 90 and lat[-1] == -90 and np.all(np.diff(lat) < 0)
            assert lon[0] == 0 and lon[-1] < 360 and np.all(np.diff(lon) > 0)
            assert nc["time"].calendar and nc["time"].units.startswith("hours since 1900-01-01")
            assert time_[0] > previous_end and np.all(np.diff(time_) == SMALL.step_hours)  # names sort in time order
            previous_end = time_[-1]
            for name in ("latitude", "longitude"):
                assert {"units", "long_name", "standard_name"} <= set(nc[name].ncattrs())
            for name in ("lsm", "z"):
                assert nc[name].dimensions == ("latitude", "longitude")        # static: no time
                assert {"units", "long_name", "standard_name"} <= set(nc[name].ncattrs())
            for name in ("t2m", "sst", "tp", "u10", "v10"):
                var = nc[name]
                assert var.dimensions == ("time", "latitude", "longitude")
                assert var.dtype == np.int16
                assert {"scale_factor", "add_offset", "_FillValue", "missing_value", "units",
                        "long_name", "standard_name"} <= set(var.ncattrs())
    with netCDF4.Dataset(files[0]) as nc:
        assert nc["t2m"].units == "K" and nc["tp"].units == "m" and nc["z"].units == "m**2 s**-2"
        assert nc["sst"].standard_name == "sea_surface_temperature"


def test_open_mfdataset_broadcasts_static_fields_by_default(small):
    xr = pytest.importorskip("xarray")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        with xr.open_mfdataset(str(small["dir"] / "era5_*.nc")) as dataset:
            assert dataset.lsm.dims == ("time", "latitude", "longitude")
            assert dataset.t2m.dtype == np.float32


def test_climatology(ds):
    weights = np.cos(np.deg2rad(ds.latitude))
    global_mean = float(ds.t2m.weighted(weights).mean())
    assert abs(global_mean - 288) < 3

    monthly = ds.t2m.groupby("time.month").mean().mean("longitude")
    amplitude = monthly.max("month") - monthly.min("month")
    assert float(amplitude.sel(latitude=60)) > 3 * float(amplitude.sel(latitude=0))
    assert float(amplitude.sel(latitude=60)) > 10

    land = ds.lsm > era5_like.LAND_THRESHOLD
    # 12-hourly: 00 and 12 UTC, so every longitude sees one day-time and one night-time value
    assert set(ds.time.dt.hour.values) == set(range(0, 24, SMALL.step_hours)) == {0, 12}
    daily = ds.t2m.resample(time="1D")
    diurnal_range = (daily.max() - daily.min()).mean("time")
    assert float(diurnal_range.where(land).mean()) > 2 * float(diurnal_range.where(~land).mean())

    # sst is missing exactly over land, at every time step
    assert bool((ds.sst.isnull() == land).all())
    assert 271 < float(ds.sst.min()) and float(ds.sst.max()) < 310

    # orography: Tibet high, open ocean at sea level
    z = ds.z / 9.80665
    assert float(z.sel(latitude=35, longitude=85, method="nearest")) > 2500
    assert float(z.sel(latitude=0, longitude=180, method="nearest")) == 0
    assert 0.2 < float(ds.lsm.weighted(weights).mean()) < 0.4      # 29 % of Earth is land


def test_weather_has_memory_and_structure(ds):
    """Not white noise: anomalies persist from day to day and are smooth in space."""
    xr = pytest.importorskip("xarray")
    daily = ds.t2m.resample(time="1D").mean()
    anomaly = daily - daily.rolling(time=31, center=True, min_periods=1).mean()
    anomaly = anomaly.sel(latitude=slice(60, -60)).isel(time=slice(20, -20))
    lag1 = xr.corr(anomaly.isel(time=slice(1, None)),
                   anomaly.isel(time=slice(None, -1)).assign_coords(time=anomaly.time[1:]))
    assert float(lag1) > 0.4
    neighbours = xr.corr(anomaly.isel(longitude=slice(1, None)),
                         anomaly.isel(longitude=slice(None, -1)).assign_coords(
                             longitude=anomaly.longitude[1:]))
    assert float(neighbours) > 0.5
    tp_mm_per_day = float(ds.tp.mean()) * 1000 * (24 // SMALL.step_hours)
    assert 1 < tp_mm_per_day < 5
    assert float(ds.tp.min()) == 0.0          # no rain is exactly zero after unpacking


def test_rain_follows_a_climate(ds):
    """Wet ITCZ, dry subtropics, storm tracks, an ITCZ that follows the sun, afternoon showers over
    tropical land; persistent but not certain, and not made from the winds (the ML episodes' features)."""
    xr = pytest.importorskip("xarray")
    wet = ds.tp * 1000 > 0.1                                   # a wet step: more than 0.1 mm
    zonal = wet.mean(["time", "longitude"])
    band = lambda lo, hi: float(zonal.where((abs(zonal.latitude) >= lo) & (abs(zonal.latitude) <= hi)).mean())
    itcz = float(zonal.sel(latitude=slice(10, -5)).mean())
    subtropics, storm_tracks = band(18, 32), band(40, 55)
    assert itcz > 2 * subtropics and storm_tracks > 2 * subtropics
    assert 0.05 < subtropics < 0.3 and 0.3 < itcz < 0.8 and 0.3 < storm_tracks < 0.7

    season = wet.time.dt.month
    wettest = lambda months: float(wet.sel(time=season.isin(months)).mean(["time", "longitude"])
                                   .sel(latitude=slice(30, -30)).idxmax())
    assert wettest([6, 7, 8]) > wettest([12, 1, 2])            # the ITCZ moves north in July

    land = ds.lsm > era5_like.LAND_THRESHOLD
    solar_hour = (ds.time.dt.hour + ds.longitude / 15) % 24    # local solar time of each step
    tropical_land = land & (abs(ds.latitude) < 25)
    afternoon = (solar_hour >= 12) & (solar_hour < 24)
    assert float(wet.where(tropical_land & afternoon).mean()) > 1.2 * float(wet.where(tropical_land & ~afternoon).mean())

    before, after = wet.isel(time=slice(None, -1)).values, wet.isel(time=slice(1, None)).values
    p_wet_after_wet = (before & after).sum() / before.sum()
    assert 2 * float(wet.mean()) < p_wet_after_wet < 0.9        # persistent, but not certain
    wind = np.hypot(ds.u10, ds.v10)
    assert abs(float(xr.corr(ds.tp, wind))) < 0.1               # rain is not made from the winds


def test_images(small):
    from PIL import Image
    folder = era5_like.ensure_images("small")
    assert folder == small["dir"] / "images"
    pngs = sorted(folder.glob("t2m_*.png"))
    assert len(pngs) == 366 and pngs[0].name == "t2m_2000-01-01.png"
    with Image.open(pngs[180]) as image:
        assert image.format == "PNG" and image.width >= 720
        assert image.text["variable"] == "t2m" and image.text["units"] == "K"
    start = time.perf_counter()
    assert era5_like.ensure_images("small") == folder
    assert time.perf_counter() - start < 2


# --- determinism, resume, check ------------------------------------------------------------

def test_parse_size():
    assert era5_like.parse_size("small").resolution == 2.0
    assert era5_like.parse_size("small").step_hours == 12
    assert era5_like.parse_size("workshop").months == 36
    tiny = era5_like.parse_size(TINY)
    assert tiny.name == "0.03GB" and tiny.months == 3 and tiny.step_hours == SMALL.step_hours
    assert era5_like.parse_size("30GB").resolution == 0.5
    assert 2e9 < era5_like.SIZES["workshop"].total_bytes() < 4e9
    assert era5_like.SIZES["large"].total_bytes() > 30e9
    with pytest.raises(era5_like.DatasetError, match="Unknown size"):
        era5_like.parse_size("huge")


def test_deterministic_whatever_the_number_of_workers(tiny_reference, tmp_path):
    reference = manifest_files(tiny_reference)
    assert len(reference) == 3
    era5_like.generate(TINY, out=tmp_path / "again", workers=1, quiet=True)
    assert manifest_files(tmp_path / "again") == reference
    era5_like.generate(TINY, out=tmp_path / "two", workers=2, quiet=True)
    assert manifest_files(tmp_path / "two") == reference
    era5_like.generate("0.004GB", out=tmp_path / "seed", workers=1, seed=1, quiet=True)
    other = manifest_files(tmp_path / "seed")
    assert other["era5_2000-01.nc"]["sha256"] != reference["era5_2000-01.nc"]["sha256"]


def test_resume_after_damage_gives_the_same_manifest(tiny_reference, tmp_path):
    work = tmp_path / "tiny"
    shutil.copytree(tiny_reference, work)
    untouched = work / "era5_2000-01.nc"
    mtime = untouched.stat().st_mtime_ns
    (work / "era5_2000-02.nc").unlink()                                   # deleted
    with open(work / "era5_2000-03.nc", "r+b") as fh:                     # truncated
        fh.truncate(12345)
    (work / ".era5_2000-02.nc.part").write_bytes(b"half a file")        # leftover
    era5_like.generate(TINY, out=work, workers=1, quiet=True)
    assert manifest_files(work) == manifest_files(tiny_reference)
    assert json.loads((work / "manifest.json").read_text())["complete"]
    assert untouched.stat().st_mtime_ns == mtime, "finished files must not be rewritten"
    assert not list(work.glob(".*.part"))
    assert era5_like.check(work) == []


def test_resume_after_kill_gives_the_same_manifest(tiny_reference, tmp_path):
    work = tmp_path / "killed"
    cmd = [sys.executable, str(DATA / "era5_like.py"), "--size", TINY, "--out", str(work),
           "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        manifest = work / "manifest.json"
        if manifest.exists() and json.loads(manifest.read_text())["files"]:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
    proc.wait()
    era5_like.generate(TINY, out=work, workers=1, quiet=True)
    assert manifest_files(work) == manifest_files(tiny_reference)
    assert era5_like.check(work) == []


def test_check_names_every_damaged_file(tiny_reference, tmp_path):
    work = tmp_path / "damaged"
    shutil.copytree(tiny_reference, work)
    with open(work / "era5_2000-01.nc", "r+b") as fh:
        fh.truncate(1000)
    with open(work / "era5_2000-02.nc", "r+b") as fh:                     # same size, one byte off
        fh.seek(5000)
        byte = fh.read(1)
        fh.seek(5000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    (work / "era5_2000-03.nc").unlink()
    problems = era5_like.check(work)
    assert len(problems) == 3
    assert "era5_2000-01.nc" in problems[0] and "truncated" in problems[0]
    assert "era5_2000-02.nc" in problems[1] and "corrupt" in problems[1]
    assert "era5_2000-03.nc" in problems[2] and "missing" in problems[2]

    result = subprocess.run([sys.executable, str(DATA / "era5_like.py"), "--check", str(work)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "era5_2000-01.nc: truncated" in result.stdout and "Traceback" not in result.stderr

    # --verify repairs exactly what is damaged
    era5_like.generate(TINY, out=work, workers=1, quiet=True, verify=True)
    assert era5_like.check(work) == []
    assert manifest_files(work) == manifest_files(tiny_reference)


def test_check_never_raises(tmp_path):
    assert "does not exist" in era5_like.check(tmp_path / "nowhere")[0]
    assert "no manifest.json" in era5_like.check(tmp_path)[0]
    (tmp_path / "manifest.json").write_text("{not json")
    assert "unreadable" in era5_like.check(tmp_path)[0]


@pytest.mark.parametrize("args, message", [
    (["--size", "enormous"], "Unknown size"),
    (["--size", TINY, "--workers", "0"], "at least 1"),
    (["--bogus"], "Unrecognized arguments"),
])
def test_cli_errors_are_one_sentence(args, message, tmp_path):
    result = subprocess.run([sys.executable, str(DATA / "era5_like.py"), *args, "--out",
                             str(tmp_path / "x")], capture_output=True, text=True)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_refuses_other_settings_and_foreign_files(tiny_reference, tmp_path):
    with pytest.raises(era5_like.DatasetError, match="other settings"):
        era5_like.generate(TINY, out=tiny_reference, seed=5, workers=1, quiet=True)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.nc").write_bytes(b"precious")
    with pytest.raises(era5_like.DatasetError, match="did not make"):
        era5_like.generate(TINY, out=foreign, workers=1, quiet=True)


def test_disk_space_is_checked_first(tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(era5_like.shutil, "disk_usage",
                        lambda path: usage._replace(free=1_000_000))
    with pytest.raises(era5_like.DatasetError, match="Not enough free disk space"):
        era5_like.generate(TINY, out=tmp_path / "full", workers=1, quiet=True)
    assert not list((tmp_path / "full").glob("*.nc"))


# --- optional real data: the ARCO-ERA5 loader, against a local store ----------------------------

@pytest.fixture(scope="module")
def sample_store(tmp_path_factory):
    return era5_cloud.make_sample_store(tmp_path_factory.mktemp("arco") / "arco.zarr")


def test_cloud_loader_renames_and_subsets(sample_store):
    ds = era5_cloud.open_era5("2021-07-01", "2021-07-01", store=str(sample_store),
                              area=(70, -30, 30, 50), step_hours=6)
    assert set(ds.data_vars) == {"t2m", "sst", "tp", "u10", "v10", "lsm", "z"}
    assert ds.lsm.dims == ("latitude", "longitude") and ds.z.dims == ("latitude", "longitude")
    assert ds.sizes["time"] == 4 and set(ds.time.dt.hour.values) == {0, 6, 12, 18}
    assert float(ds.latitude[0]) == 70 and float(ds.latitude[-1]) == 30
    assert list(ds.longitude.values[:3]) == [330, 340, 350] and float(ds.longitude[-1]) == 50
    assert ds.t2m.chunks is not None                           # lazy, dask-backed
    assert 250 < float(ds.t2m.mean()) < 320
    with pytest.raises(era5_cloud.CloudDataError, match="Unknown variable"):
        era5_cloud.open_era5(store=str(sample_store), variables=["msl"])
    with pytest.raises(era5_cloud.CloudDataError, match="Cannot open"):
        era5_cloud.open_era5(store=str(sample_store.parent / "missing.zarr"))


def test_cloud_loader_over_http_and_download(sample_store, tmp_path):
    """The same code path as online use: a Zarr store read over HTTP (here on loopback)."""
    xr = pytest.importorskip("xarray")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(sample_store.parent))
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/{sample_store.name}"
            ds = era5_cloud.open_era5("2021-07-02", None, variables=["t2m", "z"], store=url, stride=2)
            assert ds.sizes == {"time": 24, "latitude": 10, "longitude": 18}
            assert np.isfinite(float(ds.t2m.mean()))
            files = era5_cloud.download(tmp_path / "real", "2021-07", "2021-07", store=url,
                                        step_hours=6)
        finally:
            server.shutdown()
    assert [f.name for f in files] == ["era5_2021-07.nc"]
    with xr.open_dataset(files[0], mask_and_scale=False) as raw:
        assert raw.t2m.dtype == np.int16 and raw.lsm.dims == ("latitude", "longitude")
    with xr.open_dataset(files[0]) as saved:
        assert saved.sizes["time"] == 8 and float(saved.latitude[0]) == 90
