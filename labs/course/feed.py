"""Feeding PyTorch from a Zarr store with xbatcher (episode 12): what DataLoader workers import by name.

A ``DataLoader`` with ``num_workers > 0`` sends its ``Dataset`` to worker processes. Under ``forkserver``
and ``spawn`` (the start methods that are safe with threads, Zarr 3's event loop and macOS/Windows),
those processes import the Dataset's class by its module name: a class defined in a notebook cannot
be found there. So the lab's Dataset and the worker set-up live here; the lab explains them.

* ``PatchWindows``     a ``torch.utils.data.Dataset``: item ``i`` is window ``i`` of an
  ``xbatcher.BatchGenerator`` over the Zarr store (time × latitude × longitude patches), loaded and
  turned into tensors ``(inputs, target)``: every variable at time ``t`` → t2m at ``t + 1``.
* ``PatchBlocks``      the same windows, many per item: item ``i`` is one xbatcher window of a whole
  time block (window time × the grid), read without Dask and cut into patches with NumPy, so the
  per-item Python work is paid once per block instead of once per patch.
* ``worker_init``      runs first in every DataLoader worker: one thread for torch, Dask's synchronous
  scheduler (the worker *is* the parallelism), and a fresh Zarr handle opened in this process.
* ``loader_context()`` ``"forkserver"`` where it exists, else ``"spawn"`` (Windows).
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


class PatchWindows:
    """Windows of a Zarr store as PyTorch samples, opened lazily in whichever process reads them.

    ``store``: path of the Zarr store; ``inputs``: variables fed to the model; ``target``: the variable
    to predict one time step ahead; ``window``: sizes of one xbatcher window, e.g.
    ``{"time": 16, "latitude": 32, "longitude": 32}``; ``time_slice``: the part of the record to use;
    ``stats``: ``{name: (mean, std)}`` to normalise with; ``preload_batch``: xbatcher's option
    (False: we ``.load()`` the window ourselves); ``use_dask``: open the store with Dask chunks.

    An item is ``(x, y)``: ``x`` of shape (window time − 1, len(inputs), latitude, longitude) holds the
    inputs at steps 0 … n−2 of the window, ``y`` of shape (window time − 1, 1, latitude, longitude) holds
    the target at steps 1 … n−1: every pair inside a window is one training sample.
    """

    mask_and_scale = True  # Xarray decodes the packed integers (into float64: the attributes are float64)

    def __init__(self, store, inputs, target, window, time_slice=slice(None), stats=None,
                 preload_batch=False, use_dask=True):
        self.store, self.inputs, self.target = str(store), list(inputs), target
        self.window, self.time_slice, self.stats = dict(window), time_slice, stats or {}
        self.preload_batch, self.use_dask = preload_batch, use_dask
        self._pid = None
        self._generator = None
        self._length = len(self._open())  # opened here once to count windows; reopened per process

    def _open(self):
        import xarray as xr
        import xbatcher

        ds = xr.open_zarr(self.store, consolidated=True, chunks={} if self.use_dask else None,
                          mask_and_scale=self.mask_and_scale)
        ds = ds[sorted(set(self.inputs) | {self.target})].isel(time=self.time_slice)
        # A Dataset, not a DataArray: xbatcher 0.4.0 keeps its coordinates right (see the lab).
        self._generator = xbatcher.BatchGenerator(ds, input_dims=self._input_dims(ds),
                                                  preload_batch=self.preload_batch)
        self._pid = os.getpid()
        return self._generator

    def _input_dims(self, ds) -> dict:
        """The size of one xbatcher window: here one training window."""
        return self.window

    def __getstate__(self):  # what travels to a DataLoader worker: the recipe, never an open store
        state = dict(self.__dict__)
        state["_generator"], state["_pid"] = None, None
        return state

    def __len__(self) -> int:
        return self._length

    def window_ds(self, i: int):
        """Window ``i`` as a loaded xarray Dataset (opens the store first if this process has no handle)."""
        if self._generator is None or self._pid != os.getpid():
            self._open()
        return self._generator[int(i)].load()

    def __getitem__(self, i: int):
        import torch

        w = self.window_ds(i)
        x = np.stack([self._normalised(w, v) for v in self.inputs], axis=1)  # (time, var, lat, lon)
        y = self._normalised(w, self.target)[:, None]
        return torch.from_numpy(np.ascontiguousarray(x[:-1])), torch.from_numpy(np.ascontiguousarray(y[1:]))

    def _normalised(self, w, name):
        """``w[name]`` as normalised float32 (time, latitude, longitude), in as few passes as NumPy allows."""
        values = w[name].transpose("time", "latitude", "longitude").values
        mean, std = self.stats.get(name, (0.0, 1.0))
        out = np.subtract(values, mean, dtype=np.float32)  # subtract and convert in one pass
        out /= np.float32(std)
        out[np.isnan(out)] = 0.0  # sst is missing over land: 0 = its mean after normalising
        return out


class PatchBlocks(PatchWindows):
    """Every patch of one time block in one item: one read per variable, cut into patches with NumPy.

    Same arguments as :class:`PatchWindows`, but the store is opened without Dask by default. Item
    ``i`` is xbatcher window ``i`` of size (window time × as many whole patches as fit along latitude
    × along longitude): one read per variable, Zarr fetching its chunks together. ``__getitem__`` cuts
    it into the patches of ``window`` and returns a mini-batch: ``x`` of shape (patches × (window time
    − 1), len(inputs), patch latitude, patch longitude), ``y`` likewise with one variable. Patch ``k``
    of item ``i`` holds the samples of ``PatchWindows`` window ``i × patches + k``.

    The values are read as stored (int16) and decoded, normalised and cut in one go, in float32:
    Xarray's own decoding would make float64 copies first, and a stack of patches would copy again.
    """

    mask_and_scale = False  # the packed integers as stored; _decode_into does the rest

    def __init__(self, *args, use_dask=False, **kwargs):
        super().__init__(*args, use_dask=use_dask, **kwargs)

    def _input_dims(self, ds) -> dict:
        """One time block of the grid, cropped to whole patches (xbatcher drops the rest too)."""
        return {d: (ds.sizes[d] // n * n if d != "time" else n) for d, n in self.window.items()}

    def __getitem__(self, i: int):
        import torch

        w = self.window_ds(i)  # packed int16, one read per variable
        T, Y, X = w.sizes["time"], self.window["latitude"], self.window["longitude"]
        ny, nx = w.sizes["latitude"] // Y, w.sizes["longitude"] // X

        def patches(name):  # (time, latitude, longitude) → (patch row, patch column, time, Y, X): a view
            return w[name].values.reshape(T, ny, Y, nx, X).transpose(1, 3, 0, 2, 4)

        x = np.empty((ny, nx, T - 1, len(self.inputs), Y, X), np.float32)  # written once, below
        y = np.empty((ny, nx, T - 1, 1, Y, X), np.float32)
        for k, name in enumerate(self.inputs):
            self._decode_into(w[name], patches(name)[:, :, :-1], x[:, :, :, k])  # steps t
        self._decode_into(w[self.target], patches(self.target)[:, :, 1:], y[:, :, :, 0])  # steps t + 1
        return torch.from_numpy(x.reshape(-1, *x.shape[3:])), torch.from_numpy(y.reshape(-1, *y.shape[3:]))

    def _decode_into(self, variable, packed, out):
        """``out`` = normalised (packed × scale + offset), in float32; 0 where the value is missing."""
        mean, std = self.stats.get(variable.name, (0.0, 1.0))
        scale, offset = variable.attrs.get("scale_factor", 1.0), variable.attrs.get("add_offset", 0.0)
        np.multiply(packed, np.float32(scale / std), out=out)  # decode and normalise: two passes
        out += np.float32((offset - mean) / std)
        fill = variable.attrs.get("_FillValue")
        if fill is not None:
            out[packed == fill] = 0.0  # sst is missing over land: 0 = its mean after normalising


def worker_init(worker_id: int) -> None:
    """Set up one DataLoader worker process (``worker_init_fn``)."""
    import dask
    import torch

    torch.set_num_threads(1)  # the DataLoader's workers are the parallelism; no threads on top
    dask.config.set(scheduler="synchronous")  # Dask runs each window's few tasks in this thread
    info = torch.utils.data.get_worker_info()
    if info is not None:
        info.dataset._open()  # this process's own Zarr handle, never one inherited from the parent


def read_chunks(store, pieces) -> int:
    """Read ``(variable, t0, t1)`` pieces of a Zarr store with plain zarr; return how many values.

    The raw read rate's worker: it runs in a process of its own, which opens the store itself."""
    import zarr

    group = zarr.open_group(str(store), mode="r")
    return sum(group[v][t0:t1].size for v, t0, t1 in pieces)
