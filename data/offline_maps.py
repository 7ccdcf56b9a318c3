"""Make cartopy draw maps without internet, using the Natural Earth layers we ship.

Cartopy draws ``ax.coastlines()``, ``cfeature.LAND``, ``cfeature.BORDERS`` and
friends from Natural Earth shapefiles.  The first time it needs one it
downloads it, which fails in an offline classroom or on an HPC compute node.

``configure_cartopy()`` fixes that in two steps:

1. It points cartopy's ``pre_existing_data_dir`` at ``data/natural_earth/``,
   which holds the small 110m layers the course uses (coastline, land, ocean,
   countries, land borders) in cartopy's own directory layout.  Global maps
   use 110m, so they never touch the network.
2. Regional maps ask for finer layers (cartopy picks 50m when the map spans
   less than 50 degrees, 10m below 15 degrees).  Those are not shipped.  A
   replacement downloader first looks for them on disk (maybe you downloaded
   them earlier), then tries to download them as cartopy normally would (so
   online users lose nothing), and if that fails it serves the shipped 110m
   layer instead, with one warning per session.

Set the environment variable ``COURSE_OFFLINE=1`` to skip download attempts
altogether (useful where a blocked connection hangs instead of failing fast).

Typical use (``labs/course.py`` does this for you)::

    import offline_maps
    offline_maps.configure_cartopy()
"""

from __future__ import annotations

import os
import socket
import urllib.error
import warnings
from pathlib import Path

#: Root of the shipped Natural Earth layers (cartopy's "pre-existing data" layout).
NATURAL_EARTH_DIR = Path(__file__).resolve().parent / "natural_earth"

#: Seconds to wait for a Natural Earth download before giving up.
DOWNLOAD_TIMEOUT = 10


class OfflineMapWarning(UserWarning):
    """A map uses the shipped 110m layer because a finer one could not be had."""


def _layer_path(root, resolution: str, category: str, name: str) -> Path:
    return (Path(root) / "shapefiles" / "natural_earth" / category
            / f"ne_{resolution}_{name}.shp")


def _offline_requested() -> bool:
    return os.environ.get("COURSE_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _make_downloader_class():
    """Build the downloader class lazily so importing this module stays cheap."""
    from cartopy.io import DownloadWarning
    from cartopy.io.shapereader import NEShpDownloader

    class OfflineFallbackDownloader(NEShpDownloader):
        """Natural Earth downloader that falls back to the shipped 110m layers.

        Search order for a layer: the user's own ``CARTOPY_DATA_DIR`` (if it
        was set), the course's ``data/natural_earth``, cartopy's download
        folder (``config['data_dir']``); then a download; then, if that fails,
        the shipped 110m version of the same layer.
        """

        # One warning per Python session, and no second download attempt
        # after the first one failed.
        warned = False
        download_failed = False

        def __init__(self, user_dirs=()):
            super().__init__(
                target_path_template=NEShpDownloader.default_downloader().target_path_template,
                pre_downloaded_path_template="",
            )
            self.user_dirs = [Path(d) for d in user_dirs if str(d) not in ("", ".")]

        def _urlopen(self, url):
            from urllib.request import urlopen
            response = urlopen(url, timeout=DOWNLOAD_TIMEOUT)
            warnings.warn(f"Downloading: {url}", DownloadWarning)
            return response

        def path(self, format_dict):
            resolution = format_dict["resolution"]
            category, name = format_dict["category"], format_dict["name"]
            for root in [*self.user_dirs, NATURAL_EARTH_DIR]:
                candidate = _layer_path(root, resolution, category, name)
                if candidate.exists():
                    return candidate
            target = self.target_path(format_dict)
            if target.exists():
                return target

            cls = type(self)
            error = None
            if not (_offline_requested() or cls.download_failed):
                try:
                    return self.acquire_resource(target, format_dict)
                except (OSError, urllib.error.URLError, socket.timeout) as exc:
                    cls.download_failed = True
                    error = exc
            fallback = _layer_path(NATURAL_EARTH_DIR, "110m", category, name)
            if not fallback.exists():
                raise RuntimeError(
                    f"Cartopy needs the Natural Earth layer '{category}/{name}' at {resolution}, "
                    f"which the course does not ship and which could not be downloaded"
                    f"{f' ({error})' if error else ''}; use coastlines, land, ocean or borders, "
                    f"or connect to the internet once so cartopy can cache it."
                ) from error
            if not cls.warned:
                cls.warned = True
                why = "offline mode (COURSE_OFFLINE)" if error is None else f"download failed: {error}"
                warnings.warn(
                    f"Natural Earth {resolution} '{name}' is not available offline ({why}); "
                    f"drawing the shipped 110m layers instead (coarser outlines). "
                    f"Further layers fall back the same way without another warning.",
                    OfflineMapWarning, stacklevel=2,
                )
            return fallback

    return OfflineFallbackDownloader


_DOWNLOADER_CLASS = None


def configure_cartopy() -> Path:
    """Point cartopy at the shipped Natural Earth layers; safe to call many times.

    Returns the directory now used as cartopy's ``pre_existing_data_dir``.
    """
    global _DOWNLOADER_CLASS
    import cartopy
    import cartopy.io.shapereader  # noqa: F401  (registers the default downloader)

    if _DOWNLOADER_CLASS is None:
        _DOWNLOADER_CLASS = _make_downloader_class()
    key = ("shapefiles", "natural_earth")
    current = cartopy.config["downloaders"].get(key)
    if not isinstance(current, _DOWNLOADER_CLASS):
        previous = cartopy.config.get("pre_existing_data_dir") or ""
        user_dirs = [] if Path(previous) == NATURAL_EARTH_DIR else [previous]
        cartopy.config["downloaders"][key] = _DOWNLOADER_CLASS(user_dirs)
    cartopy.config["pre_existing_data_dir"] = NATURAL_EARTH_DIR
    return NATURAL_EARTH_DIR


def shipped_layers() -> list[Path]:
    """The shapefiles shipped in ``data/natural_earth`` (for checks and docs)."""
    return sorted(NATURAL_EARTH_DIR.glob("shapefiles/natural_earth/*/*.shp"))
