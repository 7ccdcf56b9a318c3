# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Setup check: does my environment work?
#
# **Teaching:** 15 min · **Exercises:** 10 min · run it *before* the workshop
#
# ## Objectives
# - Confirm that every package the course uses imports, at or above the version it needs.
# - Know what this machine offers: CPU cores, memory, GPU, free disk.
# - Start a Dask cluster on this machine and reach its dashboard.
# - Draw a map with coastlines and borders without any network.
#
# ## Why bother?
# Parallel Python stands on many libraries: a compiler toolchain (Numba), a scheduler (Dask), file
# formats (NetCDF, Zarr), maps (Cartopy). A workshop that starts with an install fight loses half an
# hour and half its learners. This lab finds the problem *before* the day and tells you what to do
# about it. It is also the first time you will see the one-line hardware description that sits next
# to every timing in this course: a speed-up means nothing until you know which machine made it.
#
# Run it in whichever way you will work during the course:
#
# ```bash
# python labs/00_setup.py        # as a script
# pytest labs/00_setup.py        # as the course's CI does it
# ```
#
# or open `labs/00_setup.py` in JupyterLab (right-click › *Open With* › *Jupytext Notebook*).

# %%
import importlib
import importlib.metadata as metadata
import os
import re
import shutil
import sys
import time
import urllib.request

import psutil

import course

# %% [markdown]
# ## 1. This machine *(core)*
#
# How many cores can *this process* use? On a laptop it is the number of cores; on an HPC node
# inside a batch job it is what the scheduler gave you, which may be far fewer than the node has.
# `course.hardware()` asks the operating system for the cores this process may run on.

# %%
#| label: hardware
print(course.hardware())

# %% [markdown]
# ## 2. Packages and their minimum versions *(core)*
#
# The minimum versions come from the course's `requirements.txt` (the conda `pixi.toml` lists the
# same set). A few packages are imported under another name than the one you install
# (`scikit-learn` is imported as `sklearn`); the table below maps them.

# %%
# install name -> import name, where "-" -> "_" is not enough
IMPORT_NAME = {"scikit-learn": "sklearn", "pyyaml": "yaml", "xgboost-cpu": "xgboost"}
NOT_PYTHON = {"mpich"}  # provides the `mpiexec` program, checked below with the other programs


def requirements(path=course.ROOT / "requirements.txt"):
    """(name, minimum version or None) for each line of requirements.txt."""
    found = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(==|>=)?\s*([0-9][^\s,;]*)?", line)
        found.append((m.group(1), m.group(4)))
    return found


def version_tuple(v):
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def check_package(name, minimum):
    """One row of the setup table for an installable Python package."""
    module = IMPORT_NAME.get(name, name.replace("-", "_"))
    try:
        importlib.import_module(module)
    except Exception as err:  # ImportError, or a broken binary dependency
        return (name, "problem", f"cannot import {module} ({type(err).__name__}); install it: see README")
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        return (name, "OK", "imports (version unknown)")
    if minimum and version_tuple(have) < version_tuple(minimum):
        return (name, "problem", f"{have} is older than {minimum}; upgrade it")
    return (name, "OK", have)


rows = [check_package(name, minimum) for name, minimum in requirements() if name not in NOT_PYTHON]

# %% [markdown]
# ## 3. Programs outside Python *(core)*
#
# Some episodes call programs rather than libraries: GNU `parallel` (episode 06), `mpiexec`
# (episode 05), and Graphviz's `dot` for drawing task graphs. (Instructors who render the slides also
# need Quarto: see the README, "For instructors". Learners do not.)

# %%
PROGRAMS = {
    "parallel": "GNU parallel, episode 06: `sudo apt install parallel`, `brew install parallel` or pixi",
    "mpiexec": "MPI, episode 05: install mpich (pip/conda) or `module load` your site's MPI",
    "dot": "Graphviz, to draw task graphs: `sudo apt install graphviz`, `brew install graphviz` or pixi",
}
for program, advice in PROGRAMS.items():
    # "found", not where: the table is shared with helpers and shown on slides, and a path says
    # nothing about whether the program works (the episodes that use it check that)
    rows.append((program, "OK", "found") if shutil.which(program) else (program, "problem", f"not found; {advice}"))

# %% [markdown]
# ## 4. Cores, memory, GPU and disk *(core)*
#
# A GPU is optional: episode 11 (`labs/11_gpus.py`) runs on the CPU when none is found. The free
# disk is checked against the dataset size you chose with the `COURSE_SIZE` environment variable
# (default `small`).

# %%
def gpu_row():
    try:
        import cupy

        n = cupy.cuda.runtime.getDeviceCount()
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        return ("GPU", "OK", f"{n} × {name} (CuPy {cupy.__version__})")
    except ImportError:
        pass
    except Exception as err:
        return ("GPU", "optional", f"CuPy is installed but found no usable GPU ({type(err).__name__})")
    if shutil.which("nvidia-smi"):
        return ("GPU", "optional", "an NVIDIA GPU is present; `pixi run -e gpu ...` adds CuPy")
    return ("GPU", "optional", "none; episode 11 runs on the CPU")


def disk_row():
    era5_like = course.generator()
    target = era5_like.default_directory(course.size()).parent  # honours COURSE_DATA_DIR
    target.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target).free
    need = era5_like.parse_size(course.size()).total_bytes()
    detail = f"{free / 2**30:.1f} GiB free; data '{course.size()}' needs {need / 2**30:.2f} GiB"
    if free < 1.2 * need:
        where = os.path.relpath(target, course.ROOT) if target.is_relative_to(course.ROOT) else "$COURSE_DATA_DIR"
        return ("disk", "problem", f"{detail} in {where}; free space or set COURSE_DATA_DIR to a larger disk")
    return ("disk", "OK", detail)


def era5_row():
    """Your own ERA5 files, when COURSE_ERA5 names them (README: "Teaching on your own data")."""
    from course import era5

    if not era5.own_data():
        return ("ERA5 data", "OK", "the course's generated files (COURSE_ERA5 unset)")
    try:
        info = era5.describe(era5.setting())
    except era5.OwnDataError as err:
        return ("ERA5 data", "problem", str(err))
    cannot = [name[:2] for name, verdict in info["episodes"].items() if verdict.startswith("cannot")]
    detail = (f"COURSE_ERA5: {info['files']} files, {', '.join(info['variables'])}, {info['period'][:10]} to "
              f"{info['period'].split(' … ')[-1][:10]}")
    if cannot:
        return ("ERA5 data", "problem", f"{detail}; episodes {', '.join(cannot)} cannot run: python data/inspect_era5.py")
    return ("ERA5 data", "OK", detail)


mem = psutil.virtual_memory()
rows += [
    ("cores", "OK", f"{course.usable_cores()} usable by this process"),
    ("memory", "OK" if mem.total >= 4 * 2**30 else "problem", f"{mem.total / 2**30:.1f} GiB, {mem.available / 2**30:.1f} GiB free"),
    gpu_row(),
    disk_row(),
    era5_row(),
]

# %% [markdown]
# ## 5. A Dask cluster and its dashboard *(core)*
#
# Dask will be our scheduler for most of the course. `course.clusters.client` starts a small cluster
# of worker processes on this machine, bound to `127.0.0.1` so that nobody else on the network can
# reach it, and on a free port chosen by the operating system (port `0`) so that it never clashes with
# another dashboard that is already running. Then we ask the dashboard for its status page, and
# measure how much memory an idle worker takes once it has run a small array sum (so NumPy and Dask's
# array code are loaded, as in any real work): every worker you start costs that much before it holds
# any data (episode 04 builds its memory budget on the same measurement).
#
# Every computation on a cluster in this course has a deadline: `course.clusters.compute` waits for
# the result, but stops with a message that says what happened (and what to try) if the workers are
# stuck, instead of waiting forever.

# %%
import dask.array as da

from course import clusters

idle_worker_mib = []  # resident memory of each idle worker process, measured below


def dask_row():
    start = time.perf_counter()
    client = None
    try:
        client = clusters.client(n_workers=2, threads_per_worker=1, local_only=True)  # limit: RAM / workers
        total = clusters.compute(da.arange(1000, chunks=100).sum(), client, what="the setup check's sum",
                                 timeout=120)
        with urllib.request.urlopen(client.dashboard_link, timeout=10) as reply:
            status = reply.status
        pids = client.run(os.getpid).values()  # the worker processes, measured from here
        idle_worker_mib[:] = [psutil.Process(pid).memory_info().rss / 2**20 for pid in pids]
        ok = total == 499500 and status == 200
        host = client.dashboard_link.split("//")[1].split(":")[0]
        detail = f"2 workers, dashboard on {host}: {time.perf_counter() - start:.1f} s"
        return ("dask cluster", "OK" if ok else "problem", detail)
    except Exception as err:
        return ("dask cluster", "problem", f"{type(err).__name__}: {err}; see README › troubleshooting")
    finally:
        if client is not None:  # stop the workers and the scheduler, whatever happened
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()


rows.append(dask_row())

# %%
#| label: idle-worker
if idle_worker_mib:
    low, high = f"{min(idle_worker_mib):.0f}", f"{max(idle_worker_mib):.0f}"
    print(f"an idle Dask worker process holds {low if low == high else low + '–' + high} MiB "
          f"of memory, with NumPy loaded and no data")
    print(course.hardware())
else:
    print("no worker memory measured: the Dask check above failed")

# %% [markdown]
# ### Exercise 1: how many workers? (5 min)
# Change the Dask check to start as many single-threaded workers as `course.usable_cores()`.
# What does the dashboard's *Workers* tab show? What happens with twice as many workers as cores?
#
# <details><summary>Solution</summary>
#
# `clusters.client(n_workers=course.usable_cores(), threads_per_worker=1, local_only=True)`. The Workers
# tab lists one row per worker process with its memory limit. With twice as many workers as cores the
# cluster still starts, but the workers share cores: nothing runs faster, and each worker costs the
# idle memory measured in section 5 before it does any work.
# </details>

# %% [markdown]
# ## 6. Maps without a network *(core)*
#
# Cartopy downloads coastlines from Natural Earth the first time it draws them, which fails on
# trains, in classrooms with poor Wi-Fi and on most HPC compute nodes. The course ships the layers it
# needs in `data/natural_earth/` and `import course` points Cartopy at them. To prove it, we draw a
# map while every attempt to open a network connection raises an error.

# %%
import socket

import matplotlib.pyplot as plt


class NetworkBlocked(OSError):
    pass


def draw_map_offline():
    import cartopy.crs as ccrs
    import cartopy.feature as cfeature

    real_connect = socket.socket.connect

    def refuse(*args, **kwargs):
        raise NetworkBlocked("network access attempted")

    socket.socket.connect = refuse
    try:
        fig = plt.figure(figsize=(9, 4.5))
        ax = fig.add_subplot(projection=ccrs.Robinson())
        ax.set_global()
        ax.add_feature(cfeature.LAND, facecolor="#E8E2D0")
        ax.add_feature(cfeature.OCEAN, facecolor="#D4E6F1")
        ax.coastlines(linewidth=0.8)
        ax.add_feature(cfeature.BORDERS, linewidth=0.4, edgecolor="#555555")
        ax.gridlines(draw_labels=False, linewidth=0.3)
        ax.set_title("Drawn with the network switched off")
        fig.canvas.draw()
        return fig
    finally:
        socket.socket.connect = real_connect


try:
    map_figure = draw_map_offline()
    rows.append(("maps offline", "OK", "coastlines and borders, no network"))
except Exception as err:
    map_figure = None
    rows.append(("maps offline", "problem", f"{type(err).__name__}: {err}; is data/natural_earth complete?"))

# %%
#| label: fig-offline-map
#| fig-cap: "A world map drawn by Cartopy from the Natural Earth layers shipped with the course, with the network blocked."
#| fig-alt: "Robinson projection of the world with grey-beige land, pale blue ocean, black coastlines and thin grey country borders."
map_figure

# %% [markdown]
# ## 7. The verdict *(core)*
#
# One line per check. **OK** needs nothing; **optional** is fine for learners; **problem** says what
# to do. Bring the last line to the workshop if you need help.

# %%
#| label: setup-table
def setup_table(rows):
    """Show the checks as a table, then the verdict."""
    course.table([{"check": name, "status": status, "detail": detail} for name, status, detail in rows])
    problems = [r for r in rows if r[1] == "problem"]
    print(f"{len(rows)} checks on {course.hardware()}")
    print("All set for the course." if not problems else f"{len(problems)} problem(s): fix them before the workshop.")


setup_table(rows)

# %% [markdown]
# The same verdict in brief, with the Python packages folded into one line unless one of them has a
# problem (this is the version the slides show):

# %%
#| label: setup-summary
def setup_summary(rows):
    packages = [r for r in rows if r[0] in {name for name, _ in requirements()}]
    others = [r for r in rows if r not in packages]
    bad = [r for r in packages if r[1] != "OK"]
    folded = ("Python packages", "OK" if not bad else "problem", f"{len(packages) - len(bad)} of {len(packages)} new enough")
    programs = [r for r in others if r[0] in PROGRAMS]
    if all(r[1] == "OK" for r in programs):  # fold the programs too, unless one is missing
        others = [("programs", "OK", ", ".join(r[0] for r in programs))] + [r for r in others if r not in programs]
    setup_table([folded, *bad, *others])


setup_summary(rows)

# %% [markdown]
# ### Exercise 2: your batch allocation (5 min)
# On an HPC system, start an interactive job with 4 cores (`srun -c 4 --pty bash` on Slurm) and run
# `python labs/00_setup.py` there. Compare the *cores* line of the verdict with the login node's.
#
# <details><summary>Solution</summary>
#
# The *cores* line shows the 4 cores the job was given, even though the node has many more:
# `course.usable_cores()` reads the CPU affinity of the process, which the batch system sets.
# `os.cpu_count()` would report the whole node and make you start too many workers.
# </details>

# %% [markdown]
# ## Key points
# - Check your environment before the workshop: `python labs/00_setup.py`.
# - Always report timings with the hardware that produced them.
# - The cores you may use are not always the cores the machine has.
# - Bind dashboards to `127.0.0.1` and let the OS choose a free port.
# - Every worker costs memory before it works; every cluster computation gets a deadline.
# - The course draws maps offline from shipped Natural Earth layers.

# %% [markdown]
# ## Checks
# Run by `pytest labs/00_setup.py`; the slides never show this cell.

# %% tags=["checks"]
def test_setup_table():
    setup_table(rows)
    required = {"numpy", "xarray", "dask", "distributed", "zarr", "numba", "cartopy", "dask cluster", "maps offline"}
    bad = [r for r in rows if r[0] in required and r[1] != "OK"]
    assert not bad, f"essential checks failed: {bad}"


def test_idle_worker_measured_and_no_paths_shown():
    assert idle_worker_mib and all(m > 0 for m in idle_worker_mib)
    shown = " ".join(detail for _, _, detail in rows)
    for private in {str(course.ROOT), os.path.expanduser("~"), sys.prefix}:
        assert private not in shown, f"the setup table shows a path of this machine: {private}"


def test_every_requirement_checked():
    names = {r[0] for r in rows}
    missing = [n for n, _ in requirements() if n not in NOT_PYTHON and n not in names]
    assert not missing
    # a package that is installed but "cannot import" under the guessed name needs an IMPORT_NAME entry
    unmapped = []
    for name, status, detail in rows:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if detail.startswith("cannot import") and "ModuleNotFoundError" in detail:
            unmapped.append(name)
    assert not unmapped, f"installed but imported under another name: add them to IMPORT_NAME: {unmapped}"


course.run_checks(globals())
