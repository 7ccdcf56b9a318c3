"""Episode 05 on a real Slurm: the batch template and a lab run as submitted jobs, MPI as a batch job,
and the ways a job ends early, each caught, explained and leaving nothing in the queue.

    bash .ci/slurm-up                 # as root on Debian/Ubuntu: a one-node Slurm on this machine
    pytest tests/test_slurm.py -rs    # then: bash .ci/slurm-down

Where no Slurm runs jobs on this machine the tests skip and say why (pytest -rs counts them).
`.ci/run` sets COURSE_REQUIRE_SLURM=1 when its slurm-up succeeded: then a missing Slurm fails instead.
Every wait has a deadline; a job still queued at its deadline is cancelled and its log shown.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
LABS = ROOT / "labs"
if str(LABS) not in sys.path:
    sys.path.insert(0, str(LABS))

from course import clusters, pi  # noqa: E402

SLURM = clusters.slurm()
REQUIRED = os.environ.get("COURSE_REQUIRE_SLURM") == "1"
needs_slurm = pytest.mark.skipif(
    not SLURM["up"] and not REQUIRED,
    reason=f"no Slurm on this machine ({SLURM.get('why')}): start one with `bash .ci/slurm-up` (root, apt-get)")
DEADLINE = 240  # seconds any one job may take here before it is cancelled


@pytest.fixture
def slurm():
    if not SLURM["up"]:
        pytest.fail(f"COURSE_REQUIRE_SLURM=1 but no Slurm answers: {SLURM['why']}")
    before = set(clusters.queued())
    yield SLURM
    left = clusters.queued()
    assert set(left) <= before, f"jobs left in the queue: {sorted(set(left) - before)}"


def env_for_jobs(**extra) -> dict:
    """This Python's environment, as a job must see it (sbatch passes the submitter's environment on)."""
    return dict(os.environ, VIRTUAL_ENV=sys.prefix, **extra,
                PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))


def template_job(slurm, run_dir: Path, lab: list[str], timeout: float = DEADLINE, **env) -> dict:
    """The batch template as a real job: one node, two one-core tasks, memory that fits."""
    mem = slurm["memory_mb"] // slurm["cpus"]
    return clusters.sbatch(["--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1", f"--mem={mem}M",
                            "--time=00:10:00", f"--output={run_dir / 'slurm-%j.out'}",
                            str(LABS / "jobs" / "run_lab.sbatch"), *lab],
                           timeout=timeout, env=env_for_jobs(COURSE_RUN_DIR=str(run_dir), **env))


def processes_naming(text: str) -> list[str]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if text in cmd:
            out.append(f"{p.pid}: {cmd[:100]}")
    return out


def no_step_left(job_id: str, timeout: float = 30) -> list[str]:
    """Processes of the job still running after ``timeout`` s: its slurmstepd, or anything naming its run dir."""
    end = time.monotonic() + timeout
    while True:
        left = processes_naming(f"slurmstepd: [{job_id}.")
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.5)


@needs_slurm
@pytest.mark.slow
def test_a_lab_at_the_default_size_runs_as_a_job(slurm, tmp_path):
    """Lab 07 (Xarray on Dask), the template's default lab, as a script in a real job: it joins the job's
    cluster and passes its checks. (Lab 05 submits the template with the tiny lab `clusters.hello`.)"""
    job = template_job(slurm, tmp_path, ["labs/07_xarray_dask.py"], COURSE_SIZE="small")
    out = job["output"]
    assert job["state"] == "COMPLETED", out[-3000:]
    assert "connecting to the cluster at $DASK_SCHEDULER_ADDRESS" in out, out[-3000:]
    assert "cluster stopped" in out
    assert no_step_left(job["job_id"]) == [] and processes_naming(str(tmp_path)) == []


@needs_slurm
def test_a_job_past_its_deadline_is_cancelled_and_shows_its_log(slurm, tmp_path):
    with pytest.raises(clusters.ClusterTrouble, match="did not end within 5 s and was cancelled") as err:
        clusters.sbatch(["--ntasks=1", "--mem=100M", "--time=00:05:00", f"--output={tmp_path / 'nap-%j.out'}",
                         "--wrap", "echo the nap begins; sleep 300"], timeout=5, what="a long nap")
    assert "the nap begins" in str(err.value)  # the job's log so far
    job_id = re.search(r"\(job (\d+)\)", str(err.value)).group(1)
    assert clusters.queued([job_id]) == [] and no_step_left(job_id) == []


@needs_slurm
def test_more_memory_than_the_node_has_is_refused_at_once(slurm, tmp_path):
    too_much = 2 * slurm["memory_mb"]
    with pytest.raises(clusters.ClusterTrouble, match="sbatch refused") as err:
        clusters.sbatch([f"--mem={too_much}M", f"--output={tmp_path / 'big-%j.out'}", "--wrap", "true"],
                        timeout=30, what=f"a job asking for {too_much} MB")
    assert "not available" in str(err.value) or "can not be satisfied" in str(err.value)


@needs_slurm
@pytest.mark.slow
def test_a_walltime_ending_mid_computation_is_explained(slurm, tmp_path):
    """One worker job with a one-minute walltime (Slurm's shortest) and work for several minutes."""
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    mem = slurm["memory_mb"] // slurm["cpus"]
    with SLURMCluster(cores=1, processes=1, memory=f"{mem}MiB", job_mem=f"{mem}M", walltime="00:01:00",
                      queue=slurm["partition"], log_directory=str(tmp_path),
                      scheduler_options={"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"},
                      worker_extra_args=["--dashboard-address", "127.0.0.1:0"],
                      job_script_prologue=[f"export PYTHONPATH={LABS}"]) as cluster:
        cluster.scale(jobs=1)
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=DEADLINE)
            jobs = [job.job_id for job in cluster.workers.values()]
            naps = client.map(time.sleep, [0.5] * 600, pure=False)  # five minutes of work for one worker
            start = time.monotonic()
            with pytest.raises(clusters.ClusterTrouble, match="reached its walltime") as err:
                clusters.wait_on_jobs(naps, client, jobs, what="five minutes of naps", timeout=DEADLINE)
            assert time.monotonic() - start < 150  # stopped when the job ended, not at the deadline
            assert "--lifetime" in str(err.value) and "00:01:00" in str(err.value)
            client.cancel(naps)
    assert clusters.queued(jobs) == []


@needs_slurm
def test_mpi_pi_as_a_batch_job_matches_mpiexec(slurm, tmp_path):
    """section 4's MPI π, with mpiexec inside a two-task allocation (the lab submits it with srun --mpi=pmi2)."""
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec: install mpich")
    n = 50_000_000
    plain = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "course.pi", "mpi", str(n)], cwd=LABS,
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr
    job = clusters.sbatch(["--ntasks=2", "--cpus-per-task=1", "--mem=1000M", "--time=00:05:00", "--chdir=labs",
                           f"--output={tmp_path / 'mpi-%j.out'}",
                           "--wrap", f"{mpiexec} -n 2 {sys.executable} -m course.pi mpi {n}"],
                          timeout=DEADLINE, what="MPI π", env=env_for_jobs())
    assert job["state"] == "COMPLETED", job["output"]
    batch, direct = pi.parse(job["output"]), pi.parse(plain.stdout)
    assert batch["ranks"] == direct["ranks"] == 2
    assert batch["pi"] == direct["pi"] and abs(batch["pi"] - math.pi) < 1e-9  # the same slices, the same bits
    assert no_step_left(job["job_id"]) == []


def test_slurm_up_changes_nothing_where_it_cannot_run(tmp_path):
    """Without apt-get (and without Slurm's programs) the start script lists what is missing and exits 2."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash on this machine")
    bin_dir = tmp_path / "bin"  # a PATH with only what the script needs before it gives up
    bin_dir.mkdir()
    for prog in ("id", "grep"):
        (bin_dir / prog).symlink_to(shutil.which(prog))
    conf = Path("/etc/slurm/slurm.conf")
    before = conf.stat().st_mtime if conf.exists() else None
    done = subprocess.run([bash, str(ROOT / ".ci" / "slurm-up")], env={"PATH": str(bin_dir)},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "apt-get" in done.stdout and "not starting Slurm" in done.stdout, done.stdout
    assert (conf.stat().st_mtime if conf.exists() else None) == before
