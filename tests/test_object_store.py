"""The local S3 server of episode 09 (``labs/course/s3.py``): it binds 127.0.0.1 only, serves a Zarr
round trip through s3fs, and leaves nothing running, also when the code inside ``with`` fails."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "labs"))
local_s3 = pytest.importorskip("course.s3")
pytest.importorskip("moto.server")
pytest.importorskip("s3fs")


def listening_addresses(pid: int) -> set[str]:
    try:
        return {c.laddr.ip for c in psutil.Process(pid).net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    except psutil.AccessDenied:
        pytest.skip("psutil may not inspect the server's sockets on this system")


def assert_stopped(pid: int, port: int) -> None:
    assert not psutil.pid_exists(pid), f"server process {pid} still exists"
    assert not local_s3.port_is_open(port), f"port {port} still accepts connections"
    assert all(child.pid != pid for child in psutil.Process().children(recursive=True))


@pytest.mark.filterwarnings("ignore:Consolidated metadata")
def test_round_trip_binds_locally_and_stops():
    xr = pytest.importorskip("xarray")
    data = xr.Dataset({"t2m": (("time", "x"), np.arange(24, dtype="float32").reshape(6, 4))})
    with local_s3.LocalS3() as s3:
        pid, port = s3.process.pid, s3.port
        assert listening_addresses(pid) == {"127.0.0.1"}
        s3.filesystem().mkdir("test")
        data.chunk({"time": 2}).to_zarr("s3://test/d.zarr", storage_options=s3.storage_options, mode="w",
                                         consolidated=True, zarr_format=3)
        back = xr.open_zarr("s3://test/d.zarr", storage_options=s3.storage_options).load()
    xr.testing.assert_identical(back, data)
    assert_stopped(pid, port)


def test_stops_when_the_code_inside_fails():
    with pytest.raises(ZeroDivisionError):
        with local_s3.LocalS3() as s3:
            pid, port = s3.process.pid, s3.port
            1 / 0
    assert_stopped(pid, port)


def test_stop_is_idempotent():
    s3 = local_s3.LocalS3().start()
    pid, port = s3.process.pid, s3.port
    s3.stop()
    s3.stop()
    assert_stopped(pid, port)
