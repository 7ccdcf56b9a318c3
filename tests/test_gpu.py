"""Episode 11 without a GPU: the GPU install resolves, the simulator switch stays in the lab, and every
``@cuda.jit`` kernel of the course compiles for a real GPU target, which the CUDA simulator never checks.

* ``test_gpu_pins_resolve``: pip resolves ``-r requirements.txt -r requirements-gpu.txt`` for Linux x86-64
  (``--dry-run``: nothing is installed); skipped, with pip's own error, where the registry cannot answer.
* ``test_*simulator*``: ``NUMBA_ENABLE_CUDASIM`` never reaches the probe or a RAPIDS script (lab 11's own
  checks prove the same for its Dask workers, on its real cluster).
* ``test_every_kernel_compiles_for_a_gpu``: every ``@cuda.jit`` function under labs/ is typed and lowered
  for compute capability 9.0 (H100/H200) in a process without the simulator: to PTX through NVVM where
  a CUDA toolkit is found (libnvvm, libdevice, NVRTC), else to LLVM IR (typing and lowering alone).
  ``test_a_kernel_the_simulator_accepts_fails_the_check`` proves that this check rejects what the
  simulator runs happily.
* ``test_prepared_run_script_parses_and_benchmark_gpu_rows_run``: tests/gpu_run.sh parses, and
  ``benchmark.py --gpu`` writes its table (a row saying why, without a GPU).
* ``test_reference_file_matches_the_lab``: a committed ``labs/course/gpu_reference.json`` (figures from a
  GPU machine) has exactly the lab's summary rows; skipped while there is none.

Run by hand: ``python tests/test_gpu.py compile [FILE ...]`` prints what the compile check found.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LABS = ROOT / "labs"
sys.path.insert(0, str(LABS))

from course import gpu  # noqa: E402

# Argument types of every kernel and device function of the course, as its launches pass them.
# A new @cuda.jit function fails the compile check until it has a line here.
SIGNATURES = {
    "labs/11_gpus.py::count_inside": "void(float64[::1], float64[::1], int64[::1])",
    "labs/11_gpus.py::mix64": "uint64(uint64)",
    "labs/11_gpus.py::pi_kernel": "void(int64, uint64, int64[::1])",
    "labs/course/gpu.py::add_one": "void(float64[::1])",
}
TARGET_CC = (9, 0)  # H100 and H200; the course's prepared GPU run targets an H200


# --------------------------------------------------------------------------- 1. the install resolves

LINUX_WHEELS = ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
                *(f"--platform={p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64",
                                              "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
                                              "manylinux2014_x86_64"))]
REGISTRY_TROUBLE = re.compile(r"NewConnectionError|Failed to establish|Network is unreachable|Temporary failure in"
                              r"|Name or service not known|ConnectTimeout|ReadTimeout|timed out|ProxyError|SSLError"
                              r"|Could not fetch URL|HTTP error 5\d\d|403 Client Error|407", re.I)


def _index_url() -> str:
    out = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                         capture_output=True, text=True)
    return os.environ.get("PIP_INDEX_URL") or (out.stdout.strip() if out.returncode == 0 else "") \
        or "https://pypi.org/simple"


def test_gpu_pins_resolve(tmp_path):
    index = _index_url().rstrip("/")
    if index.startswith("http"):
        try:
            urllib.request.urlopen(f"{index}/cudf-cu12/", timeout=20).close()
        except Exception as err:
            pytest.skip(f"the package index {index} does not answer: {type(err).__name__}: {err}")
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--report", str(report), "--target", str(tmp_path / "never-written"), *LINUX_WHEELS,
           "-r", str(ROOT / "requirements.txt"), "-r", str(ROOT / "requirements-gpu.txt")]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.skip("pip did not answer within 900 s (a slow registry)")
    errors = "\n".join(line for line in out.stderr.splitlines() if "is ignored: it is neither" not in line)
    if out.returncode != 0 and REGISTRY_TROUBLE.search(errors) and "ResolutionImpossible" not in errors:
        pytest.skip("the registry could not answer: " + errors.strip().splitlines()[-1][:300])
    assert out.returncode == 0, f"pip cannot resolve requirements.txt + requirements-gpu.txt:\n{errors[-3000:]}"
    chosen = {item["metadata"]["name"].lower(): item["metadata"]["version"]
              for item in json.loads(report.read_text())["install"]}
    rapids = {name: chosen.get(name, "missing") for name in ("cudf-cu12", "cuml-cu12", "dask-cuda")}
    assert len({v.rsplit(".", 1)[0] for v in rapids.values()}) == 1, f"one RAPIDS release: {rapids}"
    assert chosen.get("numba-cuda", "").startswith("0.30."), chosen.get("numba-cuda")  # keeps the simulator
    assert "cupy-cuda12x" in chosen and "torch" in chosen, sorted(chosen)


# --------------------------------------------------------------------------- 2. no simulator leaks


def test_child_env_drops_the_simulator_switch(monkeypatch):
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    assert "NUMBA_ENABLE_CUDASIM" not in gpu.child_env()
    assert gpu.child_env()["PATH"] == os.environ["PATH"]


def test_probe_and_rapids_scripts_start_without_the_simulator(monkeypatch):
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    seen = []

    def fake_run(args, **kw):
        seen.append((args, kw.get("env")))
        return subprocess.CompletedProcess(args, 0, stdout='RESULT {"seconds": 0}\n{"gpus": []}\n', stderr="")

    monkeypatch.setattr(gpu.subprocess, "run", fake_run)
    gpu.probe()
    for name, accelerator in gpu.ACCELERATORS.items():
        gpu.run_script(name)
        gpu.run_script(name, accelerator)  # python -m cudf.pandas / cuml.accel
    assert len(seen) == 1 + 2 * len(gpu.ACCELERATORS)
    for args, env in seen:
        assert env is not None and "NUMBA_ENABLE_CUDASIM" not in env, args


# --------------------------------------------------------------------------- 3. kernels compile for a GPU


def _is_cuda_jit(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Attribute) and target.attr == "jit" and \
        isinstance(target.value, ast.Name) and target.value.id == "cuda"


def _names_used(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _bound(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    if isinstance(node, ast.FunctionDef):
        return {node.name}
    return set()


def kernels_of(path: Path) -> tuple[list[ast.FunctionDef], list[ast.stmt]]:
    """The @cuda.jit functions of a file (at any depth) and the top-level statements they need:
    the imports and assignments that bind the names they use, transitively."""
    tree = ast.parse(path.read_text(), str(path))
    kernels = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and any(map(_is_cuda_jit, n.decorator_list))]
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign))]
    needed = set().union(*(_names_used(k) for k in kernels)) if kernels else set()
    chosen: list[ast.stmt] = []
    while True:
        more = [n for n in top if n not in chosen and _bound(n) & needed]
        if not more:
            break
        chosen += more
        needed |= set().union(*(_names_used(n) for n in more))
    chosen.sort(key=lambda n: n.lineno)
    return kernels, chosen


def compile_file(path: Path, signatures: dict[str, str], cc=TARGET_CC) -> list[dict]:
    """Compile every @cuda.jit function of ``path`` for a real GPU target. Needs a process in which
    numba.cuda was imported without the simulator. Returns one dict per function: name, level
    ("ptx" or "llvm-ir"), ok, error."""
    import math

    import numpy as np
    from numba import cuda

    if cuda.to_device.__module__.startswith("numba.cuda.simulator"):
        raise RuntimeError("the compile check needs numba.cuda without the simulator")
    import numba.cuda.dispatcher
    from numba.cuda.compiler import _compile_pyfunc_with_fixup

    class TargetDevice:  # what a device function called from a kernel asks the driver for; no driver here
        compute_capability = cc

    numba.cuda.dispatcher.get_current_device = TargetDevice

    rel = path.resolve().relative_to(ROOT).as_posix() if path.resolve().is_relative_to(ROOT) else path.name
    kernels, support = kernels_of(path)
    namespace = {"__name__": f"compile_check_{path.stem}", "np": np, "cuda": cuda, "math": math}
    exec(compile(ast.Module(body=support, type_ignores=[]), str(path), "exec"), namespace)
    exec(compile(ast.Module(body=kernels, type_ignores=[]), str(path), "exec"), namespace)  # nested ones too
    results = []
    for k in kernels:
        key = f"{rel}::{k.name}"
        row = {"kernel": key, "level": None, "ok": False, "error": ""}
        results.append(row)
        if key not in signatures:
            row["error"] = f"no signature for {key}: add its argument types to SIGNATURES in tests/test_gpu.py"
            continue
        dispatcher = namespace[k.name]
        device = bool(dispatcher.targetoptions.get("device", False))
        try:
            code, _ = cuda.compile_ptx(dispatcher.py_func, signatures[key], device=device, cc=cc)
            row.update(level="ptx", ok=f".target sm_{cc[0]}{cc[1]}" in code)
            continue
        except Exception as err:
            if not _toolkit_missing(err):
                row.update(level="ptx", error=f"{type(err).__name__}: {err}")
                continue
        try:  # no CUDA toolkit here: type and lower to LLVM IR, which needs no NVVM and no driver
            lib, _ = _compile_pyfunc_with_fixup(dispatcher.py_func, signatures[key], device=device, cc=cc,
                                                abi="numba")
            row.update(level="llvm-ir", ok="define" in lib.get_llvm_str())
        except Exception as err:
            row.update(level="llvm-ir", error=f"{type(err).__name__}: {err}")
    return results


def _toolkit_missing(err: BaseException) -> bool:
    """True when compiling failed for want of CUDA's libraries (NVVM, libdevice, NVRTC), not the code."""
    text = f"{type(err).__name__}: {err}"
    return any(word in text for word in ("DynamicLibNotFound", "NvvmSupportError", "libNVVM", "libnvvm",
                                         "libdevice", "nvrtc", "NVRTC", "CudaSupportError", "cannot be found"))


def run_compile_check(*files: Path, signatures: dict[str, str] | None = None) -> list[dict]:
    """compile_file for each file, in a fresh Python without the simulator switch (``signatures``: more
    of them, for kernels outside the course)."""
    env = gpu.child_env()
    extra = ["--signatures", json.dumps(signatures)] if signatures else []
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "compile", *extra, *map(str, files)],
                         capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    lines = [line for line in out.stdout.splitlines() if line.startswith("[")]
    assert out.returncode == 0 and lines, f"the compile check did not run:\n{out.stderr[-3000:]}"
    return json.loads(lines[-1])


def course_kernel_files() -> list[Path]:
    return sorted(p for p in [*LABS.glob("*.py"), *(LABS / "course").glob("*.py")] if "cuda.jit" in p.read_text())


def test_every_kernel_compiles_for_a_gpu():
    files = course_kernel_files()
    results = run_compile_check(*files)
    found = {r["kernel"] for r in results}
    assert found == set(SIGNATURES), f"kernels found {sorted(found)}, SIGNATURES {sorted(SIGNATURES)}"
    failed = [f"{r['kernel']} ({r['level']}): {r['error'][:600]}" for r in results if not r["ok"]]
    assert not failed, "kernels that a GPU compiler rejects:\n" + "\n".join(failed)
    print("compiled for sm_90:", ", ".join(f"{r['kernel']} [{r['level']}]" for r in results))


BAD_KERNEL = '''
from numba import cuda


@cuda.jit
def total_into(a, out):
    """Runs in the simulator; a GPU has no np.sum inside a kernel, nor Python lists."""
    i = cuda.grid(1)
    if i == 0:
        out[0] = np.sum(a) + len([x for x in a])
'''


def test_a_kernel_the_simulator_accepts_fails_the_check(tmp_path):
    bad = tmp_path / "bad_kernel.py"
    bad.write_text(textwrap.dedent(BAD_KERNEL))
    # The simulator runs it and gets the right answer ...
    sim = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, runpy
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
        import numpy as np
        ns = runpy.run_path({str(bad)!r}, init_globals={{"np": np}})
        a, out = np.arange(5.0), np.zeros(1)
        ns["total_into"][1, 4](a, out)
        print("SIMULATOR", out[0])
        """)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert "SIMULATOR 15.0" in sim.stdout, sim.stderr[-2000:]
    # ... and the compile check rejects it.
    [result] = run_compile_check(bad, signatures={"bad_kernel.py::total_into": "void(float64[::1], float64[::1])"})
    assert not result["ok"], result
    assert "TypingError" in result["error"] or "UnsupportedError" in result["error"], result


# --------------------------------------------------------------------------- 4. the prepared GPU run


def test_prepared_run_script_parses_and_benchmark_gpu_rows_run(tmp_path):
    script = ROOT / "tests" / "gpu_run.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    run = subprocess.run([sys.executable, str(ROOT / "tests" / "benchmark.py"), "--gpu", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    rows = json.loads((tmp_path / "benchmark.json").read_text())["rows"]
    assert rows and all(r["section"] == "Machine limits" for r in rows)
    assert all(r["value"] is not None or r["note"] for r in rows), rows  # a figure, or why not


# --------------------------------------------------------------------------- 5. reference figures


def test_reference_file_matches_the_lab():
    ref = gpu.reference()
    if ref is None:
        pytest.skip(f"no {gpu.REFERENCE_FILE.name}: no figures from a GPU machine committed yet")
    assert {"gpu", "date", "hardware", "size", "versions", "rows"} <= set(ref)
    assert list(ref["rows"]) == gpu.SUMMARY_ROWS, (
        "gpu_reference.json is stale: its rows are not the lab's summary rows; rerun tests/gpu_run.sh on a GPU")
    assert ref["gpu"] != "no GPU" and re.fullmatch(r"\d{4}-\d\d-\d\d", ref["date"])


def test_reference_format_round_trips(tmp_path):
    rows = [{"measurement": name, "CPU": "1", "GPU": "2"} for name in gpu.SUMMARY_ROWS]
    path = tmp_path / "gpu_reference.json"
    gpu.write_summary(path, rows, {"gpus": ["Some GPU"]}, "hardware text", "small")
    ref = gpu.reference(path)
    assert list(ref["rows"]) == gpu.SUMMARY_ROWS and gpu.reference_label(ref).startswith("recorded on Some GPU, ")


if __name__ == "__main__":
    if sys.argv[1:2] == ["compile"]:
        args, known = sys.argv[2:], dict(SIGNATURES)
        if args[:1] == ["--signatures"]:
            known.update(json.loads(args[1]))
            args = args[2:]
        paths = [Path(p) for p in args] or course_kernel_files()
        print(json.dumps([r for p in paths for r in compile_file(p, known)]))
    else:
        print(__doc__)
