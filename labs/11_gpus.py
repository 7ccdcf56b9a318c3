# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 11 · GPUs: CuPy, Numba CUDA, Dask and RAPIDS
#
# **Teaching:** 40 min · **Exercises:** 25 min
#
# ## Objectives
# - Explain what a GPU is good at (thousands of simple cores, very fast memory) and what it costs
#   (every byte crosses a bus first); measure both.
# - Swap NumPy for CuPy with one name (`xp`), and write array code that runs on either.
# - Fuse array expressions into one GPU kernel with `cupy.fuse`, then write a Numba CUDA kernel (threads,
#   blocks, a grid-stride loop, an atomic add) and test it without a GPU in Numba's CUDA simulator.
# - Give Dask and Xarray GPU chunks, and compute episode 07's full-dataset mean on them.
# - Run an unchanged pandas and scikit-learn script on the GPU with `cudf.pandas` and `cuml.accel`.
#
# ## Why this episode?
# "Just put it on the GPU" is advice every researcher hears. Sometimes it turns a night into a
# coffee break; sometimes the program gets slower, because the data spends longer travelling to the
# card than being computed on. This lab measures both, on the machine in front of you.
#
# **It runs everywhere.** With an NVIDIA GPU and the GPU packages it measures the GPU. Without one
# (most laptops, every Mac) every section still runs: arrays stay on the CPU, kernels run in Numba's CUDA
# simulator (slowly, but checked against the CPU), and every place where a GPU figure would be says so.
# No GPU is not an error; it is a row in a table that says how to get the figure.

# %% [markdown]
# ## 0. Is there a GPU here? *(core)*
#
# We ask in a separate Python process (`gpu.probe()`): it looks for the NVIDIA driver, then tries a
# real CuPy array and a real Numba kernel on the device. A broken CUDA installation can then only
# make the probe report a problem; it cannot crash this notebook.
#
# **The simulator switch.** Numba compiles `@cuda.jit` kernels for the GPU. Without one, Numba can run
# the very same kernels in its **CUDA simulator**: plain Python that imitates threads and blocks, slow
# but exact, and what the course's CI uses to test kernels. It is switched on by the environment
# variable `NUMBA_ENABLE_CUDASIM=1`, and Numba reads that variable **when it is imported**: so we set it
# below *before* `from numba import cuda`, and if something imported Numba earlier (Xarray and others
# may), we ask Numba to read its settings again. In your own scripts, set it in the shell:
# `NUMBA_ENABLE_CUDASIM=1 python my_kernels.py`.
#
# Once Numba has read it, we take the variable out of this process's environment again: every process
# the lab starts later (Dask workers, the RAPIDS scripts of section 5) inherits the environment, and a
# worker on a GPU machine that inherited the simulator switch would quietly simulate, or fail.

# %%
import os
import sys

import course
from course import gpu

os.environ.setdefault("NUMBA_CACHE_DIR", str(course.BUILD / "numba_cache"))
found = gpu.probe()
ON_GPU = found["cupy_ok"]               # CuPy works: arrays can live on the GPU
KERNELS_ON_GPU = found["numba_cuda_ok"]  # Numba compiled and ran a kernel on the GPU

if not KERNELS_ON_GPU and "numba.cuda" not in sys.modules:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # must happen before numba.cuda is imported
if "numba" in sys.modules:                    # Numba read its settings when it was imported: again
    import numba.core.config

    numba.core.config.reload_config()

from numba import cuda
from numba.core import config as numba_config

SIMULATOR = bool(numba_config.ENABLE_CUDASIM)
os.environ.pop("NUMBA_ENABLE_CUDASIM", None)  # read once; the processes this lab starts must not inherit it

# %%
import importlib
import inspect
import time
import warnings

from concurrent.futures import ThreadPoolExecutor

import dask
import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
import psutil
import xarray as xr

from course import bench, clusters, era5, pi, pi_numba

if ON_GPU:
    import cupy
    import cupyx

    xp = cupy  # the one name this lab swaps
else:
    cupy = None
    xp = np

GPU_NAME = found["gpus"][0] if found["gpus"] else None
CORES = course.usable_cores()
HARDWARE = course.hardware() + (f" · {GPU_NAME}" if ON_GPU else " · no GPU")
NO_GPU = "no GPU here"
gpu_errors = []  # a GPU path that failed: said in the output, and a check fails on a GPU machine

# %%
#| label: gpu-status
course.table(gpu.status_rows(found))
print(f"Numba kernels: {'on the GPU' if not SIMULATOR else 'CUDA simulator (NUMBA_ENABLE_CUDASIM=1)'}")
print(HARDWARE)

# %%
#| label: gpu-notice
def say(markdown):
    """Show a short Markdown text: formatted in a notebook (and on the slides), as is in a terminal."""
    if course.in_notebook():
        from IPython.display import display

        display({"text/markdown": markdown, "text/plain": markdown}, raw=True)
    else:
        print(markdown)


if ON_GPU:
    NOTICE = (f"**Measured on a GPU: {GPU_NAME}** (CuPy {found['cupy']}, numba-cuda {found['numba_cuda']}). "
              "GPU rows are measured on it, CPU rows on the CPU.")
else:
    NOTICE = ("**Measured WITHOUT a GPU.** Every timing in this lab is a CPU timing, and the GPU rows say "
              f"*{NO_GPU}*. To get the GPU figures:\n\n" + gpu.HOW_TO_GET_GPU)
say(NOTICE)

# %% [markdown]
# ## 1. Why a GPU: many cores, fast memory, and a bus in between *(core)*
#
# A CPU has a few (2–128) fast, clever cores with large caches. A GPU has thousands of simple ones,
# grouped into *streaming multiprocessors* (SMs), and its own memory, built for bandwidth: an H100 reads
# a few terabytes per second, a server CPU a few hundred gigabytes. Most array work (sums, means,
# element-wise arithmetic) is limited by memory bandwidth, not arithmetic, so that ratio is roughly the
# speed-up to expect.
#
# The catch: the GPU's memory is a separate memory. Data starts in the computer's RAM ("host") and must
# cross the **PCIe** bus to the GPU ("device"): on an x86 server with an H100 or H200 that is PCIe Gen5
# x16, at most about 64 GB/s each way by the standard, far slower than either memory. (NVLink is
# NVIDIA's faster link between GPUs; it reaches the CPU only on NVIDIA's own Grace CPUs.) We measure all
# three, and the CPU on one core and on all of them: one core cannot draw a server's full memory bandwidth.
#
# Three timing rules for GPU code:
#
# 1. **Synchronise.** A GPU call returns as soon as the work is *queued*. Stop the clock only after
#    `cupy.cuda.Device().synchronize()` (or after copying a result back), or you time the queueing.
# 2. **Warm up.** The first call compiles kernels and allocates memory; time the calls after it.
# 3. **Let the GPU time itself.** `cupyx.profiler.benchmark(fn, n_repeat=...)` does both: it runs a
#    warm-up, then records CUDA events around each call and reports the GPU's own times.
#
# A word on precision: data-centre GPUs (A100, H100, H200) compute float64 at half their float32 rate,
# but consumer cards (GeForce) at a small fraction of it (1/64 on recent ones, by NVIDIA's
# specifications). Memory-bound work hardly notices; arithmetic-heavy kernels do. Store float32 where
# it is precise enough, and accumulate sums in float64, as this lab does.

# %%
def sync():
    """Wait until the GPU has finished everything queued (nothing to wait for on the CPU)."""
    if ON_GPU:
        cupy.cuda.Device().synchronize()


def best_time(fn, repeat=5):
    """Best wall-clock seconds of `repeat` calls of fn() after one warm-up call, and its last result."""
    out = fn()  # warm-up: compiles, allocates
    best = float("inf")
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best, out


def gpu_time(fn, repeat=10):
    """Best GPU time of fn() in seconds: CuPy's benchmark runs one warm-up call, then times each call
    with CUDA events, on the GPU's own clock."""
    from cupyx.profiler import benchmark

    return float(benchmark(fn, n_repeat=repeat, n_warmup=1).gpu_times.min())


def gbps(nbytes, seconds):
    return nbytes / seconds / 1e9


POOL = ThreadPoolExecutor(CORES)


def on_all_cores(work, n):
    """Run work(start, stop) on CORES equal parts of range(n) at once, one thread each. NumPy releases
    Python's lock (the GIL) inside a copy or a reduction, so the threads run in parallel (episode 02)."""
    edges = np.linspace(0, n, CORES + 1).astype(int)
    list(POOL.map(work, edges[:-1], edges[1:]))


# Buffers large enough to see bandwidth, small enough for any machine: at most 1/16 of free RAM.
BUF_BYTES = int(min(256 * 2**20, psutil.virtual_memory().available / 16)) // 4 * 4
host_a = np.ones(BUF_BYTES // 4, dtype=np.float32)
host_b = np.empty_like(host_a)
host_copy_s, _ = best_time(lambda: np.copyto(host_b, host_a))
host_bw = gbps(2 * BUF_BYTES, host_copy_s)  # a copy reads and writes every byte
host_all_s, _ = best_time(lambda: on_all_cores(lambda a, b: np.copyto(host_b[a:b], host_a[a:b]), host_a.size))
host_bw_all = gbps(2 * BUF_BYTES, host_all_s)

# %% [markdown]
# ### Memory bandwidth: host RAM and the GPU's own memory
# The card's theoretical peak comes from its own properties: memory clock × bus width × 2 (two transfers
# per clock, "double data rate"). We compare it with a copy inside the GPU's memory.

# %%
#| label: memory-bandwidth
rows = [{"memory": "host RAM, CPU copy on 1 core", "measured": f"{host_bw:.1f} GB/s", "peak": "",
         "size": f"{BUF_BYTES / 2**20:.0f} MiB"},
        {"memory": f"host RAM, CPU copy on {CORES} cores (threads)", "measured": f"{host_bw_all:.1f} GB/s",
         "peak": "", "size": f"{BUF_BYTES / 2**20:.0f} MiB"}]
peak_bw = device_bw = None
if ON_GPU:
    try:
        free, total = cupy.cuda.runtime.memGetInfo()
        dev_bytes = int(min(2 * 2**30, free / 8)) // 4 * 4
        dev_a = cupy.ones(dev_bytes // 4, dtype=cupy.float32)
        dev_b = cupy.empty_like(dev_a)
        dev_copy_s = gpu_time(lambda: cupy.copyto(dev_b, dev_a))
        device_bw = gbps(2 * dev_bytes, dev_copy_s)
        peak = gpu.peak_bandwidth(cupy)
        peak_bw = peak / 1e9 if peak else None
        rows.append({"memory": f"GPU memory ({GPU_NAME})", "measured": f"{device_bw:.0f} GB/s",
                     "peak": f"{peak_bw:.0f} GB/s ({device_bw / peak_bw:.0%})" if peak_bw else "not reported",
                     "size": f"{dev_bytes / 2**20:.0f} MiB"})
        del dev_a, dev_b
        cupy.get_default_memory_pool().free_all_blocks()  # give the 2 × buffer back to the GPU
    except Exception as err:
        gpu_errors.append(f"memory bandwidth: {type(err).__name__}: {err}")
        rows.append({"memory": "GPU memory", "measured": f"failed: {type(err).__name__}", "peak": "", "size": ""})
else:
    rows.append({"memory": "GPU memory", "measured": NO_GPU, "peak": NO_GPU, "size": ""})
course.table(rows)
if device_bw:
    print(f"The GPU copies {device_bw / host_bw_all:.0f}× as fast as the CPU on all {CORES} cores "
          f"({device_bw / host_bw:.0f}× one core): the speed-up to expect for memory-bound array work.")
else:
    print(f"{CORES} cores copy {host_bw_all / host_bw:.1f}× as fast as one: {NO_GPU} to compare with.")
print(HARDWARE)
print(bench.load())

# %% [markdown]
# ### Crossing the bus
# Host → device (`d.set(a)` into an existing device array, or `cupy.asarray(a)` for a new one) and
# device → host (`d.get(out=a)`, or `cupy.asnumpy(d)`). The GPU's copy engines read only **pinned**
# (page-locked) host memory, which the operating system may not move. Ordinary, **pageable** memory
# (any NumPy array) is copied by the driver into a locked buffer of its own first, piece by piece.
# `cupyx.empty_pinned` allocates pinned memory, so the copy engine reads it directly.
#
# `cupy.asarray(numpy_array)` is neither: CuPy first copies the array into a pinned buffer from its own
# pool (`cupy.get_default_pinned_memory_pool()`), then sends that. So it is a third column here, not
# the "pageable" one. Small transfers are dominated by a fixed latency of some microseconds, so their
# bandwidth is poor: send few, large transfers.

# %%
#| label: transfers
transfer_rows = []
h2d_bw = d2h_bw = h2d_pinned_bw = d2h_pinned_bw = None
if ON_GPU:
    try:
        for size in [2**20, 16 * 2**20, BUF_BYTES]:
            n = size // 4
            pageable = host_a[:n]
            pinned = cupyx.empty_pinned((n,), dtype=np.float32)
            pinned[:] = 1
            dev = cupy.empty(n, dtype=cupy.float32)
            row = {"size": f"{size / 2**20:.0f} MiB"}
            for name, fn in [("host→device, pageable", lambda: dev.set(pageable)),
                             ("host→device, pinned", lambda: dev.set(pinned)),
                             ("cupy.asarray (pinned pool)", lambda: cupy.asarray(pageable)),
                             ("device→host, pageable", lambda: dev.get(out=host_b[:n])),
                             ("device→host, pinned", lambda: dev.get(out=pinned))]:
                row[name] = f"{gbps(size, best_time(fn)[0]):.1f} GB/s"  # wall clock: includes the host's part
            transfer_rows.append(row)
        largest = {k: float(v.split()[0]) for k, v in transfer_rows[-1].items() if k != "size"}
        h2d_bw, d2h_bw = largest["host→device, pageable"], largest["device→host, pageable"]
        h2d_pinned_bw, d2h_pinned_bw = largest["host→device, pinned"], largest["device→host, pinned"]
        del pinned, dev
        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()
    except Exception as err:
        gpu_errors.append(f"transfers: {type(err).__name__}: {err}")
        transfer_rows = [{"size": "", "host→device": f"failed: {type(err).__name__}: {str(err)[:80]}"}]
else:
    transfer_rows = [{"size": "any", "host→device": NO_GPU, "device→host": NO_GPU}]
course.table(transfer_rows)
if h2d_bw:
    print(f"Largest copy: pinned memory crosses {h2d_pinned_bw / h2d_bw:.1f}× as fast as pageable to the GPU "
          f"and {d2h_pinned_bw / d2h_bw:.1f}× back; the bus moves {h2d_pinned_bw / host_bw_all:.2f}× what "
          f"the CPU copies in its own RAM on {CORES} cores.")
print(HARDWARE)

# %% [markdown]
# ### When does the transfer eat the gain?
# A reduction over a real field of the course's dataset: the time mean of 2 m temperature at every grid
# point (what a climatology starts with). We load as many time steps as fit comfortably in memory,
# then time four ways: NumPy on one core and on every core (threads, each taking a band of latitudes),
# CuPy with the field **already on the GPU**, and CuPy **including the copy** of the field to the GPU.

# %%
#| label: field-load
files = course.era5.files()  # the course's files, or your own (COURSE_ERA5)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    whole = course.era5.open()  # lazy: every file, in the course's conventions
step_bytes = whole.t2m[0].size * 4  # one time step, decoded to float32
n_steps = int(max(1, min(whole.time.size, psutil.virtual_memory().available / 16 // step_bytes,
                         2 * 2**30 // step_bytes)))
field = whole.t2m.isel(time=slice(0, n_steps)).values.astype("float32", copy=False)  # (time, lat, lon), in RAM
lat = whole.latitude.values
print(f"t2m, the first {n_steps} of {whole.time.size} time steps: shape {field.shape}, "
      f"{field.nbytes / 2**20:.0f} MiB (COURSE_SIZE={course.size()})")

# %%
#| label: transfer-vs-gain
def time_mean(a):
    """Mean over time at every grid point, accumulated in float64; works for NumPy and CuPy arrays."""
    return a.mean(axis=0, dtype="float64")


def time_mean_all_cores(a):
    """The same mean, each thread taking a band of latitudes (axis 1)."""
    out = np.empty(a.shape[1:], dtype="float64")
    on_all_cores(lambda i, j: np.mean(a[:, i:j], axis=0, dtype="float64", out=out[i:j]), a.shape[1])
    return out


cpu_one_s, cpu_mean = best_time(lambda: time_mean(field), repeat=3)
cpu_mean_s, cpu_mean_all = best_time(lambda: time_mean_all_cores(field), repeat=3)  # the baseline
gain_rows = [{"way": "NumPy, CPU, 1 core", "seconds": f"{cpu_one_s:.4f}",
              "bandwidth": f"{gbps(field.nbytes, cpu_one_s):.1f} GB/s", "note": "reads the field once"},
             {"way": f"NumPy, CPU, {CORES} cores (threads)", "seconds": f"{cpu_mean_s:.4f}",
              "bandwidth": f"{gbps(field.nbytes, cpu_mean_s):.1f} GB/s",
              "note": f"{cpu_one_s / cpu_mean_s:.1f}× one core; the baseline below"}]
gpu_mean = gpu_mean_s = copy_mean_s = None
if ON_GPU:
    try:
        field_dev = cupy.asarray(field)
        gpu_mean_s = gpu_time(lambda: time_mean(field_dev))
        gpu_mean = time_mean(field_dev)
        copy_mean_s, _ = best_time(lambda: time_mean(cupy.asarray(field)), repeat=3)  # wall clock: host work too
        frac = f" = {gbps(field.nbytes, gpu_mean_s) / peak_bw:.0%} of peak" if peak_bw else ""
        gain_rows += [
            {"way": "CuPy, field already on the GPU", "seconds": f"{gpu_mean_s:.4f}",
             "bandwidth": f"{gbps(field.nbytes, gpu_mean_s):.0f} GB/s",
             "note": f"{cpu_mean_s / gpu_mean_s:.0f}× NumPy on {CORES} cores{frac}"},
            {"way": "CuPy, cupy.asarray to the GPU first", "seconds": f"{copy_mean_s:.4f}",
             "bandwidth": f"{gbps(field.nbytes, copy_mean_s):.1f} GB/s",
             "note": f"{cpu_mean_s / copy_mean_s:.1f}× NumPy on {CORES} cores"},
        ]
    except Exception as err:
        gpu_errors.append(f"field reduction: {type(err).__name__}: {err}")
        gain_rows.append({"way": "CuPy", "seconds": "failed", "bandwidth": "", "note": f"{type(err).__name__}: {str(err)[:80]}"})
else:
    gain_rows += [{"way": "CuPy, field already on the GPU", "seconds": NO_GPU, "bandwidth": "", "note": ""},
                  {"way": "CuPy, cupy.asarray to the GPU first", "seconds": NO_GPU, "bandwidth": "", "note": ""}]
course.table(gain_rows)
print(f"field {field.nbytes / 2**20:.0f} MiB · {HARDWARE}")

# %%
#| label: transfer-verdict
if gpu_mean_s and copy_mean_s:
    copy_share = max(0.0, (copy_mean_s - gpu_mean_s) / copy_mean_s)
    once = "faster" if copy_mean_s < cpu_mean_s else "slower"
    spare = cpu_mean_s - gpu_mean_s
    verdict = (f"Here the copy takes {copy_share:.0%} of the GPU's time for one mean. Counting it, one mean on the "
               f"GPU is {max(cpu_mean_s, copy_mean_s) / min(cpu_mean_s, copy_mean_s):.1f}× {once} than NumPy on "
               f"{CORES} cores; with the field already there, {cpu_mean_s / gpu_mean_s:.0f}× faster. ")
    if spare > 0 and once == "slower":
        verdict += (f"The copy pays for itself after {(copy_mean_s - gpu_mean_s) / spare:.1f} such operations "
                    "on the field while it stays on the GPU.")
    say(verdict)
else:
    say(f"{NO_GPU}: the share of the copy in the GPU's time cannot be measured on this machine. The CPU "
        f"reads the field at {gbps(field.nbytes, cpu_mean_s):.1f} GB/s on {CORES} cores; a GPU gains on a single "
        "mean only if the field crosses the bus faster than that.")

# %% [markdown]
# Read the table from the bottom, with the sentence under it. If the field is used **once**, the copy
# decides, so compare the bus rate with the rate at which the CPU reads its own RAM. If the field
# **stays** on the GPU for many operations (anomalies, percentiles, a model run), the copy is paid once
# and every later operation runs at the GPU's speed. Rule of thumb: move data to the GPU once, do
# everything there, bring back only small results.

# %% [markdown]
# ### Exercise 1: when does the GPU pay off? (5 min)
# Use the `transfer-vs-gain` table above: with `t_copy` the time to copy the field to the GPU, `t_gpu`
# and `t_cpu` the times of one reduction on each (the CPU on all its cores), how many reductions `k` of
# the same field must you do before the GPU wins, counting the copy? Without a GPU here, take the bus
# and GPU memory rates from the column recorded on a GPU machine in section 6's summary if it is there,
# or from your GPU's data sheet, with your own CPU figure.
#
# <details><summary>Solution</summary>
#
# The GPU wins when `t_copy + k·t_gpu < k·t_cpu`, so `k > t_copy / (t_cpu − t_gpu)`. With the field
# already on the GPU `t_copy` is 0 and it wins from the first reduction. For one pass over a field
# that starts on the host, it wins only if the field crosses the bus faster than the CPU's cores read
# it from RAM: compare the pinned host → device rate with the CPU's all-core bandwidth. The sentence
# under the `transfer-vs-gain` table computes `k` from this machine's measurements.
# </details>

# %% [markdown]
# ## 2. The swap: `xp = cupy` or `numpy` *(core)*
#
# CuPy copies NumPy's interface: `cupy.mean`, `cupy.fft`, `cupy.random.default_rng`, slicing,
# broadcasting. So array code written against a module *name* runs on either:
#
# ```python
# xp = cupy if gpu_available else numpy
# ```
#
# Three tools make such code work:
#
# - `cupy.get_array_module(a)` returns `cupy` for a CuPy array and `numpy` otherwise, so a function
#   can follow its input;
# - **NEP 18** (`__array_function__`): calling a *NumPy* function on another array type hands the call to
#   that type's library: `np.mean(cupy_array)` runs `cupy.mean` on the GPU. Dask arrays use the same
#   protocol, so we can watch it work on any machine;
# - `cupy.asarray(a)` (host → device) and `cupy.asnumpy(a)` or `a.get()` (device → host) at the edges.

# %%
#| label: nep18
def array_module(a):
    """The module that `a` belongs to: cupy.get_array_module where CuPy is available, else numpy."""
    return cupy.get_array_module(a) if ON_GPU else np


lazy = da.from_array(field, chunks=(max(1, field.shape[0] // 4), -1, -1))
print(f"np.mean(numpy array) -> {type(np.mean(field[:2])).__module__}.{type(np.mean(field[:2])).__name__}")
print(f"np.mean(dask array)  -> {type(np.mean(lazy)).__module__}.{type(np.mean(lazy)).__name__}  (NEP 18: Dask's mean ran)")
if ON_GPU:
    on_device = cupy.asarray(field[:2])
    print(f"np.mean(cupy array)  -> {type(np.mean(on_device)).__module__}.{type(np.mean(on_device)).__name__}  "
          f"(NEP 18: CuPy's mean ran on the GPU)")
    print(f"array_module: {array_module(field).__name__} for the host field, {array_module(on_device).__name__} on the device")
else:
    print(f"np.mean(cupy array)  -> {NO_GPU} (it would be a cupy.ndarray, computed on the GPU)")
    print(f"array_module(field) -> {array_module(field).__name__}")

# %% [markdown]
# ### π by Monte-Carlo, written once
# The darts of episodes 01–03, written against `xp`. `xp.random.default_rng` exists in NumPy, CuPy
# *and* `dask.array`, so the one function runs on the CPU, on the GPU, and as a Dask graph. The darts
# come in blocks, so memory stays bounded however many we throw. The random streams differ between
# libraries, so the estimates differ too, by about the statistical error: that is what we check.

# %%
#| label: pi-xp
def pi_darts(xp, n, seed=0, block=2**22):
    """π from n darts with any array module that has NumPy's API (numpy, cupy, dask.array)."""
    rng = xp.random.default_rng(seed)
    hits = 0
    for start in range(0, n, block):
        m = min(block, n - start)
        x = rng.random(m, dtype="float32")
        y = rng.random(m, dtype="float32")
        hits = hits + xp.count_nonzero(x * x + y * y <= 1)
    return 4 * int(hits) / n  # int(): the one place the result comes back to Python (and the host)


def calibrated_n(run, target_s=0.4, n0=2**21, most=2**34):
    """Darts for one run of about target_s seconds, from a measurement of n0 darts."""
    run(n0)  # warm-up
    sync()
    start = time.perf_counter()
    run(n0)
    sync()
    seconds = max(time.perf_counter() - start, 1e-6)
    return int(min(most, max(n0, n0 * target_s / seconds))) // 2**20 * 2**20


BLOCK = 2**24 if ON_GPU else 2**20  # GPU: big blocks keep thousands of cores busy; CPU: cache-sized
pi_rows, rates = [], {}
n_cpu = calibrated_n(lambda n: pi_darts(np, n, block=2**20))
t, pi_cpu = best_time(lambda: pi_darts(np, n_cpu, seed=1, block=2**20), repeat=3)
rates["NumPy (CPU, 1 core)"] = n_cpu / t
pi_rows.append({"xp": "numpy", "darts": f"{n_cpu:.2e}", "π": f"{pi_cpu:.6f}", "seconds": f"{t:.3f}",
                "darts/s": f"{n_cpu / t:.2e}"})
pi_gpu = None
if ON_GPU:
    try:
        n_gpu = calibrated_n(lambda n: pi_darts(cupy, n, block=BLOCK))
        t, pi_gpu = best_time(lambda: pi_darts(cupy, n_gpu, seed=1, block=BLOCK), repeat=3)
        rates["CuPy (GPU)"] = n_gpu / t
        pi_rows.append({"xp": "cupy", "darts": f"{n_gpu:.2e}", "π": f"{pi_gpu:.6f}", "seconds": f"{t:.3f}",
                        "darts/s": f"{n_gpu / t:.2e}"})
    except Exception as err:
        gpu_errors.append(f"pi with cupy: {type(err).__name__}: {err}")
        pi_rows.append({"xp": "cupy", "darts": "", "π": "failed", "seconds": f"{type(err).__name__}", "darts/s": ""})
else:
    pi_rows.append({"xp": "cupy", "darts": "", "π": NO_GPU, "seconds": NO_GPU, "darts/s": NO_GPU})
pi_dask = pi_darts(da, 2**22, seed=1, block=2**20)  # a Dask graph, computed here by Dask's threads
pi_rows.append({"xp": "dask.array", "darts": f"{2**22:.2e}", "π": f"{pi_dask:.6f}", "seconds": "(not timed)", "darts/s": ""})
course.table(pi_rows)
print(f"statistical error of {n_cpu:.1e} darts: ±{pi.stderr(n_cpu):.1e}")
print(HARDWARE)

# %% [markdown]
# ### A reduction over a field, on both
# The same function, given the host field and the device field, follows its input with
# `array_module`: the area-weighted global mean of the time-mean temperature. Accumulating in float64
# makes the two agree to rounding, whatever order the thousands of GPU threads add in.

# %%
#| label: field-reduction
def global_mean(field, lat):
    """Area-weighted (cos latitude) mean over the globe of the time mean, in kelvin."""
    xp = array_module(field)
    w = xp.cos(xp.deg2rad(xp.asarray(lat, dtype="float64")))
    return float((time_mean(field) * w[:, None]).sum() / (w.sum() * field.shape[2]))


gm_cpu = global_mean(field, lat)
print(f"NumPy (CPU): global mean t2m = {gm_cpu:.6f} K")
gm_gpu = None
if ON_GPU:
    try:
        gm_gpu = global_mean(field_dev, lat)
        print(f"CuPy (GPU):  global mean t2m = {gm_gpu:.6f} K   difference {abs(gm_gpu - gm_cpu):.1e} K")
    except Exception as err:
        gpu_errors.append(f"global mean with cupy: {type(err).__name__}: {err}")
        print(f"CuPy (GPU):  failed: {type(err).__name__}: {err}")
else:
    print(f"CuPy (GPU):  {NO_GPU}")

# %% [markdown]
# ### One kernel instead of three: `cupy.fuse`
# Between swapping the module and writing a kernel by hand there is a middle step. CuPy runs every
# operation of an expression as a kernel of its own, with a temporary array in between: to count the
# **hot anomalies** (values more than 5 K above their grid point's time mean), `x - clim` writes one
# temporary, `> threshold` a second, and the count reads it again. `cupy.fuse` compiles the whole
# Python function into **one** kernel that reads each value once and writes only the result. (Its
# cousins take a line of CUDA C instead: `cupy.ElementwiseKernel`, `cupy.ReductionKernel`.) On the CPU
# the same function runs with NumPy, temporaries and all.

# %%
#| label: fused-hot-count
THRESHOLD = 5.0  # kelvin above the time mean at that grid point


def hot(x, clim, threshold):
    """True where a value is more than `threshold` above its grid point's time mean."""
    return x - clim > threshold


clim = cpu_mean.astype("float32")  # the time mean at every grid point, from above
hot_cpu_s, n_hot = best_time(lambda: int(np.count_nonzero(hot(field, clim, THRESHOLD))), repeat=3)
fused_rows = [{"way": "NumPy, CPU, 1 core", "hot values": f"{n_hot:,}", "seconds": f"{hot_cpu_s:.4f}"}]
n_hot_gpu = None
if ON_GPU:
    try:
        hot_fused = cupy.fuse(hot)  # the same Python function, compiled into one GPU kernel
        clim_dev = cupy.asarray(clim)
        plain_s = gpu_time(lambda: cupy.count_nonzero(hot(field_dev, clim_dev, THRESHOLD)))
        fused_s = gpu_time(lambda: cupy.count_nonzero(hot_fused(field_dev, clim_dev, THRESHOLD)))
        n_hot_gpu = int(cupy.count_nonzero(hot_fused(field_dev, clim_dev, THRESHOLD)))
        fused_rows += [{"way": "CuPy, one kernel per operation", "hot values": "", "seconds": f"{plain_s:.5f}"},
                       {"way": "CuPy, cupy.fuse(hot)", "hot values": f"{n_hot_gpu:,}", "seconds": f"{fused_s:.5f}"}]
    except Exception as err:
        gpu_errors.append(f"cupy.fuse: {type(err).__name__}: {err}")
        fused_rows.append({"way": "CuPy, cupy.fuse(hot)", "hot values": "failed", "seconds": type(err).__name__})
else:
    fused_rows.append({"way": "CuPy, cupy.fuse(hot)", "hot values": NO_GPU, "seconds": NO_GPU})
course.table(fused_rows)
print(f"{n_hot / field.size:.2%} of the values are more than {THRESHOLD} K above their time mean")
if n_hot_gpu is not None:
    print(f"fusing: {plain_s / fused_s:.1f}× the unfused CuPy expression, same count: {n_hot_gpu == n_hot}")
print(HARDWARE)

# %% [markdown]
# ### Exercise 2: write it once (8 min)
# Write `anomaly(field)`: the field minus its time mean at every grid point, in a way that works for
# NumPy and CuPy arrays (use `array_module`). Check it on `field` (and on `field_dev` if you have a
# GPU): the anomaly's time mean must be about 0 everywhere. Then call `np.std(anomaly(lazy))` on the Dask
# array `lazy`: what type comes back, and why?
#
# <details><summary>Solution</summary>
#
# ```python
# def anomaly(field):
#     xp = array_module(field)
#     return field - xp.mean(field, axis=0, keepdims=True)
#
# print(float(np.abs(anomaly(field).mean(axis=0)).max()))      # ~1e-5: float32 rounding
# np.std(anomaly(lazy))                                         # a dask Array: NEP 18 sent np.std to Dask
# ```
# `array_module` returns `numpy` for the Dask array (it is not a CuPy array), but `field - np.mean(...)`
# still works lazily, because `np.mean` on a Dask array dispatches to Dask (NEP 18) and `-` is Dask's
# own operator. Nothing is computed until you call `.compute()` (or `float(...)`).
# </details>

# %% [markdown]
# ## 3. Numba on the GPU: a kernel of your own *(core)*
#
# When no library function does what you need, write a **kernel**: a function that thousands of GPU
# threads run at once, each on its own part of the data. The simplest kind gives every thread one
# element: here, one point (x, y) each, and the question "is it inside the quarter circle?".
#
# - Threads come in **blocks** (here 256 threads); the blocks form a **grid**. `cuda.grid(1)` is this
#   thread's index in the whole grid, `cuda.gridsize(1)` the number of threads in the grid. Launch with
#   enough blocks to cover the data: `kernel[blocks, threads](arguments)`.
# - The grid is rounded up to whole blocks, so the last threads may have no element: `if i < x.size`.
# - Adding to one total from many threads needs `cuda.atomic.add`: an addition that two threads cannot
#   interleave. (Without it, two threads can read the same old total and one update is lost.)

# %%
#| label: first-kernel
@cuda.jit
def count_inside(x, y, hits):
    """hits[0] += 1 for every point (x[i], y[i]) inside the quarter circle; one thread per point."""
    i = cuda.grid(1)                   # this thread's point
    if i < x.size:                     # the last block may reach past the end
        if x[i] * x[i] + y[i] * y[i] <= 1.0:
            cuda.atomic.add(hits, 0, 1)


N_FIRST = 2**24 if KERNELS_ON_GPU else 2_000  # the simulator is slow: a few thousand points
points = np.random.default_rng(42).random((2, N_FIRST))  # float64 x and y, made on the CPU
THREADS = 256
blocks = -(-N_FIRST // THREADS)  # enough blocks to cover every point
hits_first = cuda.to_device(np.zeros(1, dtype=np.int64))
count_inside[blocks, THREADS](cuda.to_device(points[0]), cuda.to_device(points[1]), hits_first)
first_hits = int(hits_first.copy_to_host()[0])
first_expected = int(np.count_nonzero(points[0] ** 2 + points[1] ** 2 <= 1.0))
print(f"count_inside[{blocks}, {THREADS}] ({'simulator' if SIMULATOR else 'GPU'}): {first_hits} of {N_FIRST} "
      f"points inside; NumPy: {first_expected} -> {'identical' if first_hits == first_expected else 'DIFFERENT'}")

# %% [markdown]
# ### Throwing the darts inside the kernel
# The first kernel needed the points in memory, made on the CPU and copied over: two float64 numbers
# per dart cross the bus. A faster kernel makes its own darts, and each thread throws many:
#
# - A **grid-stride loop** (`range(first, n, stride)`) lets a fixed grid cover any `n`: thread *t* takes
#   darts *t*, *t + stride*, *t + 2·stride*, ...
# - Each thread counts its hits in a local variable, then does **one** atomic add of its count.
#
# The darts come from lab 03's SplitMix64 generator. Its *k*-th number is a hash of *k*, so any thread
# can compute any dart directly: the kernel throws **exactly** the darts of `pi_numba.chunk_hits`, the
# compiled CPU version of episode 03, and must count exactly the same hits, on any grid.

# %%
#| label: kernel-code
# SplitMix64's constants (course.pi), as the unsigned 64-bit integers the GPU computes with
GAMMA = np.uint64(pi.GAMMA)
M1, M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
S11, S27, S30, S31 = (np.uint64(s) for s in (11, 27, 30, 31))
TO_UNIT = pi.TO_UNIT


@cuda.jit(device=True)
def mix64(z):
    """SplitMix64's mixing function (a device function: called from kernels only)."""
    z = (z ^ (z >> S30)) * M1
    z = (z ^ (z >> S27)) * M2
    return z ^ (z >> S31)


@cuda.jit
def pi_kernel(n, s0, hits):
    """Count the darts j = 0 .. n-1 of the stream that starts at s0 inside the quarter circle."""
    first = cuda.grid(1)      # blockIdx.x * blockDim.x + threadIdx.x
    stride = cuda.gridsize(1)  # gridDim.x * blockDim.x
    count = 0
    for j in range(first, n, stride):  # grid-stride loop
        k = np.uint64(2 * j)
        x = (mix64(s0 + (k + np.uint64(1)) * GAMMA) >> S11) * TO_UNIT
        y = (mix64(s0 + (k + np.uint64(2)) * GAMMA) >> S11) * TO_UNIT
        if x * x + y * y <= 1.0:
            count += 1
    cuda.atomic.add(hits, 0, count)  # one atomic add per thread


def chunk_start(base, i):
    """The generator state chunk i of seed base starts from: episode 03's one seed, pi.chunk_seed."""
    return np.uint64(pi.chunk_seed(base, i))


def count_on_device(n, base, i, blocks, threads):
    hits = cuda.to_device(np.zeros(1, dtype=np.int64))
    pi_kernel[blocks, threads](n, chunk_start(base, i), hits)  # kernel[grid, block](arguments)
    return int(hits.copy_to_host()[0])  # copying back waits for the kernel to finish

# %% [markdown]
# ### In the simulator: tiny, exact, and the same code
# The simulator runs each block's threads as Python threads: correct, and a million times slower than a
# GPU. So it gets a tiny problem, separate from anything we time, and we compare it with the CPU count
# **exactly**, on two different grids. (It runs the kernel's uint64 arithmetic on NumPy scalars, which
# warn when a multiplication wraps around; on a GPU, as in C, wrapping around is the defined behaviour
# the generator relies on, so we silence that warning.)

# %%
#| label: kernel-simulator
N_SMALL, BASE, CHUNK = 3_000, 2026, 11
expected_small = pi_numba.chunk_hits(N_SMALL, pi.chunk_seed(BASE, CHUNK))  # lab 03's compiled CPU version
small_counts = {}
with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # uint64 wrap-around in the simulator
    for blocks, threads in [(2, 32), (3, 16)]:
        start = time.perf_counter()
        small_counts[(blocks, threads)] = count_on_device(N_SMALL, BASE, CHUNK, blocks, threads)
        took = time.perf_counter() - start
        print(f"pi_kernel[{blocks}, {threads}]: {small_counts[(blocks, threads)]} hits of {N_SMALL} darts "
              f"({'simulator' if SIMULATOR else 'GPU'}, {took:.2f} s incl. compiling)")
print(f"pi_numba.chunk_hits (CPU, episode 03): {expected_small} hits  ->  "
      f"{'identical' if set(small_counts.values()) == {expected_small} else 'DIFFERENT'}")

# %% [markdown]
# ### Timed: the kernel against the CPU
# The CPU side is episode 03's `hits_prange`: Numba's compiled loop on every core, on the same
# generator. On a GPU the kernel gets a grid of 32 blocks of 256 threads per SM. In the simulator we do
# not time it: a simulated GPU says nothing about a real one.

# %%
#| label: kernel-timed
pi_numba.hits_prange(1000, pi.chunk_seeds(0, CORES))  # compile (or load from the cache) before timing
chunks = 4 * CORES
n_per = calibrated_n(lambda n: pi_numba.hits_prange(max(1, n // chunks), pi.chunk_seeds(3, chunks)), n0=2**22) // chunks
t, prange_hits = best_time(lambda: pi_numba.hits_prange(n_per, pi.chunk_seeds(3, chunks)), repeat=3)
rates[f"Numba prange (CPU, {CORES} cores)"] = n_per * chunks / t
kernel_rows = [{"where": f"Numba prange, CPU ({CORES} cores)", "darts": f"{n_per * chunks:.2e}",
                "π": f"{4 * prange_hits / (n_per * chunks):.6f}", "darts/s": f"{n_per * chunks / t:.2e}"}]
kernel_exact = None
if KERNELS_ON_GPU and not SIMULATOR:
    try:
        device = cuda.get_current_device()
        grid = (32 * device.MULTIPROCESSOR_COUNT, 256)
        n_mid = 2**24  # big enough for every thread, small enough for the CPU check
        kernel_exact = (count_on_device(n_mid, BASE, CHUNK, *grid), pi_numba.chunk_hits(n_mid, pi.chunk_seed(BASE, CHUNK)))
        n_k = calibrated_n(lambda n: count_on_device(n, BASE, CHUNK, *grid), n0=2**26, most=2**40)
        t, k_hits = best_time(lambda: count_on_device(n_k, BASE, CHUNK, *grid), repeat=3)
        rates["Numba CUDA kernel (GPU)"] = n_k / t
        kernel_rows.append({"where": f"pi_kernel[{grid[0]}, {grid[1]}], GPU", "darts": f"{n_k:.2e}",
                            "π": f"{4 * k_hits / n_k:.6f}", "darts/s": f"{n_k / t:.2e}"})
    except Exception as err:
        gpu_errors.append(f"numba kernel: {type(err).__name__}: {err}")
        kernel_rows.append({"where": "pi_kernel, GPU", "darts": "", "π": "failed", "darts/s": f"{type(err).__name__}"})
else:
    kernel_rows.append({"where": "pi_kernel, GPU", "darts": "", "π": NO_GPU,
                        "darts/s": f"{NO_GPU} (the simulator is not timed)"})
course.table(kernel_rows)
print(HARDWARE)

# %%
#| label: fig-pi-rates
#| fig-cap: "Darts per second for π by Monte-Carlo: NumPy on one CPU core against CuPy (random arrays in memory), and Numba on every core against a Numba CUDA kernel (darts hashed in registers); GPU bars are missing where this machine has no GPU."
#| fig-alt: "Horizontal bar chart of darts per second on a logarithmic axis, one bar per way of computing π, each labelled with its rate; ways that need a GPU are labelled 'no GPU here' when the machine has none."
ways = ["NumPy (CPU, 1 core)", f"Numba prange (CPU, {CORES} cores)", "CuPy (GPU)", "Numba CUDA kernel (GPU)"]
values = [rates.get(w, 0.0) for w in ways]
fig, ax = plt.subplots(figsize=(10, 4.6))
bars = ax.barh(ways[::-1], values[::-1], color=["#D55E00", "#E69F00", "#0072B2", "#009E73"])
ax.set_xscale("log")
low, high = min(v for v in values if v > 0), max(values)
ax.set_xlim(low / 3, high * 30)
ax.bar_label(bars, labels=[f"{v:.2e}/s" if v else NO_GPU for v in values[::-1]], padding=4)
for bar, v in zip(bars, values[::-1]):
    if not v:
        ax.text(low / 2.5, bar.get_y() + bar.get_height() / 2, NO_GPU, va="center", color="#555555")
ax.set_xlabel("darts per second (log scale; longer is faster)")
ax.set_title("π by Monte-Carlo: CPU and GPU", loc="left")
fig.text(0.01, 0.01, HARDWARE, fontsize=10, color="#555555")
fig.tight_layout(rect=(0, 0.05, 1, 1))
plt.show()

# %% [markdown]
# The two pairs of bars do **different work**. NumPy and CuPy draw random float32 arrays into memory and
# read them back: memory-bound. Numba prange and the CUDA kernel hash each dart in registers and touch
# no memory: compute-bound. Compare each GPU bar with its CPU twin, not with the other GPU bar.

# %%
#| label: pi-pairs
for cpu_way, gpu_way in [("NumPy (CPU, 1 core)", "CuPy (GPU)"), (f"Numba prange (CPU, {CORES} cores)", "Numba CUDA kernel (GPU)")]:
    print(f"{gpu_way}: {rates[gpu_way] / rates[cpu_way]:.0f}× {cpu_way}" if gpu_way in rates else f"{gpu_way}: {NO_GPU}")

# %% [markdown]
# ### Exercise 3: any grid, the same answer (7 min)
# Launch `count_on_device(N_SMALL, BASE, CHUNK, blocks, threads)` with `(1, 1)`, `(1, 64)` and
# `(5, 7)` (in the simulator, keep `N_SMALL` small). Why is the count always `expected_small`? What goes
# wrong if you replace `cuda.atomic.add(hits, 0, count)` by `hits[0] += count`?
#
# <details><summary>Solution</summary>
#
# The grid-stride loop gives every dart index `j < n` to exactly one thread, whatever the grid, and
# dart `j` is a pure function of `j` (a hash of the counter), not of the thread that throws it. So the
# set of darts, and the count, never change. `hits[0] += count` is a read, an add and a write: two
# threads can read the same old value and one addition is lost. The simulator runs threads one at a
# time often enough that you may not see it there; on a GPU you will get a different wrong answer on
# every run. A faster variant adds up within each block in shared memory first
# (`cuda.shared.array`, `cuda.syncthreads()`), then does one atomic add per block.
# </details>

# %% [markdown]
# ## 4. Dask and Xarray with GPU chunks *(core)*
#
# A Dask array is a grid of chunks, and each chunk is an array of *some* library: NumPy by default,
# CuPy if we ask for it. Two ways to ask:
#
# - `dask.config.set({"array.backend": "cupy"})`: arrays that Dask *creates* (`da.random`, `da.ones`)
#   get CuPy chunks;
# - `x.map_blocks(cupy.asarray)`: moves the chunks of an existing array (read from files, say) to the
#   GPU as each one is loaded.
#
# Everything after that is ordinary Dask: the workers compute on GPU chunks, and the scheduler neither
# knows nor cares. One worker per GPU is the usual rule; here one worker with two threads, so reading
# files on the CPU overlaps with computing on the GPU. Without a GPU the same code runs with NumPy
# chunks on two CPU workers.
#
# **On a machine with several GPUs**, RAPIDS' `dask-cuda` starts that cluster for you:
#
# ```python
# from dask_cuda import LocalCUDACluster
# from distributed import Client
#
# cluster = LocalCUDACluster(rmm_pool_size="24GB",        # each worker reserves 24 GB of its GPU up front
#                            device_memory_limit="30GB")  # above this, the worker spills GPU → host RAM
# client = Client(cluster)                                 # one worker per visible GPU
# ```
#
# The pool (RMM, the RAPIDS memory manager) makes allocations on the GPU cheap. Why a separate limit?
# A worker's `memory_limit` (episode 05) is a limit on **host** memory: the nanny watches the process's
# RAM, and GPU memory is not part of it. A worker can fill its GPU while its `memory_limit` shows
# nothing amiss; only `device_memory_limit` (or CuPy's and RMM's own out-of-memory errors) sees it.

# %%
#| label: dask-gpu-chunks
client = clusters.client(n_workers=1 if ON_GPU else min(2, CORES), threads_per_worker=2 if ON_GPU else 1)
backend = "cupy" if ON_GPU else "numpy"
n_dask = 2**26 if ON_GPU else 2**24
with dask.config.set({"array.backend": backend}):
    rng = da.random.default_rng(7)
    x = rng.random(n_dask, chunks=2**22, dtype="float32")
    y = rng.random(n_dask, chunks=2**22, dtype="float32")
inside = da.count_nonzero(x * x + y * y <= 1)
print(f"array.backend = {backend!r}: each chunk is a {type(x._meta).__module__}.{type(x._meta).__name__}, "
      f"{x.npartitions} chunks")
start = time.perf_counter()
dask_hits = int(clusters.compute(inside, client, what="π from Dask chunks"))
dask_s = time.perf_counter() - start
pi_dask_chunks = 4 * dask_hits / n_dask
print(f"π = {pi_dask_chunks:.5f} from {n_dask:.2e} darts in {dask_s:.2f} s on the cluster")
worker_switch = client.run(lambda: os.environ.get("NUMBA_ENABLE_CUDASIM"))  # {worker address: value}
print(f"NUMBA_ENABLE_CUDASIM on the workers: {sorted(set(map(str, worker_switch.values())))} (None: not set)")
print(HARDWARE)

# %% [markdown]
# ### Episode 07's full-dataset mean, on the GPU
# We open the dataset lazily as in episode 07, then move every chunk to the device with `map_blocks`.
# The time mean of every variable at every grid point is then computed on GPU chunks; the result comes
# back with `.as_numpy()`. We compute it both ways and compare, each way twice: the first run pays for
# opening files and, on the GPU, for compiling CuPy's kernels (NVRTC, the first time each is used); we
# time the second.

# %%
#| label: xarray-gpu-mean
with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    ds = course.era5.open(chunks={"time": int(max(1, 128e6 // step_bytes))})  # chunks of at most ~128 MB
time_vars = [v for v in ds.data_vars if "time" in ds[v].dims]
to_xp = cupy.asarray if ON_GPU else np.asarray  # what each chunk goes through on its way in


def on_device(ds):
    """The same lazy dataset, every chunk passed through to_xp when it is loaded."""
    meta = (lambda v: cupy.empty((0,) * v.ndim, dtype=v.dtype)) if ON_GPU else (lambda v: np.empty((0,) * v.ndim, dtype=v.dtype))
    return ds.map(lambda v: v.copy(data=v.data.map_blocks(to_xp, dtype=v.dtype, meta=meta(v))), keep_attrs=True)


def warm_seconds(compute):
    """Run compute() twice (the first run opens files and compiles); seconds of the second, its result."""
    compute()
    start = time.perf_counter()
    result = compute()
    return time.perf_counter() - start, result


with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # sst has no value over land: "mean of empty slice"
    xr_cpu_s, mean_cpu = warm_seconds(lambda: clusters.compute(ds[time_vars].mean("time"), client,
                                                               what="the full-dataset mean (CPU chunks)"))
    mean_dev, xr_gpu_s = None, None
    if ON_GPU:
        try:
            xr_gpu_s, mean_dev = warm_seconds(lambda: clusters.compute(
                on_device(ds[time_vars]).mean("time"), client, what="the full-dataset mean (GPU chunks)").as_numpy())
        except Exception as err:
            gpu_errors.append(f"xarray mean on GPU chunks: {type(err).__name__}: {err}")
            print(f"GPU chunks failed: {type(err).__name__}: {str(err)[:200]}")
    else:
        mean_dev = clusters.compute(on_device(ds[time_vars]).mean("time"), client,
                                    what="the full-dataset mean (through to_xp)")
xr_bytes = sum(ds[v].nbytes for v in time_vars)
xr_rows = [{"chunks": "NumPy (CPU)", "seconds (warm)": f"{xr_cpu_s:.2f}", "decoded data": f"{xr_bytes / 1e9 / xr_cpu_s:.2f} GB/s"}]
if ON_GPU and xr_gpu_s:
    xr_rows.append({"chunks": "CuPy (GPU)", "seconds (warm)": f"{xr_gpu_s:.2f}", "decoded data": f"{xr_bytes / 1e9 / xr_gpu_s:.2f} GB/s"})
elif not ON_GPU:
    xr_rows.append({"chunks": "CuPy (GPU)", "seconds (warm)": NO_GPU, "decoded data": NO_GPU})
course.table(xr_rows)
if xr_gpu_s:
    print(f"GPU chunks: {max(xr_cpu_s, xr_gpu_s) / min(xr_cpu_s, xr_gpu_s):.1f}× "
          f"{'faster' if xr_gpu_s < xr_cpu_s else 'slower'} than NumPy chunks for this mean, reading included")
worst = max(float(np.nanmax(np.abs(mean_dev[v].values - mean_cpu[v].values))) for v in time_vars) if mean_dev is not None else None
if worst is not None:
    print(f'ds.mean("time") over {len(files)} files, {xr_bytes / 2**20:.0f} MiB decoded; '
          f"largest difference between the two: {worst:.1e}")
print(HARDWARE)

# %%
cluster = client.cluster  # None when we joined a cluster someone else started: leave that one running
client.close()
if cluster is not None:
    cluster.close()
left_running = clusters.stray_children()
print("cluster closed; processes left:", left_running or "none")

# %% [markdown]
# Reading and decoding the NetCDF files happens on the CPU, chunk by chunk, whatever the chunks become
# afterwards, and a mean is one addition per value read: compare the two rows above with the CPU's own
# mean of section 1 to see how much of each is reading. The GPU pays off when the work per byte is large
# (many statistics of the same chunk, a model, a kernel like π), or when the data already lives on the
# GPU. Formats built for fast parallel reads (Zarr, episode 09) and GPU-side decompression
# (NVIDIA's `kvikio` and `nvcomp`) attack the reading itself.

# %% [markdown]
# ## 5. cuDF and cuML: pandas and scikit-learn on the GPU, without changing the code *(optional)*
#
# RAPIDS **cuDF** is a GPU DataFrame library with pandas' interface, and **cuML** a GPU machine-learning
# library with scikit-learn's. Both can *accelerate unchanged code*: start Python with
#
# ```bash
# python -m cudf.pandas my_script.py     # pandas calls run on the GPU where cuDF supports them
# python -m cuml.accel  my_script.py     # scikit-learn estimators run on the GPU where cuML has them
# ```
#
# and whatever is not supported falls back to the CPU, quietly. They need an NVIDIA GPU and Linux
# (or Windows with WSL2). Here are two small course scripts, plain pandas and plain scikit-learn. Each
# runs in a fresh Python on the CPU, and on the GPU when this machine has one and the packages.

# %%
#| label: pandas-script
print(inspect.getsource(gpu.daily_extremes).split('"""', 2)[2].strip("\n"))

# %% [markdown]
# Each RAPIDS run is a separate process that sets up its own GPU memory pool. CuPy keeps the memory
# this lab freed in *its* pool, for reuse, so we hand the unused part back to the GPU first.

# %%
#| label: free-gpu-pool
if ON_GPU:
    pool = cupy.get_default_memory_pool()
    held = pool.total_bytes()
    pool.free_all_blocks()  # unused blocks only: field_dev stays for the exercises
    cupy.get_default_pinned_memory_pool().free_all_blocks()
    print(f"CuPy's pool: {held / 2**20:.0f} MiB before, {pool.total_bytes() / 2**20:.0f} MiB after "
          f"({pool.used_bytes() / 2**20:.0f} MiB in use by this lab's arrays)")
else:
    print(f"{NO_GPU}: no GPU memory to free")

# %%
#| label: cudf-pandas
def accelerated(name, months=None):
    """Run a course script on the CPU, then under its accelerator when possible; rows for a table."""
    cpu_run = gpu.run_script(name, months=months)
    accel = gpu.ACCELERATORS[name]
    lib = {"pandas": "cudf", "sklearn": "cuml"}[name]
    rows = [{"run": "CPU", "started as": "python …",
             "work": f"{cpu_run['seconds']:.2f} s" if "seconds" in cpu_run else cpu_run.get("error", ""),
             "whole process": f"{cpu_run['wall_s']:.1f} s" if "wall_s" in cpu_run else ""}]
    gpu_run = None
    if ON_GPU and found[lib]:
        gpu_run = gpu.run_script(name, accel, months=months)
        if "error" in gpu_run:
            gpu_errors.append(f"{accel}: {gpu_run['error']}")
        rows.append({"run": "GPU", "started as": f"python -m {accel} …",
                     "work": f"{gpu_run['seconds']:.2f} s" if "seconds" in gpu_run else gpu_run["error"][:80],
                     "whole process": f"{gpu_run['wall_s']:.1f} s" if "wall_s" in gpu_run else ""})
    else:
        why = NO_GPU if not ON_GPU else f"{lib} is not installed (requirements-gpu.txt)"
        rows.append({"run": "GPU", "started as": f"python -m {accel} …", "work": why, "whole process": ""})
    return cpu_run, gpu_run, rows


pandas_cpu, pandas_gpu, rows = accelerated("pandas")
course.table(rows)
print("… =", gpu.command("pandas").split(" ", 1)[1])
print(HARDWARE)

# %%
#| label: pandas-bands
if "bands" in pandas_cpu:
    course.table([{"latitude band": f"{b['band']}° to {b['band'] + 30}°", "land days": b["days"],
                   "mean °C": f"{b['mean_c']:.1f}", "daily range °C": f"{b['daily_range_c']:.1f}",
                   "days above 30 °C": b["hot_days"]} for b in pandas_cpu["bands"]], align="lrrrr")
print(f"from {pandas_cpu.get('rows', 0):,} rows: every land point at every time step of {pandas_cpu.get('months')} months")

# %%
#| label: cuml-accel
sklearn_cpu, sklearn_gpu, rows = accelerated("sklearn")
course.table(rows)
print("… =", gpu.command("sklearn").split(" ", 1)[1])
if "explained" in sklearn_cpu:
    print(f"{sklearn_cpu['samples']:,} samples × 5 variables · PCA explains "
          f"{', '.join(f'{v:.3f}' for v in sklearn_cpu['explained'])} of the variance")
    print(f"k-means clusters of {', '.join(str(s) for s in sklearn_cpu['sizes'])} samples")
print(HARDWARE)

# %% [markdown]
# "Work" is the pandas or scikit-learn part alone; "whole process" adds starting Python, importing
# the libraries (cuDF and cuML take seconds to import and to set up the GPU) and reading the files.
# On a small dataset the fixed costs can swallow the gain; try `COURSE_SIZE=workshop`. Not every
# operation is accelerated: `python -m cudf.pandas` can print a profile of what ran where
# (`python -m cudf.pandas --profile script.py`).

# %% [markdown]
# ### Exercise 4: what did the accelerator accelerate? (5 min)
# On a GPU machine run `python -m cudf.pandas --profile labs/course/gpu.py pandas` from the repository
# root. Which operations ran on the GPU and which fell back to the CPU? Without a GPU: in the
# `cudf-pandas` table, what fraction of the whole process is the pandas work? What does that predict for
# the largest speed-up an accelerator could give the whole script (Amdahl's law, episode 01)?
#
# <details><summary>Solution</summary>
#
# The profile lists each pandas call with its GPU and CPU time; `groupby(...).agg` with built-in
# aggregations, `nlargest` and the arithmetic run on the GPU, while e.g. `iterrows` falls back to the
# CPU. If the work is a fraction `p` of the whole process, accelerating it infinitely leaves `1 − p`:
# the speed-up of the whole script is at most `1 / (1 − p)`. Start-up, imports and reading the files
# are in `1 − p`.
# </details>

# %% [markdown]
# ## 6. What this machine measured *(core)*
#
# One table for the slides, with the GPU column filled in only where a GPU measured it. Where the course
# has figures recorded on a GPU machine (`labs/course/gpu_reference.json`), they stand in a column of
# their own, headed with that GPU and the date: figures from another machine, for comparison, never
# mixed with this one's.

# %%
#| label: summary
def gpu_cell(value):
    return value if value else NO_GPU


def seconds(run):
    return f"{run['seconds']:.2f} s" if run and "seconds" in run else None


def both(a, b, unit):
    return f"{a:.1f} / {b:.1f} {unit}" if a and b else None


summary_rows = [
    {"measurement": "memory bandwidth (copy)", "CPU": f"{host_bw_all:.1f} GB/s ({CORES} cores; {host_bw:.1f} on 1)",
     "GPU": gpu_cell(f"{device_bw:.0f} GB/s" + (f" ({device_bw / peak_bw:.0%} of {peak_bw:.0f})" if peak_bw else "")
                     if device_bw else None)},
    {"measurement": "host → device, pageable / pinned", "CPU": "", "GPU": gpu_cell(both(h2d_bw, h2d_pinned_bw, "GB/s"))},
    {"measurement": "device → host, pageable / pinned", "CPU": "", "GPU": gpu_cell(both(d2h_bw, d2h_pinned_bw, "GB/s"))},
    {"measurement": "time mean of t2m, in memory", "CPU": f"{cpu_mean_s:.4f} s ({CORES} cores; {cpu_one_s:.4f} on 1)",
     "GPU": gpu_cell(gpu_mean_s and f"{gpu_mean_s:.4f} s")},
    {"measurement": "π: NumPy, CuPy (darts/s)", "CPU": f"{rates['NumPy (CPU, 1 core)']:.2e} (1 core)",
     "GPU": gpu_cell(f"{rates['CuPy (GPU)']:.2e}" if "CuPy (GPU)" in rates else None)},
    {"measurement": "π: prange, CUDA kernel (darts/s)", "CPU": f"{rates[f'Numba prange (CPU, {CORES} cores)']:.2e} ({CORES} cores)",
     "GPU": gpu_cell(f"{rates['Numba CUDA kernel (GPU)']:.2e}" if "Numba CUDA kernel (GPU)" in rates else None)},
    {"measurement": "Xarray dataset mean (warm)", "CPU": f"{xr_cpu_s:.2f} s", "GPU": gpu_cell(xr_gpu_s and f"{xr_gpu_s:.2f} s")},
    {"measurement": "pandas script (work)", "CPU": seconds(pandas_cpu) or "failed", "GPU": gpu_cell(seconds(pandas_gpu))},
    {"measurement": "scikit-learn script (work)", "CPU": seconds(sklearn_cpu) or "failed", "GPU": gpu_cell(seconds(sklearn_gpu))},
]
reference = gpu.reference()  # figures recorded on a GPU machine, or None
shown = [{"measurement": r["measurement"], "CPU here": r["CPU"], "GPU here": r["GPU"]} for r in summary_rows]
if reference:
    label = gpu.reference_label(reference)
    for row in shown:
        row[label] = reference["rows"].get(row["measurement"], {}).get("GPU", "not recorded")
course.table(shown)
if reference:
    print(f"Last column NOT measured here: {reference['hardware']}, COURSE_SIZE={reference['size']}")
LOAD = bench.load()
gpu.write_summary(course.BUILD / "gpu_summary.json", summary_rows, found, f"{HARDWARE} · {LOAD}", course.size())
print(HARDWARE)
print(LOAD)

# %% [markdown]
# ## Key points
# - GPUs have thousands of simple cores and memory several times faster than a CPU's; most array
#   work is memory-bound, so memory bandwidth (against the CPU on all its cores) sets the speed-up.
# - Every byte crosses the PCIe bus first: move data once, compute much, return small results. Pinned
#   memory crosses faster; `cupy.asarray` stages through CuPy's pinned pool. Time GPU code after a
#   warm-up, with a synchronise, or with `cupyx.profiler.benchmark`.
# - `xp = cupy` or `numpy`: CuPy copies NumPy; `get_array_module` and NEP 18 let one function serve
#   both; `cupy.fuse` turns a whole expression into one kernel.
# - Numba `@cuda.jit` kernels: threads in blocks in a grid, a bounds check or a grid-stride loop,
#   atomics for totals; the CUDA simulator (`NUMBA_ENABLE_CUDASIM=1`, set before importing) tests them
#   without a GPU, but accepts Python that the GPU compiler rejects.
# - Dask chunks can be CuPy arrays (`array.backend`, `map_blocks(cupy.asarray)`); `dask_cuda` starts one
#   worker per GPU; `memory_limit` watches host RAM only. Reading files stays on the CPU.
# - `python -m cudf.pandas` and `python -m cuml.accel` run unchanged pandas and scikit-learn code on
#   the GPU; measure the whole process, not only the accelerated part.

# %% [markdown]
# ## Checks
# Run by `pytest labs/11_gpus.py`; the slides never show this cell.

# %% tags=["checks"]
def test_kernel_counts_exactly_like_the_cpu():
    # In the simulator without a GPU, on the device with one: the same darts, the same hits.
    assert first_hits == first_expected, (first_hits, first_expected)
    assert set(small_counts.values()) == {expected_small}, (small_counts, expected_small)
    assert SIMULATOR == (not KERNELS_ON_GPU)
    if kernel_exact is not None:
        assert kernel_exact[0] == kernel_exact[1]


def test_pi_estimates_agree_within_statistics():
    runs = [(pi_cpu, n_cpu), (pi_dask, 2**22), (pi_dask_chunks, n_dask), (4 * prange_hits / (n_per * chunks), n_per * chunks)]
    for estimate, n in runs:
        assert abs(estimate - np.pi) < 6 * pi.stderr(n), (estimate, n)
    if pi_gpu is not None:
        assert abs(pi_gpu - np.pi) < 6 * pi.stderr(n_gpu)


def test_field_reductions_agree():
    np.testing.assert_allclose(cpu_mean_all, cpu_mean, rtol=1e-12)  # threads: the same sums, in bands
    assert 0 < n_hot < field.size
    if n_hot_gpu is not None:
        assert n_hot_gpu == n_hot
    if gm_gpu is not None:
        assert abs(gm_gpu - gm_cpu) < 1e-6 * abs(gm_cpu)
    if gpu_mean is not None:
        np.testing.assert_allclose(cupy.asnumpy(gpu_mean), cpu_mean, rtol=1e-9)
    assert 180 < gm_cpu < 330  # kelvin


def test_dataset_mean_same_on_both_paths():
    assert mean_dev is not None, "the mean on device chunks did not run"
    for v in time_vars:
        np.testing.assert_allclose(mean_dev[v].values, mean_cpu[v].values, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert client.status == "closed" and not left_running, left_running


def test_course_scripts_ran_and_agree():
    assert "error" not in pandas_cpu and "error" not in sklearn_cpu, (pandas_cpu.get("error"), sklearn_cpu.get("error"))
    assert sum(b["days"] for b in pandas_cpu["bands"]) > 0
    assert abs(sum(sklearn_cpu["explained"]) - 1) < 1 and sum(sklearn_cpu["sizes"]) == sklearn_cpu["samples"]
    if pandas_gpu and "bands" in pandas_gpu:
        for a, b in zip(pandas_cpu["bands"], pandas_gpu["bands"]):
            assert (a["band"], a["days"], a["hot_days"]) == (b["band"], b["days"], b["hot_days"])
            assert abs(a["mean_c"] - b["mean_c"]) < 1e-3
    if sklearn_gpu and "explained" in sklearn_gpu:
        np.testing.assert_allclose(sklearn_gpu["explained"], sklearn_cpu["explained"], atol=1e-3)


def test_simulator_switch_stays_in_this_process():
    # Dask workers and the RAPIDS scripts run real CUDA where there is a GPU: they must not inherit it.
    assert "NUMBA_ENABLE_CUDASIM" not in os.environ
    assert set(worker_switch.values()) == {None}, worker_switch
    assert pandas_cpu.get("simulator_variable") is None and sklearn_cpu.get("simulator_variable") is None


def test_no_gpu_is_said_plainly():
    rows = [r["GPU"] for r in summary_rows]
    assert [r["measurement"] for r in summary_rows] == gpu.SUMMARY_ROWS  # the reference file's row names
    if ON_GPU:
        assert not gpu_errors, "GPU paths failed: " + "; ".join(gpu_errors)
        assert NO_GPU not in rows[0] and NO_GPU not in rows[4]
    else:
        assert all(r == NO_GPU for r in rows), rows
        assert "WITHOUT a GPU" in NOTICE and "requirements-gpu.txt" in NOTICE


def test_reference_figures_are_labelled_and_kept_apart():
    if reference is None:
        return  # no figures recorded on a GPU machine yet
    assert set(reference["rows"]) == set(gpu.SUMMARY_ROWS)
    assert all(set(row) == {"measurement", "CPU here", "GPU here", gpu.reference_label(reference)} for row in shown)


course.run_checks(globals())
