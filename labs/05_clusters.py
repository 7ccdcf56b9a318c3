# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Clusters: the same code on more machines
#
# **Teaching:** 50 min · **Exercises:** 25 min
#
# ## Objectives
# - Start a Dask **scheduler** and **workers** as separate processes with the `dask` command line,
#   connect to them by address, and stop everything cleanly.
# - Reach a dashboard on a remote machine through an **SSH tunnel**.
# - Let **dask-jobqueue** write SLURM and PBS job scripts, submit worker jobs to a real Slurm, and
#   watch **adaptive** scaling submit and cancel them.
# - Run a lab as a **batch job** with the scheduler-file pattern; know where **pixi** fits.
# - Compare the same computation with **MPI** (`mpi4py` under `mpiexec`) and with Dask.
# - Point the same `Client(address)` at a cluster in the **cloud**.
#
# ## Why?
# In episode 04 `LocalCluster` started the scheduler and the workers for us, inside the notebook's
# own process tree. On an HPC system or in the cloud they run on *other machines*: the scheduler
# on one node, workers on many, the client (your notebook or script) somewhere else again. They
# find each other by network address and talk over TCP. Nothing else changes: the same
# `client.submit`, the same Dask arrays, the same Xarray code.
#
# This lab builds exactly that, on one machine: every piece is a separate process started from the
# command line, listening on `127.0.0.1` only. Swap `127.0.0.1` for the nodes' addresses and you
# have a real cluster. Then we look at how batch systems start those processes for you, and at MPI,
# the other way to run one program on many nodes.

# %%
import inspect
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time

import graphviz
import matplotlib.pyplot as plt
import psutil
from pathlib import Path

from dask.distributed import Client
from IPython.display import Image

import course
from course import bench, clusters, pi

OUT = course.BUILD / "05_clusters"  # everything this lab writes
OUT.mkdir(parents=True, exist_ok=True)
SCALE = {"small": 1, "workshop": 4, "large": 16}.get(course.size(), 16)
DEADLINE = clusters.deadline()  # seconds any one computation on a cluster may take ($COURSE_DEADLINE_S)


def wrapped(command, width=76):
    """A long shell command as you would type it over several lines, with backslashes; each option
    stays with its value."""
    lines = []
    for part in re.split(r" (?=--)", command):
        if lines and len(lines[-1]) + 1 + len(part) <= width:
            lines[-1] += " " + part
        else:
            lines.append(part)
    return " \\\n    ".join(lines)

# %%
#| label: hardware
print(course.hardware())
print(f"COURSE_SIZE={course.size()} (scale ×{SCALE})")

# %% [markdown]
# ## 1. A cluster from the command line *(core)*
#
# A Dask cluster is three kinds of process:
#
# - the **scheduler** keeps the task graph and decides which worker runs what; it also serves the
#   dashboard;
# - **workers** run tasks and hold results; each is watched by a *nanny* process that restarts it
#   if it dies (episode 04's `KilledWorker`);
# - the **client** (your notebook) sends graphs and receives results.
#
# On a cluster you would type these commands on different machines:
#
# ```bash
# dask scheduler --scheduler-file ~/scheduler.json      # on one node
# dask worker --scheduler-file ~/scheduler.json         # on every other node
# ```
#
# The **scheduler file** is a small JSON file with the scheduler's address. On a shared file
# system every worker can read it, so nobody has to type addresses. Here we start the same
# commands as background processes, bound to `127.0.0.1` and on ports the operating system picks
# (`--port 0`), so the lab never clashes with anything else running. `clusters.CommandLineCluster`
# runs them and waits until the workers have connected:

# %%
#| label: cli-commands
start = time.perf_counter()
cli = clusters.CommandLineCluster(n_workers=2, threads_per_worker=1, workdir=OUT / "cli")  # limit: RAM / workers
cli_start_s = time.perf_counter() - start
print(wrapped(cli.commands[0]))
print(wrapped(cli.commands[1]))
print(f"(and the same for worker-1) · scheduler and 2 workers up in {cli_start_s:.1f} s")
print(course.hardware())

# %% [markdown]
# The scheduler file holds what a client needs to connect:

# %%
#| label: scheduler-file
scheduler_info = json.loads(cli.scheduler_file.read_text())
print(json.dumps({k: scheduler_info[k] for k in ("type", "address", "services")}, indent=2))

# %% [markdown]
# Connect by address, as you would from a login node or a laptop. `Client(scheduler_file=...)`
# does the same from the file.

# %%
#| label: client-connect
client = Client(cli.address, timeout=60)
workers = client.scheduler_info(n_workers=-1)["workers"]
worker_pids = client.run(os.getpid)  # runs os.getpid on every worker: {address: pid}
print(f"client connected to {client.scheduler.address}; dashboard {cli.dashboard_link}")
course.table([{"worker": w["name"], "address": address, "threads": w["nthreads"],
               "memory limit": f"{w['memory_limit'] / 2**30:.1f} GiB", "pid": worker_pids[address]}
              for address, w in sorted(workers.items())], align="llrrr")

# %% [markdown]
# ### Every process, and what it listens on
#
# `psutil` lists the processes the two `dask` commands started and the sockets they listen on. A
# worker command starts a nanny, which starts the worker proper; each listens for other Dask
# processes, and each dashboard listens for browsers. All on `127.0.0.1`: nothing is reachable
# from another machine.

# %%
#| label: cli-listening
def role(pid):
    cmd = " ".join(psutil.Process(pid).cmdline())
    if " scheduler" in cmd:
        return "scheduler"
    if " worker" in cmd:
        return "nanny (dask worker)"
    return "worker" if "spawn" in cmd else "helper"


cli_pids = cli.pids()
cli_listening = cli.listening()
course.table([{"pid": pid, "process": role(pid), "listens on": f"{ip}:{port}"} for pid, ip, port in cli_listening],
             align="rll")
print(f"{len(cli_pids)} processes, {len(cli_listening)} listening sockets")

# %%
#| label: fig-cluster-diagram
#| fig-cap: "The cluster started from the command line: scheduler, two workers and the client, each a separate process talking TCP on 127.0.0.1 (addresses as measured in this run)."
#| fig-alt: "Diagram: the client box on the left connects to the scheduler box in the middle, which connects to two worker boxes on the right; the workers are also joined to each other for data transfers; a browser box connects to the scheduler's dashboard. Each box shows its address."
OKABE_LIGHT = {"client": "#CDE4F5", "scheduler": "#F9E1B3", "worker": "#C4E8DC", "browser": "#EEEEEE"}
g = graphviz.Digraph(graph_attr={"rankdir": "LR", "fontname": "Helvetica", "nodesep": "0.4", "ranksep": "1.1", "dpi": "130"},
                     node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica", "fontsize": "18"},
                     edge_attr={"fontname": "Helvetica", "fontsize": "16"})
g.node("client", f"client\n(this notebook)\npid {os.getpid()}", fillcolor=OKABE_LIGHT["client"])
g.node("browser", "browser\n(or SSH tunnel)", fillcolor=OKABE_LIGHT["browser"])
g.node("scheduler", f"dask scheduler\n{cli.address}\ndashboard :{scheduler_info['services']['dashboard']}",
       fillcolor=OKABE_LIGHT["scheduler"])
for k, (address, w) in enumerate(sorted(workers.items())):  # node ids without ":" (Graphviz reads it as a port)
    g.node(f"worker{k}", f"dask worker {w['name']}\n{address}\npid {worker_pids[address]} · {w['nthreads']} thread · "
           f"{w['memory_limit'] / 2**30:.0f} GiB", fillcolor=OKABE_LIGHT["worker"])
    g.edge("scheduler", f"worker{k}", label="tasks", dir="both")
g.edge("client", "scheduler", label="graphs, results", dir="both")
g.edge("browser", "scheduler", label="http", style="dashed")
g.edge("worker0", "worker1", label="data", dir="both", style="dotted", constraint="false")
g.render(OUT / "cluster", format="png", cleanup=True)
Image(filename=OUT / "cluster.png", width=1150)

# %% [markdown]
# ### Exercise 1: one more worker, by hand (5 min)
# The command-line cluster of this section is still running. In a **terminal**, add a third worker
# with the `dask` command, using the scheduler file. How does the client see it? Stop the worker
# again with Ctrl-C.

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```bash
# dask worker --scheduler-file _build/05_clusters/cli/scheduler.json --host 127.0.0.1 \
#     --dashboard-address 127.0.0.1:0 --nthreads 1 --memory-limit auto
# ```
# `len(client.scheduler_info()["workers"])` becomes 3 and the dashboard shows a third row. Ctrl-C
# closes the worker gracefully; the scheduler notices and the count goes back to 2. This is how
# workers on other machines join: all they need is the scheduler's address (or a shared file
# containing it). Without `labs/` on its `PYTHONPATH`, the new worker fails on `course.pi` tasks:
# try it.
# </details>

# %% [markdown]
# ## 2. The same code, now on separate processes *(core)*
#
# Submit work exactly as in episode 04. One thing is new: the workers are not children of the
# notebook, so they cannot see functions defined in it by name. They import `course.pi` because the
# cluster was started with `labs/` on their `PYTHONPATH`. On a real cluster, install your code in
# the environment the workers use (`pip install -e .`), or put it on a shared file system on their
# `PYTHONPATH`; `client.upload_file("module.py")` is the quick fix for a single file.

# %%
#| label: dask-pi
N_PI = 1_000_000_000 * SCALE
dask_runs = {}
for parts in (1, 2):
    starts, stops = zip(*pi.slices(N_PI, parts))
    t0 = time.perf_counter()
    futures = client.map(pi.pi_slice_numpy, starts, stops, n=N_PI)
    parts_done = clusters.wait_for(futures, client, what=f"π in {parts} part(s)")  # gather, with a deadline
    dask_runs[parts] = (sum(parts_done), time.perf_counter() - t0)
    del futures
for parts, (value, seconds) in dask_runs.items():
    print(f"Dask, {parts} worker(s): π = {value:.12f} (error {abs(value - math.pi):.1e}) in {seconds:.2f} s")
print(f"{N_PI:,} terms · {course.hardware()}")

# %% [markdown]
# ## 3. The dashboard of a remote cluster: an SSH tunnel *(core)*
#
# The scheduler's dashboard listens on `127.0.0.1` of the machine it runs on. On an HPC system that
# is a login or compute node you cannot reach with a browser. An SSH **tunnel** forwards a port on
# your laptop to that address, through the SSH connection you already have:
#
# ```bash
# # scheduler on the login node, dashboard on its port 8787:
# ssh -L 8787:localhost:8787 login-node
# # scheduler in a batch job on node c042 (-J jumps through the login node):
# ssh -L 8787:localhost:8787 -J login-node c042
# ```
#
# then open <http://localhost:8787/status> on the laptop. Nothing is exposed to the network; the
# traffic is encrypted. Replace 8787 by the port the scheduler printed (ours is below). Many
# centres also run JupyterHub with `dask-labextension`, which proxies the dashboard for you.

# %%
#| label: ssh-tunnel
dash_port = scheduler_info["services"]["dashboard"]
print(f"this cluster's dashboard: {cli.dashboard_link}")
print(f"from a laptop, if this were a remote node:  ssh -L 8787:localhost:{dash_port} <this-host>")

# %% [markdown]
# ### Exercise 2: the tunnel (5 min)
# A scheduler in a batch job is reached by jumping through the login node:
# `ssh -L 8787:localhost:<port> -J <login-node> <node>` (section 7's batch template prints this
# line for you). Your job runs on `c042`, the dashboard on port 40123, the login node is
# `hpc.example.org`. Write the command, and say what you open in the browser.

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# `ssh -L 8787:localhost:40123 -J you@hpc.example.org you@c042`, then <http://localhost:8787/status>.
# The left port is on your laptop (any free port), the right one on the node. If your site does not
# allow SSH to compute nodes, run the scheduler on the login node instead and tunnel to that.
# </details>

# %% [markdown]
# ## 4. MPI: the other way to run one program on many nodes *(optional)*
#
# MPI starts **N copies of the same program** (*ranks*) at once, on one or many nodes; each asks
# for its rank and does its share; they exchange data with explicit messages (`send`, `reduce`,
# `gather`). This program sums the same π slices as Dask did: rank *r* takes slice *r*, and rank 0
# gathers the parts. It is `course.pi.mpi_main`, run as `mpiexec -n 2 python -m course.pi mpi N`:

# %%
print(inspect.getsource(pi.mpi_main))

# %% [markdown]
# We run it under `mpiexec` with one and with two ranks.
#
# The course's environment brings MPICH (`pip install mpich mpi4py`, or conda-forge). On a cluster,
# use the site's MPI instead (`module load`), built for its network. (Open MPI from PyPI refuses to
# run as root and needs `--oversubscribe` when there are more ranks than cores.)

# %%
def find_mpiexec():
    """The mpiexec next to this Python (the course's MPICH) or on PATH; None when there is none."""
    local = shutil.which("mpiexec", path=os.path.dirname(sys.executable))
    return local or shutil.which("mpiexec")


def mpiexec_args(mpiexec):
    """Extra flags for Open MPI: allow root (containers, CI) and more ranks than cores."""
    try:
        version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    if "Open MPI" not in version and "OpenRTE" not in version:
        return []
    return ["--oversubscribe"] + (["--allow-run-as-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])


def run_mpi(ranks, n, timeout=120):
    """Run `python -m course.pi mpi N` under mpiexec; returns its numbers plus the wall time including start-up."""
    cmd = [MPIEXEC, *mpiexec_args(MPIEXEC), "-n", str(ranks), sys.executable, "-m", "course.pi", "mpi", str(n)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=course.ROOT / "labs")
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"mpiexec failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return {**pi.parse(done.stdout), "wall": wall}


MPIEXEC = find_mpiexec()
mpi_runs = {}
if MPIEXEC is None:
    print("No mpiexec found: install MPICH (`pip install mpich` or conda-forge `mpich`) or `module load` your MPI. MPI part skipped.")
else:
    for ranks in (1, 2):
        try:
            mpi_runs[ranks] = run_mpi(ranks, N_PI)
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            print(f"MPI with {ranks} ranks did not run: {err}")
            break

# %%
#| label: mpi-vs-dask
course.table([{"run": f"MPI, {ranks} rank(s)", "π": f"{r['pi']:.15f}", "compute s": f"{r['seconds']:.2f}",
               "wall s": f"{r['wall']:.2f}"} for ranks, r in mpi_runs.items()]
             + [{"run": f"Dask, {parts} worker(s)", "π": f"{value:.15f}", "compute s": f"{seconds:.2f}",
                 "wall s": f"{seconds:.2f}"} for parts, (value, seconds) in dask_runs.items()], align="lrrr")
where = "the course's environment" if MPIEXEC and Path(MPIEXEC).parent == Path(sys.executable).parent else "PATH"
print(f"π with {N_PI:,} terms; mpiexec from {where}")
print(f"Dask's wall time leaves out the cluster's start-up ({cli_start_s:.1f} s), paid once for many computations")
print(course.hardware())

# %%
#| label: fig-mpi-vs-dask
#| fig-cap: "π by the midpoint rule with MPI (mpiexec) and with the command-line Dask cluster, for one and two processes, measured here. MPI's wall time includes starting the processes; Dask's cluster was already running."
#| fig-alt: "Grouped bar chart of seconds for MPI with 1 and 2 ranks and Dask with 1 and 2 workers; for MPI two bars per group, compute time and wall time including start-up; for Dask one bar."
fig, ax = plt.subplots(figsize=(10, 5))
labels, compute, wall = [], [], []
for ranks, r in mpi_runs.items():
    labels.append(f"MPI\n{ranks} rank{'s' if ranks > 1 else ''}")
    compute.append(r["seconds"])
    wall.append(r["wall"])
for parts, (_, seconds) in dask_runs.items():
    labels.append(f"Dask\n{parts} worker{'s' if parts > 1 else ''}")
    compute.append(seconds)
    wall.append(seconds)
xs = range(len(labels))
b1 = ax.bar([x - 0.2 for x in xs], compute, width=0.4, label="compute")
b2 = ax.bar([x + 0.2 for x in xs], wall, width=0.4, label="wall, incl. start-up")
ax.bar_label(b1, fmt="%.2f", fontsize=11)
ax.bar_label(b2, fmt="%.2f", fontsize=11)
ax.set_xticks(list(xs), labels)
ax.set_ylabel("seconds")
ax.set_title(f"π with {N_PI:,} terms")
ax.legend()
fig.suptitle(course.hardware(), fontsize=10)
fig.tight_layout()

# %% [markdown]
# Same slices, same arithmetic, the same π to the last digit. (On a machine shared with other
# users the timings jump around; the point is the start-up cost and the programming model.) The
# difference is the programming model:
#
# | | MPI | Dask |
# |---|---|---|
# | start | `mpiexec -n N` starts N copies at once | scheduler + workers, started once, used by many computations |
# | who does what | you: `if rank == 0`, slices, messages | the scheduler, from the task graph |
# | data exchange | explicit `send`/`reduce`/`gather`, very fast on HPC networks | automatic, through the workers |
# | a process dies | the whole job stops | the task is rerun elsewhere |
# | interactive | no (a batch program) | yes (notebook, dashboard) |
# | best for | tightly coupled simulations, halo exchanges, existing MPI codes | many independent tasks, arrays and tables bigger than memory, analysis |
#
# Dask can also run *inside* an MPI job (`dask-mpi`), when MPI is the only way your site starts
# processes on many nodes.

# %% [markdown]
# ### Exercise 3: MPI ranks versus cores (5 min)
# Run the MPI π with twice as many ranks as this machine has usable cores
# (`run_mpi(2 * course.usable_cores(), N_PI)`). What happens to the compute time, and why? What would
# Dask do with twice as many workers as cores?

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# It still works (MPICH allows more ranks than cores) but is no faster than one rank per core, and
# often a little slower: two processes take turns on each core, and every rank waits at the barrier for
# the slowest. Dask behaves the same way: more workers than cores adds memory and overhead, not
# speed. Match ranks/workers × threads to the cores you were given (`course.usable_cores()`).
# </details>

# %% [markdown]
# ## 5. Stop everything, and prove it *(core)*
#
# A forgotten worker keeps its memory, its cores and, on a cluster, your allocation. `client.shutdown()`
# asks the scheduler to close the workers and itself; `course.clusters` then waits for every process,
# and terminates (or kills) any that does not exit. Afterwards no process of the cluster may be
# alive and none of its ports may accept connections.

# %%
#| label: cli-stopped
ports = sorted({port for _, _, port in cli_listening})
stopped = cli.close(client)
client.close()
still_alive = [pid for pid in cli_pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
closed = clusters.ports_closed(ports)
print("stopped:", {how: len(pids) for how, pids in stopped["stopped_by"].items()})
print(f"processes still alive: {still_alive or 'none'} · {len(ports)} ports all closed: {closed}")

# %% [markdown]
# On an HPC system the batch system does this for you when the job ends (`scancel` ends it early),
# but a tidy script still shuts its cluster down so that the last results are written first.

# %% [markdown]
# ## 6. HPC: let the batch system start the workers (dask-jobqueue) *(core)*
#
# On SLURM or PBS you do not start workers by hand: you **submit jobs**, and each job starts
# workers that connect to your scheduler. `dask-jobqueue` writes those job scripts and submits
# them. You describe **one job**: cores, memory, walltime, queue (partition) and account; `processes`
# splits the job into that many worker processes. `job_script()` shows the script it would submit,
# and submits nothing: first for a typical node at a site, then, further down, for real on a Slurm
# on this machine when there is one.

# %%
#| label: slurm-script
def show_script(script):
    """A job script as it would be submitted, with this machine's Python shown as `python`,
    no blank lines, and the long worker command over several lines."""
    lines = [line.replace(sys.executable, "python") for line in script.splitlines() if line.strip()]
    print("\n".join(wrapped(line, 72) for line in lines))


RESOURCES = dict(cores=8, processes=2, memory="16GiB", walltime="01:30:00", queue="short", account="proj123")
slurm_script = clusters.job_script("slurm", **RESOURCES, job_script_prologue=["module load python", "conda activate course"])
show_script(slurm_script)

# %%
#| label: pbs-script
pbs_script = clusters.job_script("pbs", **RESOURCES)
show_script(pbs_script)

# %%
#| label: script-checks
EXPECTED = {
    "SLURM": (slurm_script, ["#SBATCH --cpus-per-task=8", "#SBATCH --mem=16G", "#SBATCH -t 01:30:00",
                             "#SBATCH -p short", "#SBATCH -A proj123", "--nworkers 2", "--nthreads 4"]),
    "PBS": (pbs_script, ["#PBS -l select=1:ncpus=8:mem=16GB", "#PBS -l walltime=01:30:00", "#PBS -q short",
                         "#PBS -A proj123", "--nworkers 2", "--nthreads 4"]),
}
script_missing = {}
for system, (script, lines) in EXPECTED.items():
    script_missing[system] = [line for line in lines if line not in script]
    print(f"{system}: {len(lines) - len(script_missing[system])}/{len(lines)} requested resources found"
          + (f"; missing {script_missing[system]}" if script_missing[system] else ""))

# %% [markdown]
# Read the worker line: the job runs `dask_worker tcp://127.0.0.1:…`, the address of *this*
# scheduler. On a real cluster the scheduler runs on the login node (or in a job of its own) and
# must listen on an address the compute nodes can reach: pass `interface="ib0"` (or the name of the
# site's fast network) or `scheduler_options={"interface": "ib0"}`. The dashboard can stay on
# `127.0.0.1` and be reached through a tunnel.
#
# ### Adaptive scaling
#
# `cluster.scale(jobs=4)` asks for four jobs now. `cluster.adapt(minimum_jobs=0, maximum_jobs=10)`
# lets the scheduler decide: when tasks pile up it submits more jobs, when workers sit idle it
# cancels theirs. You pay (in core-hours and queue priority) only for what the computation uses,
# and a finished notebook gives the nodes back. Jobs wait in the queue, so new workers arrive
# minutes later: adaptivity suits long, uneven workloads, not a 10-second computation.

# %%
#| label: adaptive
from dask_jobqueue import SLURMCluster

with SLURMCluster(**RESOURCES, scheduler_options={"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}) as hpc:
    adaptive = hpc.adapt(minimum_jobs=0, maximum_jobs=10)
    time.sleep(1.5)  # one adaptive cycle: nothing to do, so nothing is submitted
    print(f"adaptive: between {adaptive.minimum} and {adaptive.maximum} workers "
          f"({RESOURCES['processes']} worker processes per job, at most 10 jobs)")
    print(f"jobs requested now: {len(hpc.worker_spec)} (no tasks waiting)")
    print(f"the notebook would connect with Client(hpc); dashboard {hpc.dashboard_link}")
    adaptive_jobs_requested = len(hpc.worker_spec)
    hpc_ports = {int(hpc.scheduler_address.rsplit(":", 1)[1]), int(hpc.dashboard_link.split(":")[2].split("/")[0])}
    hpc_listening = [x for x in clusters.listening([os.getpid()]) if x[2] in hpc_ports]

# %% [markdown]
# ### For real: worker jobs on a Slurm
#
# Everything above only *wrote* job scripts. When this machine runs a Slurm whose node is this
# machine (the course's `.ci/slurm-up` starts a one-node Slurm as root on Debian or Ubuntu, for CI
# and for rehearsing; `.ci/slurm-down` stops it), the rest of this section submits real jobs. The
# resources come from `sinfo`, never typed: one core per job and that core's share of the node's
# memory, so two jobs fit side by side. `clusters.slurm()` asks `sinfo` and submits nothing.

# %%
#| label: slurm-here
SLURM = clusters.slurm()
if SLURM["up"]:
    MB_PER_CORE = SLURM["memory_mb"] // SLURM["cpus"]
    print(f"Slurm is up: partition {SLURM['partition']!r}, node {SLURM['node']!r} with {SLURM['cpus']} CPUs "
          f"and {SLURM['memory_mb']:,} MB; each worker job asks for 1 CPU and {MB_PER_CORE:,} MB")
else:
    print(f"No jobs submitted: {SLURM['why']}.")
    print("To try it for real: as root on Debian/Ubuntu run `bash .ci/slurm-up` (a one-node Slurm on this")
    print("machine; `bash .ci/slurm-down` stops it), or use your site's Slurm with Exercise 4's script.")
NO_SLURM = "No Slurm here, so nothing was submitted (see above for how to start one)."
slurm_jobs = set()   # every job id this section submits: none may be left in the queue at the end
slurm_log = {}       # what each step measured, for the checks


# %% [markdown]
# Two worker jobs, in the code you would type at a site: `SLURMCluster(...)`, `scale(jobs=2)`,
# `Client(cluster)`. `wait_for_workers` has a deadline: jobs may wait in the queue for a long time.
# `squeue --me` shows them, with the ids Slurm gave them.

# %%
#| label: slurm-squeue
if SLURM["up"]:
    from dask_jobqueue import SLURMCluster

    t0 = time.perf_counter()
    JOB = dict(cores=1, processes=1, memory=f"{MB_PER_CORE}MiB", job_mem=f"{MB_PER_CORE}M", walltime="00:10:00",
               queue=SLURM["partition"], job_name="dask-worker", log_directory=str(OUT / "slurm"),
               scheduler_options={"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"},
               worker_extra_args=["--dashboard-address", "127.0.0.1:0"],
               job_script_prologue=[f"export PYTHONPATH={course.ROOT / 'labs'}"])  # the workers import course.pi
    slurm_cluster = SLURMCluster(**JOB)
    slurm_cluster.scale(jobs=2)
    slurm_client = Client(slurm_cluster)
    slurm_client.wait_for_workers(2, timeout=DEADLINE)
    worker_jobs = [job.job_id for job in slurm_cluster.workers.values()]
    slurm_address = slurm_cluster.scheduler_address  # the workers' command lines name it
    slurm_jobs |= set(worker_jobs)
    slurm_log["start s"] = time.perf_counter() - t0
    slurm_squeue = clusters.squeue(worker_jobs)
    print("$ squeue --me")
    print(slurm_squeue)
    print(f"jobs {', '.join(worker_jobs)} submitted; both workers connected {slurm_log['start s']:.1f} s later")
else:
    print(NO_SLURM)

# %% [markdown]
# The computation of section 2, unchanged, on the two workers Slurm started. `clusters.wait_on_jobs`
# is `wait_for` for workers in batch jobs: if every job ends before the result is in, it stops and
# says why (from `scontrol show job`) instead of waiting for workers that will never come.

# %%
#| label: slurm-pi
if SLURM["up"]:
    starts, stops = zip(*pi.slices(N_PI, 2))
    t0 = time.perf_counter()
    futures = slurm_client.map(pi.pi_slice_numpy, starts, stops, n=N_PI)
    slurm_pi = sum(clusters.wait_on_jobs(futures, slurm_client, worker_jobs, what="π on the Slurm workers"))
    slurm_log["pi s"] = time.perf_counter() - t0
    del futures
    same = "the same bits as" if slurm_pi == dask_runs[2][0] else "a different value from"
    print(f"π = {slurm_pi:.15f} in {slurm_log['pi s']:.2f} s on 2 Slurm worker jobs: {same} the command-line cluster")
    print(course.hardware(), "·", bench.load())
else:
    print(NO_SLURM)

# %% [markdown]
# **A worker job ends early.** At a site this happens: a node fails, an administrator cancels a job,
# a walltime runs out. Here `scancel` ends one of the two jobs while a burst of short tasks runs. The
# scheduler notices the worker is gone and runs its unfinished tasks on the other one: the result is
# still complete, only later.

# %%
#| label: slurm-scancel
if SLURM["up"]:
    t0 = time.perf_counter()
    naps = slurm_client.map(time.sleep, [0.25] * 40, pure=False)  # 40 tasks of a quarter second
    clusters.wait_until(lambda: sum(f.done() for f in naps) >= 4, "the first tasks finishing", DEADLINE)
    subprocess.run(["scancel", worker_jobs[0]], check=True, timeout=30)
    clusters.wait_on_jobs(naps, slurm_client, worker_jobs, what="the burst after scancel")
    slurm_log["scancel"] = {"done": sum(f.status == "finished" for f in naps), "of": len(naps),
                            "workers": len(slurm_client.scheduler_info(n_workers=-1)["workers"]),
                            "seconds": time.perf_counter() - t0, "why": clusters.why_job_ended(worker_jobs[0])}
    del naps
    print(f"$ scancel {worker_jobs[0]}")
    print(slurm_log["scancel"]["why"])
    print(f"all {slurm_log['scancel']['done']} of {slurm_log['scancel']['of']} tasks finished, on "
          f"{slurm_log['scancel']['workers']} remaining worker, {slurm_log['scancel']['seconds']:.1f} s after the burst began")
else:
    print(NO_SLURM)

# %% [markdown]
# `scale(jobs=0)` gives the nodes back: dask-jobqueue closes the workers and cancels their jobs.

# %%
#| label: slurm-scale-down
if SLURM["up"]:
    t0 = time.perf_counter()
    slurm_cluster.scale(jobs=0)
    try:
        clusters.wait_until(lambda: not clusters.queued(worker_jobs), "the worker jobs leaving the queue", 60)
        print(f"scale(jobs=0): the queue was empty again {time.perf_counter() - t0:.1f} s later")
    except clusters.ClusterTrouble:  # never leave a job behind: cancel what scale(0) did not
        stuck = clusters.queued(worker_jobs)
        subprocess.run(["scancel", *stuck], timeout=30)
        clusters.wait_until(lambda: not clusters.queued(worker_jobs), "the worker jobs leaving the queue", 60)
        print(f"scale(jobs=0) had not cancelled job(s) {', '.join(stuck)} after 60 s: scancel did")
    print("$ squeue --me")
    print(clusters.squeue())
else:
    print(NO_SLURM)

# %% [markdown]
# **Adaptive, for real.** A new cluster with `adapt(minimum_jobs=0, maximum_jobs=2)`, then a burst
# of tasks that sleep half a second each: the scheduler sees the backlog and dask-jobqueue submits
# jobs; once the tasks are done and their results let go, the idle workers' jobs are cancelled. (Checking every half second and
# waiting four idle checks before cancelling, instead of the defaults, keeps the demonstration short.)

# %%
#| label: slurm-adapt
if SLURM["up"]:
    with SLURMCluster(**JOB) as adaptive_cluster, Client(adaptive_cluster) as adaptive_client:
        adaptive_cluster.adapt(minimum_jobs=0, maximum_jobs=2, interval="500ms", wait_count=4)
        adaptive_address = adaptive_cluster.scheduler_address
        t0 = time.perf_counter()
        burst = adaptive_client.map(time.sleep, [0.5] * 24, pure=False)
        timeline, burst_done = [], {}

        def burst_over():
            """One look (seconds since the burst, jobs in the queue, workers); true once all is done and cancelled."""
            slurm_jobs.update(job.job_id for job in adaptive_cluster.workers.values())
            timeline.append((time.perf_counter() - t0, len(clusters.queued(slurm_jobs)),
                             len(adaptive_client.scheduler_info(n_workers=-1)["workers"])))
            if not burst_done and all(f.done() for f in burst):
                burst_done["s"] = time.perf_counter() - t0
                burst.clear()  # let go of the results, so that no worker has to keep them
            return burst_done and timeline[-1][1] == 0  # the tasks are done, and every job cancelled again

        clusters.wait_until(burst_over, "adapt() submitting jobs for the burst and cancelling them when idle",
                            DEADLINE)
    changes = [row for k, row in enumerate(timeline) if k == 0 or row[1:] != timeline[k - 1][1:]]
    course.table([{"s after the burst": f"{t:.1f}", "jobs in the queue": jobs, "workers": n}
                  for t, jobs, n in changes], align="rrr")
    print(f"24 tasks done after {burst_done['s']:.1f} s; every job cancelled by {timeline[-1][0]:.1f} s")
    slurm_log["adapt peak jobs"] = max(jobs for _, jobs, _ in timeline)
else:
    print(NO_SLURM)

# %% [markdown]
# **A job that cannot fit.** Ask for more memory than the node has and Slurm refuses the job at
# once: `sbatch` exits with an error and nothing is queued. (Submitted through `scale()`, the same
# refusal only lands in dask-jobqueue's log and the cluster waits for workers that never come, which
# is why `job_script()` and a plain `sbatch` of it are worth a look first.) The third way a job ends
# early, a walltime that runs out mid-computation, costs a minute of waiting, so `tests/test_slurm.py`
# runs it: `wait_on_jobs` stops with Slurm's reason, `TIMEOUT`, and says what to ask for.

# %%
#| label: slurm-too-big
if SLURM["up"]:
    too_big = SLURMCluster(cores=1, memory=f"{2 * SLURM['memory_mb']}MiB", job_mem=f"{2 * SLURM['memory_mb']}M",
                           walltime="00:05:00", queue=SLURM["partition"],
                           scheduler_options={"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"})
    refused = subprocess.run(["sbatch", "--parsable"], input=too_big.job_script(), capture_output=True, text=True,
                             timeout=30)
    too_big.close()
    slurm_log["too big"] = {"returncode": refused.returncode, "queued": clusters.queued(), "stderr": refused.stderr}
    print(f"$ sbatch  # a job asking for --mem={2 * SLURM['memory_mb']}M on a node with {SLURM['memory_mb']} MB")
    print(refused.stderr.strip())
    print(f"exit status {refused.returncode}; jobs queued: {slurm_log['too big']['queued'] or 'none'}")
else:
    print(NO_SLURM)

# %% [markdown]
# **MPI as a batch job.** The MPI π of section 4, now submitted: `srun --mpi=pmi2` starts the ranks as
# the tasks of a job step (at a site, `mpiexec` inside the allocation also works: it asks Slurm where
# to start them). The wall time counts from `sbatch` to the end of the job: queueing and start-up.

# %%
#| label: slurm-mpi
if SLURM["up"] and MPIEXEC is not None and 2 in mpi_runs:
    mpi_cmd = f"srun --mpi=pmi2 python -m course.pi mpi {N_PI}"
    mpi_job = clusters.sbatch(["--ntasks=2", "--cpus-per-task=1", f"--mem={MB_PER_CORE}M", "--time=00:10:00",
                               "--job-name=mpi-pi", "--chdir=labs", f"--output={OUT / 'slurm' / 'mpi-pi-%j.out'}",
                               "--wrap", mpi_cmd.replace("python", sys.executable, 1)], timeout=DEADLINE,
                              what="the MPI job")
    slurm_jobs.add(mpi_job["job_id"])
    slurm_mpi = {**pi.parse(mpi_job["output"]), "wall": mpi_job["seconds"]}
    print(f"$ sbatch --ntasks=2 --cpus-per-task=1 \\\n    --wrap '{mpi_cmd}'")
    print(f"job {mpi_job['job_id']}: {mpi_job['state']}")
    course.table([{"run": "mpiexec -n 2", "π": f"{mpi_runs[2]['pi']:.15f}", "compute s": f"{mpi_runs[2]['seconds']:.2f}",
                   "wall s": f"{mpi_runs[2]['wall']:.2f}"},
                  {"run": "sbatch + srun, 2 tasks", "π": f"{slurm_mpi['pi']:.15f}",
                   "compute s": f"{slurm_mpi['seconds']:.2f}", "wall s": f"{slurm_mpi['wall']:.2f}"}], align="lrrr")
    print(f"wall time in the job: {mpi_job['run_time']} (Slurm's RunTime)")
    print(course.hardware())
elif SLURM["up"]:
    print("No mpiexec here, so the MPI job was not submitted (section 4 says what to install).")
else:
    print(NO_SLURM)

# %%
#| label: slurm-empty
if SLURM["up"]:
    slurm_client.close()
    slurm_cluster.close()
    slurm_left = clusters.queued(slurm_jobs)
    print(f"jobs submitted in this section: {len(slurm_jobs)} ({', '.join(sorted(slurm_jobs, key=int))})")
    print("$ squeue --me")
    print(clusters.squeue())
else:
    print(NO_SLURM)

# %% [markdown]
# ### Exercise 4: your site's job script (10 min)
# Write the `SLURMCluster` (or `PBSCluster`) for one full node of your cluster: all its cores,
# 90 % of its memory, 2 hours, your partition and account, one worker process per 4 cores. Check
# `job_script()` before you submit anything.

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# For a 48-core node with 192 GB on partition `compute`, account `abc123`:
# ```python
# cluster = SLURMCluster(cores=48, processes=12, memory="172GB", walltime="02:00:00",
#                        queue="compute", account="abc123", interface="ib0",
#                        local_directory="$TMPDIR", job_script_prologue=["module load python"])
# print(cluster.job_script())     # --cpus-per-task=48, --mem=161G(iB), -t 02:00:00, -p compute, -A abc123
# cluster.adapt(minimum_jobs=0, maximum_jobs=4)
# client = Client(cluster)
# ```
# 12 processes × 4 threads: pure-Python work prefers more processes, NumPy work more threads.
# `local_directory` puts spilled data on the node's local disk, not the shared file system.
# </details>

# %% [markdown]
# ## 7. A lab as a batch job: the scheduler-file pattern *(core)*
#
# For long runs you do not keep a notebook open: you submit a script. `labs/jobs/run_lab.sbatch`
# runs any lab on a Dask cluster that spans the job's nodes:
#
# 1. activate the software (pixi or a venv, below);
# 2. start `dask scheduler --scheduler-file …` on the job's first node;
# 3. `srun dask worker --scheduler-file …`: one worker per Slurm task, on every node;
# 4. run the lab with `DASK_SCHEDULER_ADDRESS` set. Every lab starts its cluster with
#    `course.clusters.client()`, which then **joins the job's cluster** instead of starting a
#    `LocalCluster` of its own, so the lab's work runs on the job's workers, on every node;
# 5. stop the workers and the scheduler on every exit (a `trap`).
#
# ```bash
# sbatch labs/jobs/run_lab.sbatch labs/07_xarray_dask.py
# COURSE_SIZE=large sbatch labs/jobs/run_lab.sbatch labs/07_xarray_dask.py
# squeue --me          # is it running?
# ```

# %%
#| label: sbatch-template
template = course.ROOT / "labs" / "jobs" / "run_lab.sbatch"
lines = template.read_text().splitlines()
print("\n".join(line for line in lines if line.startswith("#SBATCH")))

# %%
#| label: sbatch-commands
for k, line in enumerate(lines):  # the commands that matter, with their continuation lines
    if line.lstrip().startswith(("dask scheduler", '"${LAUNCH[@]}" dask worker', "export DASK_SCHEDULER_ADDRESS", 'python "$LAB"')):
        print(line.strip())
        while lines[k].endswith("\\"):
            k += 1
            print(lines[k])

# %% [markdown]
# Here it runs a tiny lab, `clusters.hello`, that does what every lab does: it starts its cluster
# with `clusters.client()`. In the job, that call finds `$DASK_SCHEDULER_ADDRESS` and joins the
# job's cluster; the π slices then run on the job's workers. With a Slurm on this machine the lab
# submits it with `sbatch`. Options on the command line override the template's `#SBATCH` lines,
# so the site's two-node request becomes one node with two one-core tasks, and the job ends by
# itself when the lab does. Without Slurm the same file runs every step here under `bash`.
# Either way nothing may be left behind.

# %%
print(inspect.getsource(clusters.hello))

# %%
#| label: sbatch-run
job_dir = OUT / "job"
job_dir.mkdir(exist_ok=True)  # Slurm writes the job's output file there, and fails the job if it cannot
bash = shutil.which("bash")
job_output, job_leftovers, batch_job = "", [], None
env = dict(os.environ, COURSE_RUN_DIR=str(job_dir), VIRTUAL_ENV=sys.prefix,
           PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
t0 = time.perf_counter()
if SLURM["up"]:
    sizes = ["--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1", f"--mem={MB_PER_CORE}M"]
    print(f"$ sbatch {' '.join(sizes)} \\\n    labs/jobs/run_lab.sbatch labs/course/clusters.py hello")
    try:
        batch_job = clusters.sbatch([*sizes, "--time=00:10:00", f"--output={job_dir / 'slurm-%j.out'}",
                                     str(template), "labs/course/clusters.py", "hello"],
                                    timeout=DEADLINE, what="the batch template", env=env)
        slurm_jobs.add(batch_job["job_id"])
        job_output = batch_job["output"]
        print(f"job {batch_job['job_id']}: {batch_job['state']} after {batch_job['run_time']} (Slurm's RunTime); "
              f"its output file:")
    except clusters.ClusterTrouble as err:
        job_output = str(err)
elif bash is None:
    print("No bash here (Windows without Git Bash or WSL): the batch template was not tried.")
else:
    try:
        done = subprocess.run([bash, str(template), "labs/course/clusters.py", "hello"], cwd=course.ROOT, env=env,
                              capture_output=True, text=True, timeout=180)
        job_output = done.stdout + (f"[exit status {done.returncode}] {done.stderr[-800:]}" if done.returncode else "")
    except subprocess.TimeoutExpired as err:
        job_output = f"the job did not finish in {err.timeout} s"
job_s = time.perf_counter() - t0
if job_output:
    job_leftovers = [p.pid for p in psutil.process_iter(["cmdline"]) if str(job_dir) in " ".join(p.info["cmdline"] or [])]
    print(job_output.strip())
    print(f"\nwhole job: {job_s:.1f} s; processes left behind: {job_leftovers or 'none'}")

# %% [markdown]
# ### Where pixi fits on a cluster
#
# The course's environment is described by `pixi.toml`. The repository ships no lock file:
# `pixi install` solves the environment and writes `pixi.lock` next to `pixi.toml`. Keep that file
# (copy it, or commit it in your own project): with it, every later install gets exactly the same
# packages, on your laptop and on the cluster.
#
# - On the **login node** (it has internet): `pixi install`. The environment lands in `.pixi/` inside
#   the project, on the shared file system, so every compute node sees it.
# - In the **job**: `pixi run python labs/…` runs one command in that environment, or
#   `eval "$(pixi shell-hook)"` activates it once for the whole script (what the template does).
#   No network needed.
# - Keep the project on a file system the nodes share (home or project space), not on node-local
#   `/tmp`. MPI and GPU drivers usually come from the site (`module load`); the environment only
#   needs to match them.
#
# ## 8. The cloud: the same client, another address *(optional)*
#
# Managed services (Coiled, Saturn Cloud, Nebari/QHub, Kubernetes with `dask-kubernetes`, or
# `dask-cloudprovider` for AWS, GCP and Azure) start the scheduler and workers on cloud machines
# for you and return an address or a cluster object. The analysis code does not change:
#
# ```python
# client = Client("tls://scheduler.example.org:8786")   # or Client(cluster)
# ds = xr.open_zarr("s3://bucket/era5.zarr")             # read data where it lives (episode 09)
# ```
#
# Put the data next to the workers (object storage in the same region), use TLS, and shut the
# cluster down when you are done: idle cloud workers cost money by the hour.

# %% [markdown]
# ## Key points
# - A Dask cluster is a scheduler, workers and a client: separate processes that find each other by
#   address (or a scheduler file) and talk TCP. Same code on one machine, a cluster or the cloud.
# - Start them with `dask scheduler` / `dask worker`; bind what need not be public to `127.0.0.1`,
#   use free ports, and stop everything when you are done.
# - Workers need your code and your environment: install it, or share it on their `PYTHONPATH`.
# - Reach a remote dashboard with `ssh -L 8787:localhost:<port> …`.
# - On HPC, dask-jobqueue writes and submits job scripts (`job_script()` to check them);
#   `adapt()` grows and shrinks the number of jobs with the work. `squeue --me` shows them; nothing
#   may be left in the queue when you are done.
# - Jobs end early (walltime, `scancel`, too much memory asked): Dask reruns lost tasks on the
#   workers that remain; with no worker left, stop and read why in `scontrol show job <id>`.
# - For batch runs: a job script with the scheduler-file pattern; pixi installs on the login node
#   and runs in the job.
# - MPI runs N copies of one program with explicit messages: best for tightly coupled codes. Dask
#   schedules a task graph: best for many tasks and out-of-core analysis.

# %% [markdown]
# ## Checks
# Run by `pytest labs/05_clusters.py`; the slides never show this cell.

# %% tags=["checks"]
def test_cli_cluster_binds_localhost_only():
    assert len(cli_listening) >= 6  # scheduler (2) + 2 × (nanny + worker) + worker dashboards
    assert {ip for _, ip, _ in cli_listening} == {"127.0.0.1"}, cli_listening
    assert cli.address.startswith("tcp://127.0.0.1:") and cli.dashboard_link.startswith("http://127.0.0.1:")


def test_cli_cluster_stopped_cleanly():
    assert still_alive == [] and stopped["left_running"] == []
    assert closed
    assert clusters.stray_children() == []


def test_dask_and_mpi_agree_on_pi():
    for value, _ in dask_runs.values():
        assert abs(value - math.pi) < 1e-9
    for r in mpi_runs.values():
        assert abs(r["pi"] - math.pi) < 1e-9
    if 2 in mpi_runs:
        assert mpi_runs[2]["pi"] == dask_runs[2][0]  # same slices, same additions: identical bits


def test_mpi_ran_when_available():
    if MPIEXEC is not None:
        assert set(mpi_runs) == {1, 2} and mpi_runs[2]["ranks"] == 2


def test_job_scripts_contain_requested_resources():
    assert script_missing == {"SLURM": [], "PBS": []}, script_missing
    assert "module load python" in slurm_script
    assert adaptive_jobs_requested == 0
    assert {port for _, _, port in hpc_listening} == hpc_ports  # its scheduler and dashboard ...
    assert {ip for _, ip, _ in hpc_listening} == {"127.0.0.1"}  # ... listen on this machine only


def test_batch_template_ran_and_cleaned_up():
    if bash is None and not SLURM["up"]:
        return
    assert "joined the job's cluster" in job_output and ": 2 workers" in job_output, job_output
    assert "pi=3.14159" in job_output and "ran on 2 of its workers" in job_output, job_output
    assert "cluster stopped" in job_output
    assert job_leftovers == []
    if SLURM["up"]:  # a real job: it ended by itself, and its workers were the tasks of its srun step
        assert batch_job["state"] == "COMPLETED", job_output
        assert f"ran in Slurm job step {batch_job['job_id']}.0" in job_output, job_output


def test_slurm_used_where_ci_started_one():
    if os.environ.get("COURSE_REQUIRE_SLURM") == "1":  # .ci/run sets it once .ci/slurm-up succeeded
        assert SLURM["up"], SLURM


def test_slurm_worker_jobs_ran_the_computation():
    if not SLURM["up"]:
        return
    assert len(worker_jobs) == 2 and all(j in slurm_squeue for j in worker_jobs), slurm_squeue
    assert slurm_squeue.count("RUNNING") == 2, slurm_squeue
    assert slurm_pi == dask_runs[2][0]  # same slices, same additions as on the command-line cluster


def test_slurm_failures_are_caught_and_explained():
    if not SLURM["up"]:
        return
    cancelled = slurm_log["scancel"]
    assert cancelled["done"] == cancelled["of"] and cancelled["workers"] == 1, cancelled
    assert "was cancelled" in cancelled["why"], cancelled
    too_big = slurm_log["too big"]
    assert too_big["returncode"] != 0 and too_big["queued"] == [], too_big
    assert "not available" in too_big["stderr"] or "can not be satisfied" in too_big["stderr"], too_big


def test_slurm_adapt_submitted_and_cancelled_jobs():
    if not SLURM["up"]:
        return
    assert slurm_log["adapt peak jobs"] >= 1 and timeline[-1][1] == 0, timeline
    assert len(slurm_jobs) >= 4  # 2 worker jobs, at least one adaptive job, the batch template (+ MPI)


def test_mpi_batch_job_agrees_with_mpiexec():
    if not (SLURM["up"] and 2 in mpi_runs):
        return
    assert mpi_job["state"] == "COMPLETED"
    assert slurm_mpi["ranks"] == 2 and slurm_mpi["pi"] == mpi_runs[2]["pi"]


def test_slurm_queue_empty_and_nothing_left():
    if not SLURM["up"]:
        return
    assert slurm_left == [] and clusters.queued(slurm_jobs) == []
    mine = re.compile(r"slurmstepd: \[(\d+)\.")

    def leftovers():
        found = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            step = mine.match(cmd)
            if (step and step.group(1) in slurm_jobs) or slurm_address in cmd or adaptive_address in cmd:
                found.append(f"{p.pid}: {cmd[:80]}")
        return found

    deadline = time.monotonic() + 30  # a job's last processes may take a moment to exit
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert leftovers() == []


course.run_checks(globals())
