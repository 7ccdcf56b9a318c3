"""pixi.toml (conda-forge) and requirements.txt (PyPI) must describe the same package set."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# PyPI name -> conda-forge name, where they differ.
PYPI_TO_CONDA = {
    "netCDF4": "netcdf4",
    "matplotlib": "matplotlib-base",
    "graphviz": "python-graphviz",
    "torch": "pytorch-cpu",  # conda-forge's metapackage for the CPU build
    "playwright": "playwright-python",
    "xgboost-cpu": "py-xgboost-cpu",
}
# conda-forge packages with no PyPI line: programs, compilers, and what PyPI extras bring in.
CONDA_ONLY = {
    "python",
    "quarto",  # PyPI has only an sdist that downloads quarto at install time
    "graphviz",  # the `dot` program (Debian: apt install graphviz)
    "parallel",  # GNU parallel (Debian: apt install parallel)
    "c-compiler",  # the system compiler, for Cython
    "cxx-compiler",  # the system C++ compiler, for pybind11
    "h5py",  # PyPI: h5netcdf[h5py]
    "flask",  # PyPI: moto[server]
    "flask-cors",  # PyPI: moto[server]
    "msmpi",  # Windows MPI; PyPI's mpich covers Linux and macOS
}


def requirements(file="requirements.txt"):
    """{name: minimum version} from requirements.txt (or requirements-gpu.txt). A line may add an upper
    bound (``>=0.30,<0.31``) and an environment marker (``; platform_system != "Darwin"``)."""
    found = {}
    for line in (ROOT / file).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(?:(==|>=)\s*([^\s,;]+))?"
                             r"(?:\s*,\s*<\s*[^\s,;]+)?\s*(?:;.+)?", line)
            assert m, f"{file}: cannot read {line!r}"
            found[m.group(1)] = m.group(3)
    return found


def pixi_dependencies():
    """{name: spec} over every dependency table of pixi.toml (default, per platform, gpu feature)."""
    manifest = tomllib.loads((ROOT / "pixi.toml").read_text())
    deps = dict(manifest["dependencies"])
    for table in manifest.get("target", {}).values():
        deps.update(table.get("dependencies", {}))
    return deps, manifest


def test_every_pypi_package_is_in_pixi():
    deps, _ = pixi_dependencies()
    missing = [name for name in requirements() if PYPI_TO_CONDA.get(name, name.lower()) not in deps]
    assert not missing, f"in requirements.txt but not in pixi.toml: {missing}"


def test_every_conda_package_is_in_requirements():
    deps, _ = pixi_dependencies()
    covered = {PYPI_TO_CONDA.get(name, name.lower()) for name in requirements()} | CONDA_ONLY
    extra = sorted(set(deps) - covered)
    assert not extra, f"in pixi.toml but not in requirements.txt (or CONDA_ONLY): {extra}"


def test_version_floors_agree():
    deps, _ = pixi_dependencies()
    differ = []
    for name, floor in requirements().items():
        spec = deps.get(PYPI_TO_CONDA.get(name, name.lower()))
        if floor and name != "torch" and isinstance(spec, str) and spec != "*":
            if f">={floor}" not in spec.replace(" ", ""):
                differ.append(f"{name}: pip >={floor}, pixi {spec}")
    assert not differ, "version floors differ:\n" + "\n".join(differ)


def test_torch_is_pinned_to_the_cpu_wheel():
    # Unpinned, pip resolves torch to a CUDA build of several GB.
    assert requirements().get("torch") == "2.13.0"


def test_pixi_has_the_course_tasks_and_gpu_environment():
    _, manifest = pixi_dependencies()
    assert {"data", "labs", "slides", "present", "lab", "test"} <= set(manifest["tasks"])
    assert manifest["tasks"]["slides"]["cmd"] == "python tests/render_decks.py"  # executes the labs itself
    gpu = manifest["feature"]["gpu"]
    assert {"cupy", "cuda-version"} <= set(gpu["dependencies"])
    assert set(gpu["platforms"]) == {"linux-64", "win-64"}
    assert "gpu" in manifest["environments"]
    assert set(manifest["workspace"]["platforms"]) == {"linux-64", "osx-64", "osx-arm64", "win-64"}


def test_tasks_and_ci_use_the_same_commands():
    """The pixi tasks call the same scripts as the pip path, so CI exercises what pixi users run."""
    _, manifest = pixi_dependencies()
    tasks = manifest["tasks"]
    assert tasks["labs"]["cmd"] == "python tests/execute_labs.py"
    assert tasks["test"]["cmd"] == "pytest"
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest" in ci and "python -m pytest" in readme


# requirements-gpu.txt (pip, on top of requirements.txt) against pixi's `gpu` feature.
GPU_PYPI_TO_CONDA = {"cupy-cuda12x": "cupy", "cudf-cu12": "cudf", "cuml-cu12": "cuml"}
GPU_CONDA_ONLY = {"cuda-version"}  # conda's CUDA pin; pip wheels carry the CUDA version in their names


def test_gpu_requirements_match_pixi_gpu_feature():
    _, manifest = pixi_dependencies()
    feature = manifest["feature"]["gpu"]
    deps = dict(feature["dependencies"])
    for table in feature.get("target", {}).values():
        deps.update(table.get("dependencies", {}))
    pip = requirements("requirements-gpu.txt")
    as_conda = {GPU_PYPI_TO_CONDA.get(name, name.lower()): floor for name, floor in pip.items()}
    assert set(as_conda) | GPU_CONDA_ONLY == set(deps), (
        f"requirements-gpu.txt {sorted(as_conda)} and pixi's gpu feature {sorted(deps)} differ")
    differ = []
    for name, floor in as_conda.items():
        spec = deps[name]["version"] if isinstance(deps[name], dict) else deps[name]
        if floor and f">={floor}" not in spec.replace(" ", ""):
            differ.append(f"{name}: pip >={floor}, pixi {spec}")
    assert not differ, "GPU version floors differ:\n" + "\n".join(differ)
