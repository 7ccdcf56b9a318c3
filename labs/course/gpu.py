"""GPUs for episode 11: find one, say plainly when there is none, and two course scripts that run
unchanged under ``python -m cudf.pandas`` and ``python -m cuml.accel``.

* ``probe()``          what this machine offers (an NVIDIA driver and GPU, CuPy, Numba's CUDA target,
  cuDF, cuML), found in a separate Python process so that a broken CUDA installation can never crash
  the lab. Never raises.
* ``status_rows(p)``   the probe as rows for ``course.table``.
* ``HOW_TO_GET_GPU``   one sentence: how to get the GPU figures on a machine that has none.
* ``peak_bandwidth(cupy)``  the card's theoretical memory bandwidth, from its properties
  (memory clock × bus width × 2 for double data rate), not from a table of cards.
* ``run_script(name, accelerator)``  runs one of the two scripts below in a fresh Python, with a
  deadline, optionally under an accelerator (``cudf.pandas`` or ``cuml.accel``); returns its results.
* ``daily_extremes()`` (pandas) and ``climate_clusters()`` (scikit-learn): the two scripts.
* ``child_env()``      this process's environment without ``NUMBA_ENABLE_CUDASIM``: what every process the
  lab starts (the probe, the two scripts, Dask workers) gets, so the simulator stays in the lab.
* ``SUMMARY_ROWS``, ``reference()``, ``reference_label()``, ``write_summary()``: the lab's summary rows,
  and figures recorded on a GPU machine (``gpu_reference.json`` beside this file, when it exists),
  shown in a column of their own, never mixed with this machine's.

Run as a script:

    python labs/course/gpu.py probe                     # the probe, as JSON
    python labs/course/gpu.py pandas [MONTHS]           # the pandas script on the course's dataset
    python -m cudf.pandas labs/course/gpu.py pandas     # the same script, pandas on the GPU
    python labs/course/gpu.py sklearn [MONTHS]          # the scikit-learn script
    python -m cuml.accel labs/course/gpu.py sklearn     # the same script, scikit-learn on the GPU

Set ``COURSE_GPU=cpu`` to make the probe report no GPU even where there is one: the lab then shows
its CPU fallback (useful to preview what learners without a GPU will see).
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

LABS = Path(__file__).resolve().parents[1]
ROOT = LABS.parent

HOW_TO_GET_GPU = ("1. a machine with an NVIDIA GPU (HPC: a GPU node, e.g. `--gres=gpu:1`; or a cloud notebook);\n"
                  "2. the GPU packages: `pixi run -e gpu lab 11_gpus`, or in a fresh venv PyTorch's CPU build, then "
                  "`pip install -r requirements.txt -r requirements-gpu.txt` (README, \"GPU lab\");\n"
                  "3. rerun this lab there.")


SIMULATOR_VARIABLE = "NUMBA_ENABLE_CUDASIM"


def child_env() -> dict:
    """This process's environment without the simulator switch, for every process the lab starts: a
    RAPIDS script or a Dask worker that inherited ``NUMBA_ENABLE_CUDASIM=1`` would run its Numba CUDA
    code in the simulator, or fail, on a machine with a GPU."""
    env = dict(os.environ)
    env.pop(SIMULATOR_VARIABLE, None)
    return env


def forced_cpu() -> bool:
    """True when ``$COURSE_GPU`` asks for the CPU path (``cpu``, ``off``, ``0`` or ``no``)."""
    return os.environ.get("COURSE_GPU", "").strip().lower() in {"cpu", "off", "0", "no", "none"}


def _version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


# --------------------------------------------------------------------------- finding a GPU


def driver_gpus() -> tuple[list[str], str]:
    """Names of the NVIDIA GPUs the driver reports, and a note. Asks the driver library directly
    (``libcuda`` / ``nvcuda.dll``) with ctypes, so it needs no Python GPU package at all."""
    libs = {"Linux": ["libcuda.so.1", "libcuda.so"], "Windows": ["nvcuda.dll"]}.get(platform.system(), [])
    if not libs:
        return [], f"no NVIDIA driver on {platform.system()} (CUDA needs Linux or Windows)"
    for name in libs:
        try:
            cuda = ctypes.CDLL(name)
        except OSError:
            continue
        rc = cuda.cuInit(0)
        if rc != 0:
            return [], f"an NVIDIA driver is installed, but it found no usable GPU (cuInit error {rc})"
        count = ctypes.c_int(0)
        cuda.cuDeviceGetCount(ctypes.byref(count))
        names = []
        for i in range(count.value):
            dev, buf = ctypes.c_int(0), ctypes.create_string_buffer(256)
            cuda.cuDeviceGet(ctypes.byref(dev), i)
            cuda.cuDeviceGetName(buf, 256, dev)
            names.append(buf.value.decode(errors="replace"))
        return names, f"{len(names)} GPU(s) reported by the NVIDIA driver"
    return [], "no NVIDIA driver (libcuda) found"


def _probe_here() -> dict:
    """The probe itself; runs in its own process (``python labs/course/gpu.py probe``)."""
    found = {"gpus": [], "driver": "", "cupy": _version("cupy", "cupy-cuda12x", "cupy-cuda13x", "cupy-cuda11x"),
             "cupy_ok": False, "cupy_note": "", "numba_cuda": _version("numba-cuda"), "numba_cuda_ok": False,
             "numba_cuda_note": "", "cudf": _version("cudf-cu12", "cudf-cu13", "cudf"),
             "cuml": _version("cuml-cu12", "cuml-cu13", "cuml"), "forced_cpu": forced_cpu()}
    if found["forced_cpu"]:
        found["driver"] = "GPU switched off by COURSE_GPU=cpu"
        return found
    found["gpus"], found["driver"] = driver_gpus()
    if not found["gpus"]:
        return found
    if importlib.util.find_spec("cupy") is None:
        found["cupy_note"] = "CuPy is not installed"
    else:
        try:
            import cupy

            found["cupy_ok"] = int(cupy.arange(10).sum()) == 45  # a real kernel on the device
            found["cupy"] = found["cupy"] or cupy.__version__
        except Exception as err:  # a CUDA runtime that does not match the driver, ...
            found["cupy_note"] = f"CuPy could not use the GPU: {type(err).__name__}: {str(err)[:160]}"
    if importlib.util.find_spec("numba") is None:
        found["numba_cuda_note"] = "Numba is not installed"
    else:
        try:
            import numpy as np
            from numba import cuda

            @cuda.jit
            def add_one(a):
                i = cuda.grid(1)
                if i < a.size:
                    a[i] += 1

            a = cuda.to_device(np.zeros(64))
            add_one[2, 32](a)
            found["numba_cuda_ok"] = float(a.copy_to_host().sum()) == 64.0  # compiled, launched, copied back
        except Exception as err:  # no NVVM, no CUDA toolkit libraries, ...
            found["numba_cuda_note"] = f"Numba could not compile for the GPU: {type(err).__name__}: {str(err)[:160]}"
    return found


def probe(timeout: float = 240) -> dict:
    """What this machine offers for the GPU episode, found in a separate process. Never raises."""
    env = child_env()  # we want to know about the real GPU
    try:
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "probe"], capture_output=True,
                             text=True, timeout=timeout, env=env, cwd=ROOT)
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if out.returncode == 0 and lines:
            return json.loads(lines[-1])
        problem = (out.stderr.strip().splitlines() or ["no output"])[-1][:200]
    except subprocess.TimeoutExpired:
        problem = f"the GPU probe did not finish within {timeout:.0f} s"
    return {"gpus": [], "driver": f"the GPU probe failed ({problem}); using the CPU", "cupy": None, "cupy_ok": False,
            "cupy_note": "", "numba_cuda": _version("numba-cuda"), "numba_cuda_ok": False, "numba_cuda_note": "",
            "cudf": None, "cuml": None, "forced_cpu": forced_cpu()}


def status_rows(p: dict) -> list[dict]:
    """The probe as table rows: what, found, what the lab does with it."""
    gpu = ", ".join(p["gpus"]) if p["gpus"] else "none"
    cpu_path = "the lab uses the CPU path"
    accel = "GPU" if p["gpus"] else "a GPU"
    return [
        {"piece": "NVIDIA GPU", "found": gpu, "what the lab does": p["driver"] if not p["gpus"] else "measures it"},
        {"piece": "CuPy (NumPy on the GPU)", "found": p["cupy"] or "not installed",
         "what the lab does": "xp = cupy" if p["cupy_ok"] else f"xp = numpy: {p['cupy_note'] or cpu_path}"},
        {"piece": "Numba CUDA target", "found": p["numba_cuda"] or ("built into numba" if importlib.util.find_spec("numba") else "not installed"),
         "what the lab does": "kernels run on the GPU" if p["numba_cuda_ok"]
         else "kernels run in the CUDA simulator (correct, slow, not timed)"},
        {"piece": "cuDF (pandas on the GPU)", "found": p["cudf"] or "not installed",
         "what the lab does": "python -m cudf.pandas" if p["cudf"] and p["cupy_ok"] else f"plain pandas; needs {accel} and cudf-cu12"},
        {"piece": "cuML (scikit-learn on the GPU)", "found": p["cuml"] or "not installed",
         "what the lab does": "python -m cuml.accel" if p["cuml"] and p["cupy_ok"] else f"plain scikit-learn; needs {accel} and cuml-cu12"},
    ]


def peak_bandwidth(cupy, device: int = 0) -> float | None:
    """Theoretical memory bandwidth of GPU ``device`` in bytes/s: 2 (double data rate) × memory clock ×
    bus width. Read from the device's own properties; None where the runtime does not report them."""
    rt = cupy.cuda.runtime
    clock_khz = bus_bits = None
    try:
        props = rt.getDeviceProperties(device)
        clock_khz, bus_bits = props.get("memoryClockRate"), props.get("memoryBusWidth")
    except Exception:
        pass
    if not clock_khz or not bus_bits:
        try:  # cudaDevAttrMemoryClockRate = 36 (kHz), cudaDevAttrGlobalMemoryBusWidth = 37 (bits)
            clock_khz, bus_bits = rt.deviceGetAttribute(36, device), rt.deviceGetAttribute(37, device)
        except Exception:
            return None
    if not clock_khz or not bus_bits:
        return None
    return 2.0 * clock_khz * 1e3 * bus_bits / 8


# --------------------------------------------------------------------------- reference figures

# The rows of the lab's summary table, in order. A reference file must have exactly these rows.
SUMMARY_ROWS = [
    "memory bandwidth (copy)",
    "host → device, pageable / pinned",
    "device → host, pageable / pinned",
    "time mean of t2m, in memory",
    "π: NumPy, CuPy (darts/s)",
    "π: prange, CUDA kernel (darts/s)",
    "Xarray dataset mean (warm)",
    "pandas script (work)",
    "scikit-learn script (work)",
]
REFERENCE_FILE = Path(__file__).resolve().with_name("gpu_reference.json")


def reference(path: Path = REFERENCE_FILE) -> dict | None:
    """The figures recorded on a GPU machine (``gpu_reference.json``), or None where there is no file.

    Format: ``{"gpu": name, "date": "YYYY-MM-DD", "hardware": course.hardware() there, "size": COURSE_SIZE,
    "versions": {package: version}, "rows": {row name: {"CPU": text, "GPU": text}}}``."""
    if not Path(path).exists():
        return None
    return json.loads(Path(path).read_text())


def reference_label(ref: dict) -> str:
    """The column heading for reference figures: where and when they were recorded."""
    return f"recorded on {ref['gpu']}, {ref['date']}"


def write_summary(path: Path, rows: list[dict], found: dict, hardware: str, size: str) -> dict:
    """Write the lab's summary as a reference-file candidate (the format of ``reference()``); returns it.
    Only figures measured in this run: the prepared GPU run copies it next to this module."""
    import datetime

    summary = {"gpu": found["gpus"][0] if found["gpus"] else "no GPU",
               "date": datetime.date.today().isoformat(), "hardware": hardware, "size": size,
               "versions": {name: _version(name) for name in
                            ("numpy", "cupy-cuda12x", "cupy-cuda13x", "numba", "numba-cuda", "dask", "xarray",
                             "cudf-cu12", "cuml-cu12")},
               "rows": {r["measurement"]: {"CPU": r["CPU"], "GPU": r["GPU"]} for r in rows}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    return summary


# --------------------------------------------------------------------------- the two course scripts


def _months_of_data(months: int, names: tuple[str, ...]):
    """The first ``months`` monthly files of the course dataset, read with netCDF4 (no pandas, no xarray,
    so that an accelerator loaded before the script sees pandas imported for the first time by it).

    Returns (times as datetime64[s], latitude, longitude, static fields {lsm, z}, {name: (time, lat, lon)})."""
    import netCDF4
    import numpy as np

    sys.path.insert(0, str(LABS))
    import course

    files = sorted(course.dataset().glob("era5_*.nc"))[:months]
    times, fields = [], {n: [] for n in names}
    for f in files:
        with netCDF4.Dataset(f) as nc:
            t = nc.variables["time"]
            unit, ref = t.units.split(" since ")
            step = {"hours": "h", "days": "D", "minutes": "m", "seconds": "s"}[unit.strip()]
            start = np.datetime64(ref.strip().replace(" ", "T")[:19], "s")
            times.append(start + t[:].astype("int64").astype(f"timedelta64[{step}]"))
            for n in names:
                fields[n].append(np.ma.filled(nc.variables[n][:].astype("float32"), np.nan))
            lat, lon = nc.variables["latitude"][:].data, nc.variables["longitude"][:].data
            static = {s: np.ma.filled(nc.variables[s][:], np.nan) for s in ("lsm", "z")}
    return (np.concatenate(times), lat, lon, static, {n: np.concatenate(v) for n, v in fields.items()})


def daily_extremes(months: int = 12) -> dict:
    """The pandas script: daily maximum, minimum and rain at every land point, summarised by latitude band.

    Plain pandas, nothing GPU-specific: ``python -m cudf.pandas`` runs it on the GPU unchanged."""
    import numpy as np
    import pandas as pd

    times, lat, lon, static, f = _months_of_data(months, ("t2m", "tp"))
    lat2d, lon2d = np.meshgrid(lat, lon, indexing="ij")
    land = static["lsm"] >= 0.5
    steps, points = len(times), int(land.sum())
    df = pd.DataFrame({
        "time": np.repeat(times, points),
        "lat": np.tile(lat2d[land], steps),
        "lon": np.tile(lon2d[land], steps),
        "t2m": f["t2m"][:, land].ravel() - 273.15,  # °C
        "tp": f["tp"][:, land].ravel() * 1000.0,     # mm
    })
    start = time.perf_counter()
    df["day"] = df["time"].dt.floor("D")
    daily = df.groupby(["lat", "lon", "day"]).agg(tmax=("t2m", "max"), tmin=("t2m", "min"),
                                                 tmean=("t2m", "mean"), rain=("tp", "sum")).reset_index()
    daily["range"] = daily["tmax"] - daily["tmin"]
    daily["hot"] = daily["tmax"] > 30.0
    daily["band"] = (daily["lat"] // 30 * 30).astype("int64")
    bands = daily.groupby("band").agg(days=("tmean", "size"), mean_c=("tmean", "mean"),
                                      daily_range_c=("range", "mean"), hot_days=("hot", "sum"),
                                      rain_mm=("rain", "mean")).sort_index()
    hottest = daily.nlargest(3, "tmax")
    seconds = time.perf_counter() - start
    return {"script": "pandas", "rows": int(len(df)), "months": months, "seconds": seconds,
            "pandas": type(df).__module__,
            "bands": [{"band": int(b), "days": int(r["days"]), "mean_c": float(r["mean_c"]),
                       "daily_range_c": float(r["daily_range_c"]), "hot_days": int(r["hot_days"]),
                       "rain_mm": float(r["rain_mm"])} for b, r in bands.iterrows()],
            "hottest_c": [float(v) for v in hottest["tmax"]]}


def climate_clusters(months: int = 3, max_samples: int = 1_500_000) -> dict:
    """The scikit-learn script: standardise five weather variables, project them on three principal
    components (PCA) and group them into six clusters (k-means).

    Plain scikit-learn: ``python -m cuml.accel`` runs the PCA and the k-means on the GPU unchanged."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    times, lat, lon, static, f = _months_of_data(months, ("t2m", "tp", "u10", "v10"))
    steps = len(times)
    X = np.stack([f["t2m"].ravel() - 273.15, np.hypot(f["u10"], f["v10"]).ravel(), f["tp"].ravel() * 1000.0,
                  np.broadcast_to(static["z"] / 9806.65, f["t2m"].shape).ravel(),  # height in km
                  np.broadcast_to(static["lsm"], f["t2m"].shape).ravel()], axis=1)
    X = X[~np.isnan(X).any(axis=1)]
    X = X[:: max(1, -(-len(X) // max_samples))]  # every k-th sample: the same subset on every machine
    start = time.perf_counter()
    Z = StandardScaler().fit_transform(X)
    pca = PCA(n_components=3, random_state=0).fit(Z)
    km = KMeans(n_clusters=6, n_init=1, max_iter=100, random_state=0).fit(pca.transform(Z))
    seconds = time.perf_counter() - start
    sizes = np.bincount(np.asarray(km.labels_, dtype="int64"), minlength=6)
    return {"script": "sklearn", "samples": int(len(X)), "months": months, "steps": steps, "seconds": seconds,
            "explained": [float(v) for v in np.asarray(pca.explained_variance_ratio_)],
            "inertia": float(km.inertia_), "sizes": sorted((int(s) for s in sizes), reverse=True),
            "kmeans": type(km).__module__}


SCRIPTS = {"pandas": daily_extremes, "sklearn": climate_clusters}
ACCELERATORS = {"pandas": "cudf.pandas", "sklearn": "cuml.accel"}


def command(name: str, accelerator: str | None = None, months: int | None = None) -> str:
    """The command line, as you would type it from the repository root."""
    words = ["python"] + (["-m", accelerator] if accelerator else []) + ["labs/course/gpu.py", name]
    return " ".join(words + ([str(months)] if months is not None else []))


def run_script(name: str, accelerator: str | None = None, months: int | None = None,
               timeout: float | None = None) -> dict:
    """Run one of the two scripts in a fresh Python (under ``python -m <accelerator>`` if given), with a
    deadline. Returns its results, ``wall_s`` (the whole process: start-up, imports, reading, work) and
    ``command``; on failure ``error`` says what happened, and nothing is raised."""
    timeout = timeout if timeout is not None else float(os.environ.get("COURSE_DEADLINE_S", 600))
    args = [sys.executable] + (["-m", accelerator] if accelerator else [])
    args += [str(Path(__file__).resolve()), name] + ([str(months)] if months is not None else [])
    shown = command(name, accelerator, months)
    start = time.perf_counter()
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=child_env())
    except subprocess.TimeoutExpired:
        return {"command": shown, "error": f"did not finish within its deadline of {timeout:.0f} s "
                                           "(raise it with COURSE_DEADLINE_S=<seconds>)"}
    wall = time.perf_counter() - start
    lines = [line[len("RESULT "):] for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1][:240]
        return {"command": shown, "error": f"exited with code {out.returncode}: {last}", "wall_s": wall}
    return {**json.loads(lines[-1]), "command": shown, "wall_s": wall}


def _main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"probe", *SCRIPTS}:
        print(__doc__)
        return 2
    if argv[0] == "probe":
        print(json.dumps(_probe_here()))
        return 0
    result = SCRIPTS[argv[0]](*(int(a) for a in argv[1:]))
    result["simulator_variable"] = os.environ.get(SIMULATOR_VARIABLE)  # must be None: see child_env()
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
