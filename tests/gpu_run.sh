#!/usr/bin/env bash
# Episode 11's prepared GPU run: lab 11 as a script, then the benchmark's GPU rows, on a machine with an
# NVIDIA GPU whose Python already has CuPy and numba-cuda (any CUDA 12 or 13 build), in under 8 minutes.
#
#   bash tests/gpu_run.sh --prepare   where pip works (this repository's venv): fetch the few missing
#                                     wheels into .whl/ (ignored by git) for Python 3.12 on Linux x86-64,
#                                     and make the small dataset data/era5/$COURSE_SIZE to take along
#   bash tests/gpu_run.sh             on the GPU machine (no network needed): install .whl/ into
#                                     /tmp/site if it is there, run, and write under $OUT (default
#                                     _build/gpu_run/): gpu_run.log, benchmark.md, benchmark.json and,
#                                     when the lab ran on a GPU, gpu_reference.json
#
# What the run needs beyond such a Python: Dask and distributed (with partd, locket, tblib, tornado, zict)
# and netCDF4 (with cftime). Nothing else is fetched. cuDF and cuML are skipped there: their native
# libraries do not travel (libcudf-cu12 26.10.2 alone is a 636 MiB wheel, libcuml-cu12 94 MiB and
# libcuvs-cu12 375 MiB, read from PyPI on 2026-12-02), and the lab then says "cudf is not installed".
# Commit gpu_reference.json as labs/course/gpu_reference.json: the lab and deck 11 show its rows in a
# column of their own; tests/test_gpu.py checks that its rows are the lab's.
set -uo pipefail
cd "$(dirname "$0")/.."
SIZE=${COURSE_SIZE:-30MB}  # 3 months of the small grid: fits, with the wheels, in a 64 MiB carry
PY=${PYTHON:-python3}
WHEELS=(dask distributed partd locket tblib tornado zict netCDF4 cftime)

if [ "${1:-}" = "--prepare" ]; then
  rm -rf .whl && mkdir -p .whl
  pins=$("$PY" - "${WHEELS[@]}" <<'PY'
import importlib.metadata as md, sys
print(" ".join(f"{name}=={md.version(name)}" for name in sys.argv[1:]))  # the versions tested here
PY
) || { echo "prepare: this Python lacks one of ${WHEELS[*]}"; exit 1; }
  echo "== fetching $pins"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d .whl $pins || exit 1
  COURSE_SIZE=$SIZE "$PY" data/era5_like.py --size "$SIZE" || exit 1
  du -sh .whl "data/era5/$SIZE"
  echo "== ready: run   bash tests/gpu_run.sh   there, carrying .whl and data/era5/$SIZE"
  exit 0
fi

OUT=${OUT:-_build/gpu_run}
mkdir -p "$OUT"

run() {
started=$(date +%s)
echo "== episode 11 GPU run, $(date -u '+%Y-%m-%d %H:%M UTC'), COURSE_SIZE=$SIZE"
if compgen -G ".whl/*.whl" >/dev/null && ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] == (3, 12))'; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "installing .whl/ failed"; return 1; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
elif compgen -G ".whl/*.whl" >/dev/null; then
  echo "== .whl/ holds wheels for Python 3.12; $("$PY" -V) uses its own packages"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,pcie.link.gen.max,pcie.link.width.max --format=csv || true
"$PY" - <<'PY'
import importlib.metadata as md, importlib.util
names = ["numpy", "pandas", "xarray", "dask", "distributed", "netCDF4", "numba", "numba-cuda", "cupy-cuda12x",
         "cupy-cuda13x", "scikit-learn", "cudf-cu12", "cuml-cu12"]
def version(n):
    try:
        return md.version(n)
    except md.PackageNotFoundError:
        return "-"
print("== packages:", ", ".join(f"{n} {version(n)}" for n in names))
if importlib.util.find_spec("cudf") is None:
    print("== cuDF and cuML: skipped. Their native libraries are far larger than what this run can carry "
          "(see tests/gpu_run.sh); the lab's RAPIDS rows say so.")
PY
if ! COURSE_SIZE=$SIZE "$PY" data/era5_like.py --check "data/era5/$SIZE" >/dev/null 2>&1; then
  echo "== data/era5/$SIZE is missing or incomplete: run   bash tests/gpu_run.sh --prepare   where pip works"
  echo "   and carry data/era5/$SIZE (this machine may lack the generator's map libraries)"
  return 1
fi

export COURSE_SIZE=$SIZE MPLBACKEND=Agg PYTHONUNBUFFERED=1 COURSE_DEADLINE_S=200
echo "== lab 11 as a script"
rm -f _build/gpu_summary.json
timeout 330 "$PY" labs/11_gpus.py
lab_rc=$?
echo "== lab 11 exit code $lab_rc after $(( $(date +%s) - started )) s"
if [ -f _build/gpu_summary.json ] && ! grep -q '"gpu": "no GPU"' _build/gpu_summary.json; then
  cp _build/gpu_summary.json "$OUT/gpu_reference.json"
fi
echo "== benchmark, GPU rows"
timeout 90 "$PY" tests/benchmark.py --gpu --out "$OUT"
bench_rc=$?
echo "== done in $(( $(date +%s) - started )) s: lab exit code $lab_rc, benchmark exit code $bench_rc"
[ "$lab_rc" = 0 ] && [ "$bench_rc" = 0 ]
}

run 2>&1 | tee "$OUT/gpu_run.log"
exit "${PIPESTATUS[0]}"
