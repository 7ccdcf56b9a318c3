"""Maps render with the network blocked, from the Natural Earth layers in data/natural_earth."""

from __future__ import annotations

import io
import socket
import sys
import warnings
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
sys.path.insert(0, str(DATA))

import offline_maps  # noqa: E402

LAYERS = {
    "physical": ["ne_110m_coastline", "ne_110m_land", "ne_110m_ocean"],
    "cultural": ["ne_110m_admin_0_countries", "ne_110m_admin_0_boundary_lines_land"],
}


def test_shipped_layers_are_complete_and_small():
    root = offline_maps.NATURAL_EARTH_DIR / "shapefiles" / "natural_earth"
    for category, names in LAYERS.items():
        for name in names:
            for ext in (".shp", ".shx", ".dbf", ".prj"):
                assert (root / category / f"{name}{ext}").exists(), f"{category}/{name}{ext}"
    total = sum(p.stat().st_size for p in offline_maps.NATURAL_EARTH_DIR.rglob("*") if p.is_file())
    assert total < 2e6
    assert (offline_maps.NATURAL_EARTH_DIR / "README.md").exists()


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Block every outgoing connection and hide any previously downloaded layers."""
    import cartopy

    attempts = []

    def refuse(self, address):
        attempts.append(address)
        raise OSError("network blocked by the test")

    def no_dns(*args, **kwargs):
        attempts.append(args[:2])
        raise socket.gaierror("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setitem(cartopy.config, "data_dir", tmp_path / "cartopy_downloads")
    offline_maps.configure_cartopy()
    downloader = cartopy.config["downloaders"][("shapefiles", "natural_earth")]
    monkeypatch.setattr(type(downloader), "warned", False)
    monkeypatch.setattr(type(downloader), "download_failed", False)
    return attempts


def test_configure_is_idempotent():
    import cartopy
    first = offline_maps.configure_cartopy()
    downloader = cartopy.config["downloaders"][("shapefiles", "natural_earth")]
    assert offline_maps.configure_cartopy() == first == cartopy.config["pre_existing_data_dir"]
    assert cartopy.config["downloaders"][("shapefiles", "natural_earth")] is downloader


def test_global_and_regional_maps_render_offline(no_network):
    import matplotlib
    matplotlib.use("Agg")
    import cartopy.crs as ccrs
    import cartopy.feature as cfeature
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(10, 4))
    world = fig.add_subplot(1, 2, 1, projection=ccrs.PlateCarree())
    world.set_global()
    world.add_feature(cfeature.LAND)
    world.add_feature(cfeature.OCEAN)
    world.coastlines()
    world.add_feature(cfeature.BORDERS, linewidth=0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(io.BytesIO(), format="png")
    assert not no_network, "global 110m maps must not even try the network"
    assert not [w for w in caught if issubclass(w.category, offline_maps.OfflineMapWarning)]

    # A regional map asks cartopy for 50m layers: served from the shipped 110m, one warning.
    europe = fig.add_subplot(1, 2, 2, projection=ccrs.LambertConformal(central_longitude=10,
                                                                        central_latitude=50))
    europe.set_extent([-10, 30, 35, 65], crs=ccrs.PlateCarree())
    europe.coastlines()
    europe.add_feature(cfeature.BORDERS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    plt.close(fig)
    offline = [w for w in caught if issubclass(w.category, offline_maps.OfflineMapWarning)]
    assert len(offline) == 1 and "110m" in str(offline[0].message)
    assert buffer.getbuffer().nbytes > 10_000


def test_offline_mode_skips_download(no_network, monkeypatch):
    import cartopy.io.shapereader as shapereader

    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.warns(offline_maps.OfflineMapWarning):
        path = shapereader.natural_earth("50m", "physical", "coastline")
    assert Path(path).name == "ne_110m_coastline.shp"
    assert not no_network
    with pytest.raises(RuntimeError, match="does not ship"):
        shapereader.natural_earth("50m", "physical", "rivers_lake_centerlines")
