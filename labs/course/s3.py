"""A private S3-compatible object store on this machine, for episode 09 (``from course import s3``).

The server is moto (``pip install "moto[server]"``), a stand-in for Amazon S3 that keeps the objects
in the memory of its own process. It runs as a separate process, as a real object store would, bound
to ``127.0.0.1`` (nobody else on the network can reach it) on a port the operating system chooses
(so it never clashes with anything already running)::

    with s3.LocalS3() as store:
        ds.to_zarr("s3://course/era5.zarr", storage_options=store.storage_options)

Leaving the ``with`` block stops the server and checks that its process is gone and its port closed.
Run ``python labs/course/s3.py`` to start one by hand (Ctrl-C stops it).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

# Dummy credentials: the local server accepts any, but S3 clients refuse to sign requests without some.
KEY, SECRET, REGION = "course-key", "course-secret", "eu-west-1"


def _serve() -> None:
    """Run in the child process: serve S3 on 127.0.0.1 at a free port and print ``PORT <n>``."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app),
                         threaded=True, request_handler=MotoRequestHandler)
    # Die with the parent: when the process that started us ends (even if it is killed), our stdin
    # reaches end-of-file and we exit, so no orphaned server is ever left behind.
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    print(f"PORT {server.server_address[1]}", flush=True)
    os.dup2(2, 1)  # nobody reads our stdout from now on: send anything printed to the log instead
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


class LocalS3:
    """Start a local S3 server on entry, stop it on exit (also on errors and Ctrl-C)."""

    def __init__(self, start_timeout: float = 60):
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage_options(self) -> dict:
        """What fsspec/s3fs (and so xarray, pandas, intake) need to reach this server, as for real S3."""
        return {"key": KEY, "secret": SECRET, "anon": False, "endpoint_url": self.endpoint_url,
                "client_kwargs": {"region_name": REGION}}

    def filesystem(self):
        """An ``s3fs.S3FileSystem`` talking to this server."""
        import s3fs

        return s3fs.S3FileSystem(**self.storage_options)

    def start(self) -> "LocalS3":
        try:
            import moto.server  # noqa: F401
            import s3fs  # noqa: F401
        except ImportError as err:
            raise RuntimeError(f"The local object store needs moto[server] and s3fs ({err.name} is missing): "
                               "pip install 'moto[server]' s3fs, or use the course's pixi environment.") from None
        log = tempfile.TemporaryFile()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve"], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        self._log = log
        line = self.process.stdout.readline()  # blocks until the child has bound its port (or died)
        if not line.startswith("PORT "):
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
            self.stop()
            raise RuntimeError(f"The local S3 server did not start ({tail[0]}); "
                               "check that moto[server] is installed in this environment.")
        self.port = int(line.split()[1])
        deadline = time.monotonic() + self.start_timeout
        while True:  # the port is bound; wait until the server answers HTTP requests
            try:
                urllib.request.urlopen(self.endpoint_url + "/moto-api/", timeout=5).close()
                break
            except urllib.error.HTTPError:
                break  # it answered, even if with an error status
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("The local S3 server started but does not answer; see its log "
                                       "by running `python labs/local_s3.py` by hand.") from None
                time.sleep(0.1)
        return self

    def stop(self) -> None:
        """Stop the server process, wait for it, and make sure nothing is left listening."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process.stdin.close()
        self.process.stdout.close()
        self._log.close()
        self.pid, self.process = self.process.pid, None

    def __enter__(self) -> "LocalS3":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        _serve()
    else:
        with LocalS3() as s3:
            print(f"Local S3 at {s3.endpoint_url} (key {KEY!r}, secret {SECRET!r}). Ctrl-C stops it.")
            try:
                s3.process.wait()
            except KeyboardInterrupt:
                pass
        print("stopped; port closed:", not port_is_open(s3.port))
