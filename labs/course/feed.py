"""Feeding PyTorch from a Zarr store (episode 12): what DataLoader workers import by name.

A ``DataLoader`` with ``num_workers > 0`` sends its ``Dataset`` to worker processes. Under ``forkserver``
and ``spawn`` (the start methods that are safe with threads, Zarr 3's event loop and macOS/Windows),
those processes import the Dataset's class by its module name: a class defined in a notebook cannot
be found there. So the lab's faster feed and the worker set-up live here; the lab explains them.

* ``TimeBlocks``       a ``torch.utils.data.Dataset``: item ``i`` is ``xbatcher.BatchGenerator`` window
  ``i`` of a whole time block (``steps`` time steps of the whole grid), read without Dask, turned into
  one mini-batch ``(x, y)``: the inputs at every step ``t`` of the block → the target at ``t + 1``.
* ``worker_init``      runs first in every DataLoader worker: one thread for torch, Dask's synchronous
  scheduler (the worker *is* the parallelism), and the store opened in this process.
* ``loader_context()`` ``"forkserver"`` where it exists, else ``"spawn"`` (Windows).
* ``read_pieces``      the ceiling's reader: plain zarr reading given slices, decoding nothing else.
"""

from __future__ import annotations

import multiprocessing
import os

import numpy as np


def loader_context() -> str:
    """The start method for DataLoader workers: forkserver (Linux, macOS), else spawn (Windows).

    ``COURSE_START_METHOD=spawn`` asks for spawn everywhere, to try the Windows path on Linux; plain
    fork is never used (it copies Zarr's event-loop thread and Dask's threads half-way)."""
    if os.environ.get("COURSE_START_METHOD") == "spawn":
        return "spawn"
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


class TimeBlocks:
    """Whole time blocks of a Zarr store as PyTorch mini-batches, opened in whichever process reads them.

    ``store``: path of the Zarr store; ``inputs``: variables fed to the model; ``target``: the variable
    to predict one time step ahead; ``steps``: time steps per block (one Zarr shard along time);
    ``time_slice``: the part of the record to use; ``stats``: ``{name: (mean, std)}`` to normalise with;
    ``static``: time-independent fields added as input channels (e.g. ``["lsm"]``); ``local_time``: add
    the cosine and sine of the local solar time at ``t + 1`` (the diurnal cycle the forecast must know).

    Item ``i`` is ``(x, y)``: ``x`` of shape (steps − 1, channels, latitude, longitude), ``y`` of shape
    (steps − 1, 1, latitude, longitude): every step of the block but the last, and the target one step
    on. :meth:`pair` does the same for any loaded piece of the store (the lab's evaluation uses it).
    """

    def __init__(self, store, inputs, target, steps, time_slice=slice(None), stats=None, static=(),
                 local_time=False):
        self.store, self.inputs, self.target, self.steps = str(store), list(inputs), target, int(steps)
        self.time_slice, self.stats = time_slice, stats or {}
        self.static, self.local_time = list(static), local_time
        self._pid = self._generator = self._static = None
        self._length = len(self._open())  # opened here once to count blocks; reopened per process

    @property
    def channels(self) -> int:
        return len(self.inputs) + len(self.static) + 2 * self.local_time

    def _open(self):
        import xarray as xr
        import xbatcher

        ds = xr.open_zarr(self.store, consolidated=True, chunks=None)  # no Dask: one read per variable
        self._static = {v: self._normalised(ds[v].values, v) for v in self.static}
        ds = ds[sorted(set(self.inputs) | {self.target})].isel(time=self.time_slice)
        block = {"time": self.steps, "latitude": ds.sizes["latitude"], "longitude": ds.sizes["longitude"]}
        self._generator = xbatcher.BatchGenerator(ds, input_dims=block)
        self._pid = os.getpid()
        return self._generator

    def __getstate__(self):  # what travels to a DataLoader worker: the recipe, never an open store
        state = dict(self.__dict__)
        state["_generator"] = state["_pid"] = state["_static"] = None
        return state

    def __len__(self) -> int:
        return self._length

    def block(self, i: int):
        """Block ``i`` as a loaded xarray Dataset (opens the store first if this process has none)."""
        if self._generator is None or self._pid != os.getpid():
            self._open()
        return self._generator[int(i)].load()

    def __getitem__(self, i: int):
        return self.pair(self.block(i))

    def pair(self, w):
        """``(x, y)`` tensors from a loaded Dataset ``w`` of (time, latitude, longitude) fields."""
        import torch

        if self._static is None or self._pid != os.getpid():
            self._open()
        n, ny, nx = w.sizes["time"], w.sizes["latitude"], w.sizes["longitude"]
        x = np.empty((n - 1, self.channels, ny, nx), np.float32)  # written once, channel by channel
        for k, name in enumerate(self.inputs):
            x[:, k] = self._normalised(w[name].values[:-1], name)
        for k, name in enumerate(self.static, start=len(self.inputs)):
            x[:, k] = self._static[name]
        if self.local_time:  # the hour at the target step, shifted by longitude: 15 degrees an hour
            hours = (w.time.values[1:] - w.time.values[1:].astype("datetime64[D]")) / np.timedelta64(1, "h")
            angle = 2 * np.pi * (hours[:, None] + w.longitude.values[None, :] / 15) / 24
            x[:, -2] = np.cos(angle)[:, None, :]
            x[:, -1] = np.sin(angle)[:, None, :]
        y = self._normalised(w[self.target].values[1:], self.target)[:, None]
        return torch.from_numpy(x), torch.from_numpy(y)

    def _normalised(self, values, name):
        """``values`` normalised, as float32, in as few passes as NumPy allows; 0 where missing."""
        mean, std = self.stats.get(name, (0.0, 1.0))
        out = np.subtract(values, mean, dtype=np.float32)  # subtract and convert in one pass
        out /= np.float32(std)
        np.nan_to_num(out, copy=False)  # sst is missing over land: 0 = its mean after normalising
        return out


def worker_init(worker_id: int) -> None:
    """Set up one DataLoader worker process (``worker_init_fn``)."""
    import dask
    import torch

    torch.set_num_threads(1)  # the DataLoader's workers are the parallelism; no threads on top
    dask.config.set(scheduler="synchronous")  # any Dask work of an item runs in this thread
    info = torch.utils.data.get_worker_info()
    if info is not None and hasattr(info.dataset, "_open"):
        info.dataset._open()  # this process's own Zarr handle, never one inherited from the parent


def read_pieces(store, pieces) -> int:
    """Read ``(variable, time slice, latitude slice, longitude slice)`` pieces of a Zarr store with plain
    zarr; return how many values. The ceiling's reader: it opens the store itself, in its own process."""
    import zarr

    group = zarr.open_group(str(store), mode="r")
    return sum(group[v][t, y, x].size for v, t, y, x in pieces)
