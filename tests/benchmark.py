"""The course benchmark: what this machine can do, and how close the course's demonstrations come to it.

    python tests/benchmark.py            # a few minutes at the default size (pixi run bench)
    python tests/benchmark.py --quick    # seconds to a minute: smaller arrays and fewer darts (the test)
    python tests/benchmark.py --labs     # execute every lab first, to report their wall times
    python tests/benchmark.py --sizes small,workshop   # plus cost against size (minutes; data made on demand)

It scales with ``COURSE_SIZE`` / ``COURSE_DATA_DIR`` like the labs, and writes one table, stamped with
the hardware and the load average, to ``_build/benchmark/benchmark.md`` and ``benchmark.json``. Each
row is a figure, the limit it is compared with, and their ratio; a ratio below its expectation is
flagged with a probable cause. The parallel rows call the labs' own code (``course.pi``,
``course.pi_numba``, lab 03's Cython extension via ``course.build.build_extension``); only the
machine limits (memory bandwidth, disk read and write) are the benchmark's own micro-benchmarks.
Nothing here is asserted: speed depends on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "labs"))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / "_build" / "numba_cache"))  # as the labs do

import warnings  # noqa: E402

import numpy as np  # noqa: E402

warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")  # Zarr 3 says so at every open

import course  # noqa: E402
from course import bench, build, pi  # noqa: E402

MB = 1e6
SECTIONS = ["Machine limits", "Parallel efficiency", "NumPy reductions", "Out-of-core", "Storage",
            "Data generator", "Lab wall times", "Episodes 10–12"]
COLUMNS = ["section", "figure", "measured", "limit", "ratio", "expected", "note"]


class Table:
    """The benchmark's rows: a figure, the limit it is compared with, their ratio, and a flag."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, section, figure, value=None, unit="", limit_name="", limit=None, *, shown=None,
            limit_shown=None, ratio=None, expect=None, ceiling=None, cause="", reason="", note="", same=None):
        """``same``: for a row that reads files, how its limit was measured, as ``(processes, cache,
        passes)``, e.g. ``("2 processes", "cold", "1 pass")``: appended to the limit's text."""
        if ratio is None and value is not None and limit:
            ratio = value / limit
        low = ratio is not None and ((expect is not None and ratio < expect) or (ceiling is not None and ratio > ceiling))
        row = {
            "section": section, "figure": figure,
            "value": value, "unit": unit,
            "measured": shown if shown is not None else ("—" if value is None else f"{value:.3g} {unit}".strip()),
            "limit_value": limit,
            "limit": limit_shown if limit_shown is not None else (
                f"{limit_name} {limit:.3g} {unit}".strip() if limit is not None else (limit_name or "—")),
            "same": list(same) if same else None,
            "ratio_value": ratio,
            "ratio": f"{ratio:.2f}" if ratio is not None else "—",
            "expected": f"≥ {expect:g}" if expect is not None else (f"≤ {ceiling:g}" if ceiling is not None else ""),
            "flag": ("HIGH" if ceiling is not None else "LOW") if low else "",
            "note": (f"**{'HIGH' if ceiling is not None else 'LOW'}:** " + cause if low else note) if (low or note) else reason,
        }
        if same:
            row["limit"] += " (" + ", ".join(same) + ")"
        if row["ratio"] == "—" and not row["note"]:
            row["note"] = reason or "no ratio: this figure is a limit"
        self.rows.append(row)
        mark = f"  <-- {row['flag']}" if low else ""
        print(f"  {section} · {figure}: {row['measured']} | {row['limit']} | ratio {row['ratio']}{mark}", flush=True)
        return row


def best_of(fn, repeat=3):
    return bench.best(fn, repeat=repeat, warmup=0)


# ---------------------------------------------------------------------------------------------------
# Machine limits (the benchmark's own micro-benchmarks)

def slices(n, parts):
    edges = np.linspace(0, n, parts + 1).astype(int)
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def memory_bandwidth(nbytes, threads, repeat=5):
    """(copy, sum) rates in bytes/s over float64 arrays of ``nbytes``; NumPy releases the GIL in both."""
    n = nbytes // 8
    src = np.random.default_rng(0).random(n)
    dst = np.empty_like(src)
    parts = slices(n, threads)
    with ThreadPoolExecutor(threads) as pool:
        def copy():
            list(pool.map(lambda s: np.copyto(dst[s], src[s]), parts))

        def total():
            return sum(pool.map(lambda s: float(np.add.reduce(src[s])), parts))

        copy(), total()
        t_copy = bench.best(copy, repeat=repeat, warmup=0)
        t_sum = bench.best(total, repeat=repeat, warmup=0)
    return 2 * n * 8 / t_copy, n * 8 / t_sum  # a copy reads and writes every byte


def drop_cache(path) -> bool:
    """Ask the kernel to forget a file's cached pages (Linux); False where that is not possible."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return True
    finally:
        os.close(fd)


def disk_read(files, limit_bytes=None):
    """Sequential read rate (bytes/s) of ``files``, from a cold cache where the OS allows it."""
    cold = all(drop_cache(f) for f in files)
    buf = bytearray(8 * 2**20)
    total, start = 0, time.perf_counter()
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            while (got := fh.readinto(buf)):
                total += got
        if limit_bytes and total >= limit_bytes:
            break
    return total / (time.perf_counter() - start), total, cold


def disk_write(folder, nbytes):
    """Sequential write rate (bytes/s) of one file of ``nbytes`` in ``folder``, flushed to the disk."""
    block = np.random.default_rng(1).integers(0, 255, 8 * 2**20, dtype=np.uint8).tobytes()
    path = Path(folder) / "write-test.bin"
    start = time.perf_counter()
    try:
        with open(path, "wb") as fh:
            for _ in range(max(1, nbytes // len(block))):
                fh.write(block)
            fh.flush()
            os.fsync(fh.fileno())
        return path.stat().st_size / (time.perf_counter() - start)
    finally:
        path.unlink(missing_ok=True)


def machine_limits(t, cfg, files, scratch):
    cores, present = course.usable_cores(), os.cpu_count() or 1
    t.add("Machine limits", "usable cores", cores, "", "cores present", present,
          shown=str(cores), limit_shown=f"{present} logical cores present", expect=1.0,
          cause="this process may not use every core (a batch allocation, taskset or a container limit)")
    single = memory_bandwidth(cfg["mem_bytes"], 1)
    multi = memory_bandwidth(cfg["mem_bytes"], cores)
    size = f"{cfg['mem_bytes'] / 2**20:.0f} MiB arrays"
    t.add("Machine limits", f"memory copy, 1 thread ({size})", single[0] / 1e9, "GB/s",
          reason="a limit: the one-core copy rate")
    t.add("Machine limits", f"memory sum, 1 thread ({size})", single[1] / 1e9, "GB/s",
          reason="a limit: the one-core read rate")
    t.add("Machine limits", f"memory copy, {cores} threads", multi[0] / 1e9, "GB/s", f"{cores} × 1 thread",
          cores * single[0] / 1e9, expect=0.5 / cores if cores > 1 else None,
          note="memory is shared by all cores: ratios well below 1 are normal",
          cause="another process is using the memory bus, or the threads share one core")
    t.add("Machine limits", f"memory sum, {cores} threads", multi[1] / 1e9, "GB/s", f"{cores} × 1 thread",
          cores * single[1] / 1e9, expect=0.5 / cores if cores > 1 else None,
          note="memory is shared by all cores: ratios well below 1 are normal",
          cause="another process is using the memory bus, or the threads share one core")
    rate, nbytes, cold = disk_read(files, cfg.get("read_bytes"))
    t.add("Machine limits", f"disk read, dataset folder ({nbytes / MB:.0f} MB, {'cold' if cold else 'warm'} cache)",
          rate / MB, "MB/s", reason="a limit" + ("" if cold else ": warm cache (no posix_fadvise here)"))
    write = disk_write(scratch, cfg["write_bytes"])
    t.add("Machine limits", f"disk write, _build/ ({cfg['write_bytes'] / MB:.0f} MB, fsync)", write / MB, "MB/s",
          reason="a limit")
    gpu_rows(t)
    return {"mem_copy_1": single[0], "mem_sum_1": single[1], "mem_copy_n": multi[0], "mem_sum_n": multi[1],
            "disk_read": rate, "disk_write": write}


def gpu_rows(t):
    """The GPU's own memory, against the peak its properties give, and the bus both ways, pageable and
    pinned. GPU-side times are CuPy's (CUDA events, after a warm-up); transfers are wall clock."""
    try:
        import cupy as cp
        import cupyx
        from cupyx.profiler import benchmark

        cp.cuda.runtime.getDeviceCount()
    except Exception:  # no CuPy, no driver or no device
        t.add("Machine limits", "GPU memory bandwidth, host↔device rate", reason="no GPU (or no CuPy) on this machine")
        return
    from course import gpu

    n = 256 * 2**20 // 8
    a = cp.ones(n)
    b = cp.empty_like(a)
    pageable = np.ones(n)
    pinned = cupyx.empty_pinned((n,), dtype=np.float64)
    pinned[:] = 1

    def synced(fn):
        def run():
            fn()
            cp.cuda.Device().synchronize()
        run()  # warm-up
        return run

    copy_s = float(benchmark(lambda: cp.copyto(b, a), n_repeat=10, n_warmup=1).gpu_times.min())
    peak = gpu.peak_bandwidth(cp)
    t.add("Machine limits", "GPU memory copy", 2 * n * 8 / copy_s / 1e9, "GB/s", "peak (clock × bus)",
          peak / 1e9 if peak else None, reason="" if peak else "a limit: the card reports no peak")
    for figure, fn in [("host → device copy (pageable, ndarray.set)", lambda: a.set(pageable)),
                       ("host → device copy (pinned)", lambda: a.set(pinned)),
                       ("host → device copy (cupy.asarray: CuPy's pinned pool)", lambda: cp.asarray(pageable)),
                       ("device → host copy (pageable)", lambda: a.get(out=pageable)),
                       ("device → host copy (pinned)", lambda: a.get(out=pinned))]:
        t.add("Machine limits", figure, n * 8 / best_of(synced(fn)) / 1e9, "GB/s", reason="a limit")
    del a, b, pinned
    cp.get_default_memory_pool().free_all_blocks()
    cp.get_default_pinned_memory_pool().free_all_blocks()


# ---------------------------------------------------------------------------------------------------
# Parallel efficiency: the labs' own kernels, on one core and on all of them

def efficiency(t, figure, t1, tn, cores, expect, cause):
    speedup = t1 / tn
    if cores < 2:
        return t.add("Parallel efficiency", figure, speedup, "×", shown=f"{speedup:.2f}×",
                     reason="one usable core: nothing to share")
    return t.add("Parallel efficiency", figure, speedup, "×", f"{cores} cores", cores,
                 shown=f"{speedup:.2f}× on {cores}", limit_shown=f"{cores}× ({cores} cores)",
                 expect=expect, cause=cause)


def parallel_rows(t, cfg):
    cores = course.usable_cores()
    base, chunks = 2024, 48
    seeds = pi.chunk_seeds(base, chunks)
    busy = (f"is another process using a core (load {os.getloadavg()[0]:.1f})? " if hasattr(os, "getloadavg") else "")
    # Numba prange (lab 03)
    try:
        import numba

        from course import pi_numba

        n_per = cfg["darts"] // chunks
        pi_numba.hits_prange(n_per, seeds)  # compile (or load from the cache)
        numba.set_num_threads(1)
        t1 = best_of(lambda: pi_numba.hits_prange(n_per, seeds))
        numba.set_num_threads(cores)
        tn = best_of(lambda: pi_numba.hits_prange(n_per, seeds))
        efficiency(t, f"Numba prange (lab 03), {n_per * chunks:.2g} darts, layer {numba.threading_layer()}", t1, tn,
                   cores, 0.8, busy + "is NUMBA_NUM_THREADS set lower than the cores?")
    except Exception as err:
        t.add("Parallel efficiency", "Numba prange (lab 03)", reason=f"not run: {type(err).__name__}: {err}"[:160])
    # Cython prange (lab 03)
    pi_cython, message = build.build_extension("pi_cython", Path(pi.__file__).parent / "pi_cython.pyx",
                                               build.openmp_attempts())
    if pi_cython is None:
        t.add("Parallel efficiency", "Cython prange (lab 03)", reason=f"not built: {message}")
    else:
        n_per = cfg["darts"] // 4 // chunks
        pi_cython.hits_prange(n_per, seeds, cores)
        t1 = best_of(lambda: pi_cython.hits_prange(n_per, seeds, 1))
        tn = best_of(lambda: pi_cython.hits_prange(n_per, seeds, cores))
        efficiency(t, f"Cython prange (lab 03), {n_per * chunks:.2g} darts", t1, tn, cores, 0.8,
                   busy + ("built without OpenMP: prange runs on one thread" if "without" in message else
                           "is OMP_NUM_THREADS set? OpenMP threads spin (OMP_WAIT_POLICY) beside other work"))
    # A process pool on pure Python (lab 02)
    work = pi.tasks("python", cfg["python_darts"], 4 * cores)
    t1 = best_of(lambda: sum(map(pi.hits_of_chunk, work)))
    ctx = multiprocessing.get_context(os.environ.get("COURSE_START_METHOD") or None)
    with ProcessPoolExecutor(cores, mp_context=ctx) as pool:
        sum(pool.map(pi.hits_of_chunk, work))  # starts the workers
        tn = best_of(lambda: sum(pool.map(pi.hits_of_chunk, work)))
    efficiency(t, f"process pool, pure Python (lab 02), {cfg['python_darts']:.2g} darts", t1, tn, cores, 0.75,
               busy + "tasks too short for the cost of sending them to processes?")
    # NumPy in threads (lab 02)
    work = pi.tasks("numpy", cfg["numpy_darts"], 4 * cores)
    t1 = best_of(lambda: sum(map(pi.hits_of_chunk, work)))
    with ThreadPoolExecutor(cores) as pool:
        tn = best_of(lambda: sum(pool.map(pi.hits_of_chunk, work)))
    efficiency(t, f"NumPy in threads (lab 02), {cfg['numpy_darts']:.2g} darts", t1, tn, cores, 0.7,
               busy + "NumPy holds the GIL between its array operations; is a threaded BLAS oversubscribing?")
    # Dask's threaded scheduler (lab 04)
    import dask

    tasks = [dask.delayed(pi.hits_of_chunk)(w) for w in work]
    t1 = best_of(lambda: sum(dask.compute(*tasks, scheduler="synchronous")))
    tn = best_of(lambda: sum(dask.compute(*tasks, scheduler="threads", num_workers=cores)))
    efficiency(t, "Dask threaded scheduler (lab 04), the same NumPy chunks", t1, tn, cores, 0.7,
               busy + "too few or too small tasks for the scheduler's overhead?")


# ---------------------------------------------------------------------------------------------------
# NumPy reductions against the memory read rate

def reduction_rows(t, cfg, limits):
    cores = course.usable_cores()
    n = cfg["mem_bytes"] // 8
    a = np.random.default_rng(2).random(n)
    one_core = limits["mem_sum_1"]
    cases = [("np.sum", lambda: a.sum(), 0.7, ""), ("np.mean", lambda: a.mean(), 0.7, ""),
             ("np.max", lambda: a.max(), 0.5, ""),
             ("np.std", lambda: a.std(), 0.2, "np.std makes a temporary array of deviations: several passes"),
             ("np.nanmean", lambda: np.nanmean(a), 0.2, "np.nanmean copies the array and builds a NaN mask")]
    cube = np.random.default_rng(3).integers(-3000, 3000, (n // 2 // (91 * 180), 91, 180), dtype=np.int16)
    cases.append(("int16 cube, mean over time (decode + reduce)", lambda: cube.mean(axis=0), 0.1,
                  "the int16 values are converted to float64 one pass at a time"))
    for name, fn, expect, why in cases:
        nbytes = cube.nbytes if "cube" in name else a.nbytes
        rate = nbytes / best_of(fn)
        t.add("NumPy reductions", name, rate / 1e9, "GB/s", "1-core memory sum", one_core / 1e9, expect=expect,
              cause=(why or "another process is using the memory bus or this core")
              + (f"; NumPy uses one core of {cores}: chunk it over threads or Dask for the rest" if cores > 1 else ""))


# ---------------------------------------------------------------------------------------------------
# Storage (lab 09): consolidated open_zarr against open_mfdataset

OPEN_NETCDF = dict(combine="by_coords", data_vars="minimal", coords="minimal", compat="override", chunks={})


def storage_rows(t, cfg, files, limits):
    import xarray as xr

    files = files[:cfg.get("store_files", len(files))]
    store = course.BUILD / "benchmark" / f"era5_{course.size()}_{len(files)}files.zarr"
    if not (store / "zarr.json").exists():
        start = time.perf_counter()
        part = store.with_name(store.name + ".part")  # written aside, renamed when complete
        shutil.rmtree(part, ignore_errors=True), shutil.rmtree(store, ignore_errors=True)
        with xr.open_mfdataset(files, **OPEN_NETCDF) as ds:
            for v in ds.variables.values():  # one chunk per month is not uniform: Zarr needs equal chunks
                v.encoding.pop("chunks", None), v.encoding.pop("preferred_chunks", None)
            ds.chunk({"time": min(ds.sizes["time"], 120)}).to_zarr(part, mode="w", consolidated=True)
        part.rename(store)
        print(f"  wrote {store.relative_to(ROOT)} once in {time.perf_counter() - start:.0f} s", flush=True)
    t_nc = best_of(lambda: xr.open_mfdataset(files, **OPEN_NETCDF).close())
    t_zr = best_of(lambda: xr.open_zarr(store, consolidated=True).close())
    t.add("Storage", f"open_zarr (consolidated) vs open_mfdataset ({len(files)} files)", t_nc / t_zr, "×",
          shown=f"{t_zr * 1e3:.0f} ms vs {t_nc * 1e3:.0f} ms", limit_shown="open_mfdataset time", ratio=t_nc / t_zr,
          expect=2.0, same=("1 process", "warm", "best of 3 passes"),
          cause="few files (small size): opening them is cheap; or a slow metadata read from the store")
    # the raw Zarr read rate: every variable decoded into memory, chunk by chunk
    ds = xr.open_zarr(store, consolidated=True)
    names = [v for v in ds.data_vars if "time" in ds[v].dims]
    cold = course.bench.evict(store)
    start = time.perf_counter()
    nbytes = sum(ds[v].load().nbytes for v in names[:cfg.get("zarr_vars", len(names))])
    rate = nbytes / (time.perf_counter() - start)
    t.add("Storage", f"Zarr read + decode rate (float, 1 process, threads, {'cold' if cold else 'warm'})", rate / MB,
          "MB/s", reason="a limit: the converted store read back")
    virtual_rows(t, cfg, files, store, t_zr)
    return {"zarr_read": rate, "store": store}


def virtual_rows(t, cfg, files, store, t_zr):
    """Lab 09's virtual store (VirtualiZarr references in Icechunk) against the converted store."""
    import xarray as xr

    from course import virtual

    vstore = store.with_name(store.name.replace(".zarr", ".icechunk"))
    shutil.rmtree(vstore, ignore_errors=True)  # rebuilt every time (a second): references go stale with the files
    start = time.perf_counter()
    virtual.build(files, vstore)
    t_build = time.perf_counter() - start
    t_vz = best_of(lambda: virtual.open_store(vstore, files).close())
    t.add("Storage", f"open_zarr on the virtual store (Icechunk, built in {t_build:.1f} s) vs the converted store",
          t_zr / t_vz, "×", shown=f"{t_vz * 1e3:.0f} ms vs {t_zr * 1e3:.0f} ms", limit_shown="converted store's open time",
          ratio=t_zr / t_vz, expect=0.5, same=("1 process", "warm", "best of 3 passes"),
          cause="the repository's snapshot and manifest reads cost more than one JSON file")
    rates = {}
    chunks = {"time": 120}  # the converted store's chunks; a whole number of the virtual store's (a day)
    for label, ds in (("converted", xr.open_zarr(store, consolidated=True, chunks=chunks)),
                      ("virtual", virtual.open_store(vstore, files, chunks=chunks))):
        ds = ds[[v for v in ds.data_vars if "time" in ds[v].dims][:cfg.get("zarr_vars", None)]]
        start = time.perf_counter()
        ds.mean().compute()
        rates[label] = ds.nbytes / (time.perf_counter() - start)
    t.add("Storage", "full-mean read rate (decoded), virtual store vs converted store", rates["virtual"] / MB, "MB/s",
          "converted store", rates["converted"] / MB, expect=0.5, same=("1 process, threads", "warm", "1 pass"),
          cause="the virtual store keeps the files' layout: contiguous NetCDF becomes one small chunk per day, and "
                "Zarr pays per chunk")


# ---------------------------------------------------------------------------------------------------
# The data generator against the disk's write rate

def generator_rows(t, cfg, limits, scratch):
    gen = course.generator()
    out = Path(scratch) / "generated"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    try:
        gen.generate(size=cfg["gen_size"], out=out, quiet=True)
        seconds = time.perf_counter() - start
        nbytes = sum(f.stat().st_size for f in out.glob("*.nc"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    t.add("Data generator", f"generator, size {cfg['gen_size']} ({nbytes / MB:.0f} MB, {gen._default_workers()} workers)",
          nbytes / seconds / MB, "MB/s", "disk write", limits["disk_write"] / MB, expect=0.25,
          cause="generation is CPU-bound (noise fields, packing, compression), not disk-bound: more cores help")


# ---------------------------------------------------------------------------------------------------
# Lab wall times, as recorded by tests/execute_labs.py

def lab_rows(t):
    path = course.BUILD / "lab_times.json"
    try:
        times = json.loads(path.read_text()) if path.exists() else []
    except ValueError:
        times = []
    latest = {}
    for entry in times:
        if entry.get("size") == course.size() and not entry.get("burners"):
            latest[entry["lab"]] = entry
    for lab in sorted((ROOT / "labs").glob("[0-9][0-9]_*.py")):
        entry = latest.get(lab.stem)
        if entry:
            t.add("Lab wall times", lab.stem, entry["seconds"], "s", shown=f"{entry['seconds']:.0f} s",
                  reason=f"executed {entry['date'][:16]} UTC")
        else:
            t.add("Lab wall times", lab.stem, reason="not run: `pixi run labs` (or `--labs`)")


# ---------------------------------------------------------------------------------------------------
# Episodes 10-12

def notebook_figures(stem_prefix, pattern):
    """Figures matching ``pattern`` in the outputs of the latest executed notebook ``_build/<prefix>*.ipynb``."""
    import re

    books = sorted(course.BUILD.glob(f"{stem_prefix}*.ipynb"))
    books = [b for b in books if not b.name.endswith(".failed.ipynb")]
    if not books:
        return None, []
    text = json.dumps(json.loads(books[-1].read_text()).get("cells", []))
    return books[-1], [float(m.replace(",", "")) for m in re.findall(pattern, text)]


def feed_and_ceiling(store, n_blocks, workers, steps=16, names=("t2m", "sst", "u10", "v10")):
    """Lab 12's feed (``course.feed.TimeBlocks`` through a PyTorch DataLoader with ``workers`` workers)
    and its same-work ceiling (plain zarr reads of the same blocks in ``workers`` processes), each from a
    cold store, one pass. Rates in bytes/s of float32 values read; each side's first ``workers`` items
    (process start-up) are left out. Returns (feed rate, ceiling rate, blocks timed, cache state)."""
    import torch

    from course import bench, feed

    blocks = feed.TimeBlocks(store, list(names), "t2m", steps)
    take = max(1, min(n_blocks, len(blocks) - workers))
    order = [int(i) for i in np.random.default_rng(0).permutation(len(blocks))[:take + workers]]
    loader = torch.utils.data.DataLoader(blocks, batch_size=None, sampler=order, num_workers=workers,
                                         worker_init_fn=feed.worker_init,
                                         multiprocessing_context=feed.loader_context())
    z = __import__("zarr").open_group(str(store), mode="r")
    ny, nx = z["t2m"].shape[1:]
    block_bytes = 4 * len(names) * steps * ny * nx
    cold = bench.evict(store)
    start = time.perf_counter()
    for k, _ in enumerate(loader):
        if k == workers - 1:
            steady = time.perf_counter()  # every worker has started and delivered
    rate = take * block_bytes / (time.perf_counter() - steady)
    del loader
    full = slice(None)
    pieces = [(v, slice(i * steps, (i + 1) * steps), full, full) for i in order[workers:] for v in names]
    ctx = multiprocessing.get_context(feed.loader_context())
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        list(pool.map(feed.read_pieces, [store] * workers, [[]] * workers))  # start-up, imports
        cold = bench.evict(store) and cold
        start = time.perf_counter()
        values = sum(pool.map(feed.read_pieces, [store] * workers, [pieces[i::workers] for i in range(workers)]))
        ceiling = 4 * values / (time.perf_counter() - start)
    return rate, ceiling, take, "cold" if cold else "WARM (no posix_fadvise here)"


def episode_rows(t, cfg, extra):
    section = "Episodes 10–12"
    # Episode 10: training throughput, as its lab printed it when it last ran (the lab measures it)
    if not (ROOT / "labs" / "course" / "ml.py").exists():
        t.add(section, "training samples/s (episode 10)", reason="episode not present (no course/ml.py)")
    else:
        book, found = notebook_figures("10_", r"([\d,]+(?:\.\d+)?) samples/s")
        if found:
            t.add(section, "training samples/s (episode 10)", max(found), "samples/s",
                  reason=f"from {book.relative_to(ROOT)} (the lab's own measurement); no limit to compare with")
        else:
            t.add(section, "training samples/s (episode 10)", reason="not run: `pixi run labs 10` (or `--labs`)")
    # Episode 12: the golden path's feed rate (course.feed, a PyTorch DataLoader) against the raw Zarr read
    figure = "golden path feed rate (episode 12) vs plain zarr reads"
    if not (ROOT / "labs" / "course" / "feed.py").exists():
        t.add(section, figure, reason="episode not present (no course/feed.py)")
        return
    try:
        import torch

        from course import feed

        workers = min(2, course.usable_cores())
        rate, ceiling, take, cache = feed_and_ceiling(extra["store"], cfg["feed_windows"], workers)
        t.add(section, f"{figure} ({take} time blocks, {workers} DataLoader workers)", rate / MB, "MB/s",
              limit=ceiling / MB, limit_shown=f"plain zarr reads of the same blocks {ceiling / MB:.3g} MB/s",
              same=(f"{workers} processes", cache, "1 pass"), expect=0.5,
              cause="per-item overhead (xbatcher, Xarray, tensors) or busy cores: see lab 12's per-item time table")
    except Exception as err:
        t.add(section, figure, reason=f"episode 12 present, its feed failed: {type(err).__name__}: {err}"[:200])


# ---------------------------------------------------------------------------------------------------
# Out-of-core (labs 07 and 12): the full mean on a cluster against plain processes doing the same work

def plain_time_sums(paths, names):
    """The same-work ceiling's reader, in one plain process: each file's time-varying variables read
    with netCDF4, decoded exactly as xarray decodes them (int16 × scale_factor + add_offset, NaN at
    _FillValue/missing_value), summed over time in float64; a NaN-aware sum and a count only for a
    variable that has gaps. Returns ({name: sum}, {name: count}), one file in memory at a time."""
    import netCDF4

    sums, counts = {}, {}
    for path in paths:
        with netCDF4.Dataset(path) as nc:
            nc.set_auto_maskandscale(False)
            for name in names:
                var = nc.variables[name]
                raw = var[:]
                if raw.dtype.kind in "iu" and hasattr(var, "scale_factor"):
                    x = raw.astype(np.float32)
                    x *= np.float32(var.scale_factor)
                    x += np.float32(getattr(var, "add_offset", 0.0))
                    for attr in ("_FillValue", "missing_value"):
                        if hasattr(var, attr):
                            x[raw == getattr(var, attr)] = np.nan
                else:
                    x = raw.astype(np.float32, copy=False)
                    for attr in ("_FillValue", "missing_value"):
                        if hasattr(var, attr) and not np.isnan(getattr(var, attr)):
                            x = np.where(raw == getattr(var, attr), np.float32(np.nan), x)
                s = x.sum(axis=0, dtype=np.float64)
                if np.isnan(s).any():  # gaps (sst over land): the NaN-aware sum, and a count per point
                    s = np.nansum(x, axis=0, dtype=np.float64)
                    c = (~np.isnan(x)).sum(axis=0)
                else:
                    c = x.shape[0]
                sums[name] = sums.get(name, 0) + s
                counts[name] = counts.get(name, 0) + c
    return sums, counts


def _noop():
    import netCDF4  # noqa: F401  (the pool's start-up and imports, outside the timing)


def plain_mean(pool, files, names, processes):
    """Seconds for ``processes`` plain processes to compute every variable's time mean, files cold."""
    cold = all(drop_cache(f) for f in files)
    start = time.perf_counter()
    parts = list(pool.map(plain_time_sums, [files[i::processes] for i in range(processes)], [names] * processes))
    seconds = time.perf_counter() - start
    sums = {n: sum(p[0][n] for p in parts) for n in names}
    counts = {n: sum(p[1][n] for p in parts) for n in names}
    with np.errstate(invalid="ignore", divide="ignore"):
        return seconds, cold, {n: sums[n] / np.where(counts[n] > 0, counts[n], np.nan) for n in names}


def gap_free(ds, names):
    """The variables without a NaN in the first file's first step: their mean needs no ``skipna``.
    (sst is undefined over land at every step, so it keeps ``skipna``; a gap later on shows up as NaN
    in the fast mean, which the labs' NumPy check compares.)"""
    first = ds[names].isel(time=0).compute()
    return [n for n in names if not bool(first[n].isnull().any())]


def dask_mean(ds, client, names, fast, files):
    """Seconds for ``ds.mean("time")`` on ``client``, files cold: with the defaults, or ``fast``
    (``skipna=False`` for the variables without gaps, as labs 07 and 12 now do)."""
    import warnings as _w

    from course import clusters

    if fast:
        quick = gap_free(ds, names)
        lazy = [ds[quick].mean("time", skipna=False), ds[[n for n in names if n not in quick]].mean("time")]
    else:
        lazy = [ds[names].mean("time")]
    cold = all(drop_cache(f) for f in files)
    with _w.catch_warnings():
        _w.simplefilter("ignore", RuntimeWarning)  # sst over land: "mean of empty slice"
        start = time.perf_counter()
        results = clusters.compute(lazy, client, what='ds.mean("time")')
        seconds = time.perf_counter() - start
    merged = {}
    for r in results:
        merged.update({n: r[n].values for n in r.data_vars})
    return seconds, cold, merged


def flox_row(t, cfg, files):
    """Lab 07's climatology and anomalies with flox (xarray's groupby engine when installed) and without."""
    import dask
    import xarray as xr

    files = files[:cfg.get("ooc_files", len(files))]
    da = xr.open_mfdataset(files, **OPEN_NETCDF).t2m  # one chunk per monthly file, as in lab 07

    def run(use_flox):
        with xr.set_options(use_flox=use_flox):
            climatology = da.groupby("time.month").mean()
            spread = (da.groupby("time.month") - climatology).std("time")
            dask.compute(climatology, spread, scheduler="threads")

    run(True), run(False)  # first calls (imports, caches) untimed
    t_flox, t_plain = best_of(lambda: run(True), 2), best_of(lambda: run(False), 2)
    t.add("Out-of-core", f"groupby climatology + anomalies with flox vs use_flox=False ({len(files)} files)",
          t_plain / t_flox, "×", shown=f"{t_flox:.2f} s vs {t_plain:.2f} s", limit_shown="use_flox=False time",
          ratio=t_plain / t_flox, expect=1.0, same=("1 process, threads", "warm", "best of 2 passes"),
          cause="few, small chunks: flox's fixed costs outweigh its saving; compare at COURSE_SIZE=workshop")


def lab07_open(files):
    """The files opened as lab 07 opens them: minimal options, time chunks of one file (≤ 128 MB)."""
    import xarray as xr

    with xr.open_dataset(files[0]) as first:
        steps = first.sizes["time"]
        step_bytes = first.t2m.dtype.itemsize * first.latitude.size * first.longitude.size
    chunk = int(max(1, min(steps, 128e6 // step_bytes)))
    ds = xr.open_mfdataset(files, **{**OPEN_NETCDF, "chunks": {"time": chunk}})
    return ds, steps


def ooc_cluster(ds, workers=2):
    """Lab 07's cluster: ``workers`` × 1 thread, each with at most a quarter of the data where it can,
    warmed up as the lab does (the NetCDF backend imported, one file's mean)."""
    import importlib
    import logging

    from course import clusters

    limit = max(ds.nbytes / (4 * workers), 512 * 2**20)
    client = clusters.client(n_workers=workers, threads_per_worker=1, memory_limit=int(limit), local_only=True,
                             silence_logs=logging.CRITICAL)
    client.run(importlib.import_module, "xarray.backends.netCDF4_")
    return client, limit


def out_of_core_rows(t, cfg, files, limits):
    """Lab 07's full-dataset mean on a 2-worker cluster against 2 plain processes doing the same work:
    the same files, the same decode and NaN handling, the same cache state (cold), one pass each,
    in alternating rounds (the median of each is shown)."""
    import xarray as xr

    from course import clusters

    files = files[:cfg.get("ooc_files", len(files))]
    ds, steps = lab07_open(files)
    names = [v for v in ds.data_vars if "time" in ds[v].dims]
    ds = ds[names]
    workers = 2
    disk_bytes = sum(f.stat().st_size for f in files)
    client, limit = ooc_cluster(ds, workers)
    ctx = multiprocessing.get_context(os.environ.get("COURSE_START_METHOD") or "spawn")
    runs = {"plain": [], "default": [], "fast": [], "lab12": []}
    ds12 = xr.open_mfdataset(files, **{**OPEN_NETCDF, "chunks": {"time": 32}})[names]  # lab 12's blocks
    sampler = clusters.WorkerMemorySampler()
    try:
        clusters.compute(ds.isel(time=slice(0, steps)).mean("time"), client, what="the warm-up")
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            for f in [pool.submit(_noop) for _ in range(2 * workers)]:
                f.result()  # the pool's processes started and netCDF4 imported, outside the timing
            for _ in range(cfg.get("ooc_rounds", 3)):
                seconds, cold, plain = plain_mean(pool, files, names, workers)
                runs["plain"].append((seconds, cold))
                seconds, cold, default = dask_mean(ds, client, names, False, files)
                runs["default"].append((seconds, cold))
                with sampler.sample("mean"):
                    seconds, cold, fast = dask_mean(ds, client, names, True, files)
                runs["fast"].append((seconds, cold))
                seconds, cold, fast12 = dask_mean(ds12, client, names, True, files)
                runs["lab12"].append((seconds, cold))
    finally:
        client.close()
    ds.close(), ds12.close()
    agree = all(np.allclose(plain[n], r[n], rtol=1e-5, atol=1e-4, equal_nan=True)
                for r in (default, fast, fast12) for n in names)
    median = {k: float(np.median([s for s, _ in v])) for k, v in runs.items()}
    cold = all(c for v in runs.values() for _, c in v)
    cache = "cold" if cold else "WARM (no posix_fadvise here)"
    n = len(runs["plain"])
    same = (f"{workers} processes", cache, f"1 pass, median of {n}")
    ceiling_shown = f"{workers} plain processes (netCDF4, same decode and NaN handling) {disk_bytes / MB / median['plain']:.3g} MB/s"
    gib = ds.nbytes / 2**30
    check = "" if agree else " RESULTS DIFFER from the plain processes' means: a bug, not a speed"
    if gib < 1:
        check += "; below 1 GiB fixed costs per task dominate: judge this at COURSE_SIZE=workshop"
    for key, what, cause in [
        ("default", 'ds.mean("time"), lab 07 before (skipna everywhere)',
         "NaN handling on variables without gaps: a NaN-aware sum and a count per chunk"),
        ("fast", 'ds.mean("time", skipna=False) where there are no gaps (labs 07, 12)',
         "scheduler or decode overhead per chunk (xarray's masking), a worker paused near its limit, or a busy core"),
        ("lab12", "the same, in chunks of 32 steps (lab 12's training blocks: its mean before)",
         "more, smaller chunks than one per file: more tasks and more HDF5 reads")]:
        t.add("Out-of-core", f"full mean of {len(files)} files ({gib:.2f} GiB decoded), {what}, "
              f"{workers} workers × 1 thread", disk_bytes / MB / median[key], "MB/s",
              limit=disk_bytes / MB / median["plain"], limit_shown=ceiling_shown, same=same, expect=0.7,
              cause=cause + check, note=f"{median[key]:.2f} s vs {median['plain']:.2f} s" + check)
    peak = max((b for _, b in sampler.samples["mean"]), default=0)
    t.add("Out-of-core", f"peak worker memory ({workers} workers together)", peak / 2**20, "MiB",
          "memory limit", workers * limit / 2**20, ceiling=0.8,
          cause="workers near their limit pause and spill: smaller chunks, or more memory per worker")
    if ds.nbytes < 4 * workers * limit:
        t.rows[-1]["note"] = (t.rows[-1]["note"] + " " if t.rows[-1]["note"] else "") + \
            "data < 4× the workers' memory at this size: run COURSE_SIZE=workshop for the out-of-core case"
    return {"mean_s": median["fast"], "disk_bytes": disk_bytes}


# ---------------------------------------------------------------------------------------------------
# Cost against size (--sizes small,workshop): the same operations at each size, seconds per GB

def lab_cell(lab, label):
    """The source of the cell labelled ``label`` in ``labs/<lab>.py`` (jupytext percent format), so the
    benchmark runs the lab's own code, not a copy of it."""
    text = (ROOT / "labs" / f"{lab}.py").read_text(encoding="utf-8")
    for cell in text.split("\n# %%")[1:]:
        if f"#| label: {label}\n" in cell:
            return cell.split("\n", 1)[1]
    raise LookupError(f"labs/{lab}.py has no cell labelled {label}")


def training_pass(files, client):
    """Episode 10's training pass: its own feature cell over every file, in blocks of about 32 MiB of
    features; a dask-ml ``StandardScaler`` fit, then ``Incremental(SGDClassifier).partial_fit`` over
    every block, two blocks per call, as the lab trains. Returns (seconds, rows)."""
    import dask
    import dask.array as da
    import xarray as xr
    from dask_ml.preprocessing import StandardScaler
    from dask_ml.wrappers import Incremental
    from sklearn.linear_model import SGDClassifier

    from course import clusters, era5

    lab = {"np": np, "da": da, "xr": xr, "era5": era5, "RAIN_MM": 0.1}
    exec(lab_cell("10_machine_learning", "features-code"), lab)
    with xr.open_dataset(files[0]) as first:
        points = first.sizes["latitude"] * first.sizes["longitude"]
    steps = max(1, round(32 * 2**20 / (points * len(lab["FEATURES"]) * 4)))
    X, y = lab["features"](lab["open_dataset"](files, steps))
    start = time.perf_counter()
    with dask.config.set({"distributed.comm.timeouts.connect": "60s"}):
        scaler = StandardScaler().fit(X)
        Xs = scaler.transform(X)
        model = Incremental(SGDClassifier(loss="log_loss", alpha=1e-5, average=True, random_state=0),
                            random_state=0)
        for i in range(0, Xs.numblocks[0], 2):
            some = list(range(i, min(i + 2, Xs.numblocks[0])))
            model.partial_fit(Xs.blocks[some], y.blocks[some], classes=[0, 1])
    seconds = time.perf_counter() - start
    clusters.compute(da.zeros(1).sum(), client, what="a check that the cluster still answers")
    return seconds, X.shape[0]


def lab12_to_zarr(files, client, store):
    """Module 2 of episode 12: ``ds.chunk({"time": 32}).to_zarr(...)`` with one shard per block."""
    import xarray as xr

    from course import clusters

    block = 32
    ds = xr.open_mfdataset(files, **{**OPEN_NETCDF, "chunks": {"time": block}})
    names = [v for v in ds.data_vars if "time" in ds[v].dims]
    shards = (block, -(-ds.sizes["latitude"] // 32) * 32, -(-ds.sizes["longitude"] // 32) * 32)
    encoding = {v: {"chunks": (block, 32, 32), "shards": shards} for v in names}
    for v in ds.variables.values():
        v.encoding.pop("chunks", None), v.encoding.pop("preferred_chunks", None)
    shutil.rmtree(store, ignore_errors=True)
    start = time.perf_counter()
    clusters.compute(ds.chunk({"time": block}).to_zarr(store, mode="w", consolidated=True, encoding=encoding,
                                                       compute=False), client, what="to_zarr")
    seconds = time.perf_counter() - start
    ds.close()
    return seconds


SIZE_CAUSES = {
    "full mean": "more chunks than workers can overlap, or workers near their memory limit spilling",
    "to_zarr": "writes waiting on the disk (the page cache filling), or a rechunk across file boundaries",
    "training pass": "Incremental calls partial_fit one call at a time: per-call overhead grows with the "
                     "number of blocks, or the features no longer fit the page cache",
    "feed": "per-block costs grew with the grid (larger blocks), slower cold reads, or a busy core",
}


def size_rows(t, cfg, sizes):
    """The full mean, to_zarr, one training pass and the feed at each size, per GB of NetCDF files;
    a size whose seconds per GB grow more than 1.5× from the first size is flagged with a probable cause."""
    from course import clusters

    section = "Cost against size"
    per_gb = {}
    for size in sizes:
        files = sorted(course.dataset(size).glob("era5_*.nc"))
        gb = sum(f.stat().st_size for f in files) / 1e9
        ds, steps = lab07_open(files)
        names = [v for v in ds.data_vars if "time" in ds[v].dims]
        client, _ = ooc_cluster(ds[names], 2)
        store = course.BUILD / "benchmark" / f"sizes_{size}.zarr"
        try:
            clusters.compute(ds[names].isel(time=slice(0, steps)).mean("time"), client, what="the warm-up")
            seconds = {"full mean": dask_mean(ds[names], client, names, True, files)[0]}
            seconds["to_zarr"] = lab12_to_zarr(files, client, store)
            client.close()
            with clusters.client(n_workers=2, threads_per_worker=1, memory_limit="3GiB", local_only=True,
                                 silence_logs=50) as trainer:
                seconds["training pass"], rows = training_pass(files, trainer)
            workers = min(2, course.usable_cores())
            rate, _, take, _ = feed_and_ceiling(store, 10**9, workers)
            seconds["feed"] = 4 * len(("t2m", "sst", "u10", "v10")) * 16 * ds.sizes["latitude"] * \
                ds.sizes["longitude"] * take / rate  # the feed's seconds for every block of the store
        finally:
            client.close()
            ds.close()
            shutil.rmtree(store, ignore_errors=True)
        per_gb[size] = {k: v / gb for k, v in seconds.items()}
        first = per_gb[sizes[0]]
        for op, s in seconds.items():
            growth = per_gb[size][op] / first[op]
            t.add(section, f"{op}, {size} ({gb:.2f} GB of files" + (f", {rows:,} rows)" if op == "training pass" else ")"),
                  per_gb[size][op], "s/GB", shown=f"{s:.1f} s · {per_gb[size][op]:.2f} s/GB",
                  limit_shown=f"s/GB at {sizes[0]}: {first[op]:.2f}", ratio=growth, ceiling=1.5,
                  same=("2 processes", "cold" if op in ("full mean", "feed") else "warm", "1 pass"),
                  cause=SIZE_CAUSES[op],
                  note="" if size == sizes[0] else ("less per GB: fixed costs spread over more data" if growth < 0.8
                                                    else "about linear in the data" if growth <= 1.2
                                                    else "grows faster than the data"))
    return per_gb


# ---------------------------------------------------------------------------------------------------

CONFIG = {
    "quick": dict(mem_bytes=256 * 2**20, read_bytes=64 * 10**6, write_bytes=64 * 10**6, darts=8_000_000,
                  python_darts=200_000, numpy_darts=4_000_000, gen_size="5MB", zarr_vars=1, ooc_files=2, store_files=3, feed_windows=10,
                  ooc_rounds=1),
    "full": dict(mem_bytes=512 * 2**20, write_bytes=512 * 10**6, darts=200_000_000,
                 python_darts=4_000_000, numpy_darts=50_000_000, gen_size="small", feed_windows=100,
                 ooc_rounds=3),
}


def write_outputs(t, out, meta):
    out.mkdir(parents=True, exist_ok=True)
    flagged = [r for r in t.rows if r["flag"]]
    lines = [f"# Course benchmark ({meta['size']} size{', quick' if meta['quick'] else ''})", "",
             f"{meta['hardware']}  ", f"{meta['load_before']} before, {meta['load_after']} after · "
             f"{meta['date']} · {meta['seconds']:.0f} s", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "|".join([":---", ":---", "---:", ":---", "---:", ":---", ":---"]) + "|"]
    for r in t.rows:
        lines.append("| " + " | ".join(str(r[c]).replace("|", "\\|") for c in COLUMNS) + " |")
    lines += ["", f"{len(flagged)} ratio(s) below expectation." if flagged else "No ratio below its expectation."]
    tmp = out / "benchmark.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out / "benchmark.md")
    tmp = out / "benchmark.json.tmp"
    tmp.write_text(json.dumps({**meta, "rows": t.rows}, indent=1, default=str))
    tmp.replace(out / "benchmark.json")


def all_rows(t, cfg, scratch):
    files = sorted(course.dataset().glob("era5_*.nc"))
    limits = machine_limits(t, cfg, files, scratch)
    parallel_rows(t, cfg)
    reduction_rows(t, cfg, limits)
    out_of_core_rows(t, cfg, files, limits)
    flox_row(t, cfg, files)
    extra = storage_rows(t, cfg, files, limits)
    generator_rows(t, cfg, limits, scratch)
    lab_rows(t)
    episode_rows(t, cfg, extra)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small arrays and few darts: seconds, for the test")
    parser.add_argument("--labs", action="store_true", help="execute every lab first (many minutes)")
    parser.add_argument("--out", default=str(course.BUILD / "benchmark"), help="output folder (default _build/benchmark)")
    parser.add_argument("--gpu", action="store_true", help="the GPU rows alone (tests/gpu_run.sh): seconds")
    parser.add_argument("--sizes", default="", metavar="SMALL,WORKSHOP",
                        help="also measure the full mean, to_zarr, a training pass and the feed at each of these "
                             "sizes (generated on demand), per GB: e.g. --sizes small,workshop (minutes)")
    args = parser.parse_args(argv)
    cfg = CONFIG["quick" if args.quick else "full"]
    sizes = [x.strip() for x in args.sizes.split(",") if x.strip()]
    if len(sizes) == 1:
        parser.error("--sizes needs two sizes or more, e.g. --sizes small,workshop")
    out = Path(args.out)
    if args.labs:
        sys.path.insert(0, str(ROOT / "tests"))
        import execute_labs

        execute_labs.main([])
    start = time.perf_counter()
    load_before = bench.load()
    print(course.hardware(), "·", load_before, "· size", course.size(), flush=True)
    scratch = course.BUILD / "benchmark" / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    t = Table()
    try:
        if args.gpu:
            gpu_rows(t)
        else:
            all_rows(t, cfg, scratch)
            if sizes:
                size_rows(t, cfg, sizes)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    meta = {"hardware": course.hardware(), "size": course.size(), "quick": args.quick, "sizes": sizes,
            "sections": SECTIONS + (["Cost against size"] if sizes else []),
            "load_before": load_before, "load_after": bench.load(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "seconds": time.perf_counter() - start}
    write_outputs(t, out, meta)
    print()
    course.table([{c: r[c] for c in COLUMNS if c != "section"} for r in t.rows])
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"\nwrote {shown}/benchmark.md and .json in {meta['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
