"""Checks for episodes 04 and 05 beyond the labs themselves: clusters start and stop cleanly,
bind 127.0.0.1 only, HPC job scripts carry the requested resources, and MPI runs.

    pytest tests/test_clusters.py -q
"""

from __future__ import annotations

import logging
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

from course import clusters as cluster_tools  # noqa: E402
from course import pi  # noqa: E402


def _alive(pids):
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def _system_listeners(ports):
    """Sockets anywhere on the machine still listening on one of ``ports`` (empty if not allowed to look)."""
    try:
        conns = psutil.net_connections(kind="inet")
    except psutil.AccessDenied:  # macOS without root
        return []
    return [c for c in conns if c.status == psutil.CONN_LISTEN and c.laddr.port in ports]


def test_command_line_cluster_starts_binds_localhost_and_stops_cleanly(tmp_path):
    from distributed import Client

    before = set(p.pid for p in psutil.Process().children(recursive=True))
    cluster = cluster_tools.CommandLineCluster(n_workers=2, workdir=tmp_path, timeout=90)
    try:
        pids = cluster.pids()
        listening = cluster.listening()
        client = Client(cluster.address, timeout=30)
        n = 1_000_000
        parts = client.map(pi.pi_slice_numpy, *zip(*pi.slices(n, 4)), n=n)
        estimate = sum(client.gather(parts))
        n_workers = len(client.scheduler_info()["workers"])
    except BaseException:
        cluster.close()
        raise
    stopped = cluster.close(client)
    client.close()

    # it ran: a scheduler, two `dask worker` commands, and the worker processes their nannies started
    assert n_workers == 2
    assert abs(estimate - math.pi) < 1e-9
    assert len(pids) >= 5
    # every server and dashboard listened on 127.0.0.1, and only there
    ports = {port for _, _, port in listening}
    assert {ip for _, ip, _ in listening} == {"127.0.0.1"}, listening
    scheduler_port = int(cluster.address.rsplit(":", 1)[1])
    dashboard_port = int(cluster.dashboard_link.split(":")[2].split("/")[0])
    assert {scheduler_port, dashboard_port} <= ports
    assert len(ports) >= 6  # scheduler + dashboard + 2 × (nanny + worker [+ worker dashboard])
    # and afterwards: no process left behind, no port left open
    assert stopped["left_running"] == []
    assert _alive(pids) == []
    after = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert [pid for pid in after if "resource_tracker" not in " ".join(psutil.Process(pid).cmdline())] == []
    assert cluster_tools.ports_closed(ports)
    assert _system_listeners(ports) == []


def test_failed_start_says_why_and_leaves_nothing(tmp_path):
    before = set(p.pid for p in psutil.Process().children(recursive=True))
    with pytest.raises(cluster_tools.ClusterStartError) as err:
        cluster_tools.CommandLineCluster(n_workers=1, memory_limit="not-a-size", workdir=tmp_path, timeout=60)
    assert "exited" in str(err.value) or "workers connected" in str(err.value)
    scheduler_file = tmp_path / "scheduler.json"
    if scheduler_file.exists():
        import json

        info = json.loads(scheduler_file.read_text())
        ports = [int(info["address"].rsplit(":", 1)[1]), info["services"]["dashboard"]]
        assert cluster_tools.ports_closed(ports)
    new = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert [pid for pid in _alive(new) if "resource_tracker" not in " ".join(psutil.Process(pid).cmdline())] == []


def test_local_cluster_dashboard_binds_localhost_only():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", memory_limit="1GiB") as cluster, Client(cluster) as client:
        me = psutil.Process()
        workers = [c.pid for c in me.children(recursive=True)]
        dashboard_port = int(client.dashboard_link.split(":")[2].split("/")[0])
        scheduler_port = int(client.scheduler.address.rsplit(":", 1)[1])
        mine = [(pid, ip, port) for pid, ip, port in cluster_tools.listening([me.pid] + workers)
                if pid in workers or port in {dashboard_port, scheduler_port}]
    assert {dashboard_port, scheduler_port} <= {port for _, _, port in mine}
    assert {ip for _, ip, _ in mine} == {"127.0.0.1"}, mine
    assert cluster_tools.ports_closed({port for _, _, port in mine})


@pytest.mark.parametrize("kind", ["slurm", "pbs"])
def test_job_scripts_contain_the_requested_resources(kind):
    script = cluster_tools.job_script(kind, cores=16, processes=4, memory="64GiB", walltime="12:00:00",
                                      queue="long", account="climate42")
    if kind == "slurm":
        assert re.search(r"^#SBATCH --cpus-per-task=16$", script, re.M), script
        assert int(re.search(r"^#SBATCH --mem=(\d+)G$", script, re.M).group(1)) == 64
        assert re.search(r"^#SBATCH -t 12:00:00$", script, re.M)
        assert re.search(r"^#SBATCH -p long$", script, re.M)
        assert re.search(r"^#SBATCH -A climate42$", script, re.M)
    else:
        select = re.search(r"^#PBS -l select=1:ncpus=(\d+):mem=(\d+)GB$", script, re.M)
        assert select and select.groups() == ("16", "64"), script
        assert re.search(r"^#PBS -l walltime=12:00:00$", script, re.M)
        assert re.search(r"^#PBS -q long$", script, re.M)
        assert re.search(r"^#PBS -A climate42$", script, re.M)
    # 16 cores in 4 worker processes: 4 threads each, a quarter of the memory each
    assert "--nworkers 4" in script and "--nthreads 4" in script
    assert re.search(r"--memory-limit 16(\.00)?GiB", script)
    # the workers would connect to a scheduler bound to 127.0.0.1 (this machine only)
    assert "tcp://127.0.0.1:" in script


def test_batch_template_is_valid_bash_with_the_scheduler_file_pattern():
    template = LABS / "jobs" / "run_lab.sbatch"
    text = template.read_text()
    for line in ("#SBATCH --nodes=", "#SBATCH --cpus-per-task=", "#SBATCH --mem=", "#SBATCH --time="):
        assert line in text, line
    # partition and account suit one site only: given at submission (sbatch -p/-A, SBATCH_PARTITION), not in the file
    assert not re.search(r"^#SBATCH\s+(--partition|--account|-p|-A)\b", text, re.M)
    assert "SBATCH_PARTITION" in text and "SBATCH_ACCOUNT" in text
    assert "--scheduler-file" in text and "DASK_SCHEDULER_ADDRESS" in text and "trap stop_cluster EXIT" in text
    assert "--dashboard-address 127.0.0.1:0" in text
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash on this machine")
    assert subprocess.run([bash, "-n", str(template)], capture_output=True).returncode == 0


def test_mpi_pi_under_mpiexec():
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec: install mpich")
    n = 10_000_000
    done = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "course.pi", "mpi", str(n)], cwd=LABS,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = pi.parse(done.stdout)
    assert result["ranks"] == 2 and result["n"] == n
    serial = sum(pi.pi_slice_numpy(a, b, n) for a, b in pi.slices(n, 2))
    assert result["pi"] == serial  # the same slices added in the same order
    assert abs(result["pi"] - math.pi) < 1e-9


# --------------------------------------------------------------------------- client() and compute() deadlines


def _exit_the_worker():
    os._exit(1)  # what a worker killed by its nanny looks like to the scheduler


def _sleep(seconds):
    time.sleep(seconds)
    return seconds


def test_client_owns_its_cluster_and_compute_takes_lists_and_futures():
    import dask.array as da

    client = cluster_tools.client(n_workers=1, silence_logs=logging.ERROR)
    cluster = client.cluster
    try:
        a = da.ones(100, chunks=10)
        assert cluster_tools.compute([a.sum(), a.mean()], client, what="two results") == [100.0, 1.0]
        assert cluster_tools.wait_for(client.map(_sleep, [0, 0]), client) == [0, 0]
    finally:
        client.close()
    assert cluster.status.name == "closed"  # closing the client stopped the cluster it started


def test_compute_deadline_says_what_happened_and_cancels():
    with cluster_tools.client(n_workers=1, silence_logs=logging.ERROR) as client:
        start = time.monotonic()
        with pytest.raises(cluster_tools.ClusterTrouble, match="deadline of 1 s") as err:
            cluster_tools.compute(client.submit(_sleep, 30, pure=False), client, what="a long nap", timeout=1)
        assert time.monotonic() - start < 15
        assert "COURSE_DEADLINE_S" in str(err.value)
        time.sleep(0.5)
        assert not any(client.processing().values())  # the work was cancelled, the worker is free


def test_a_library_that_waits_by_itself_gets_a_deadline_too():
    """ml.call_with_deadline: the joblib/xgboost path, whose own waiting no deadline reaches."""
    from course import ml

    with cluster_tools.client(n_workers=1, silence_logs=logging.ERROR) as client:
        start = time.monotonic()
        with pytest.raises(cluster_tools.ClusterTrouble, match="deadline of 1 s"):
            ml.call_with_deadline(client, lambda: client.submit(_sleep, 30, pure=False).result(),
                                  "a library's long nap", timeout=1)
        assert time.monotonic() - start < 75
        time.sleep(0.5)
        assert not any(client.processing().values())  # its tasks were cancelled, the worker is free
        assert ml.call_with_deadline(client, lambda: client.submit(_sleep, 0).result(), timeout=30) == 0


def test_compute_reports_a_killed_worker_with_its_cause():
    import dask
    from distributed import KilledWorker  # (also loads distributed's configuration defaults)

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        client = cluster_tools.client(n_workers=1, silence_logs=logging.CRITICAL)
    with client:
        with pytest.raises(cluster_tools.ClusterTrouble, match="a worker was killed") as err:
            cluster_tools.compute(client.submit(_exit_the_worker, pure=False), client, what="the doomed task", timeout=60)
        assert isinstance(err.value.__cause__, KilledWorker)
        assert "smaller chunks" in str(err.value)


def test_compute_stops_when_every_worker_stays_paused(monkeypatch):
    import dask
    import distributed  # noqa: F401  (loads its configuration defaults before we change them)

    monkeypatch.setattr(cluster_tools, "PAUSED_GRACE_S", 2.0)
    # a limit below what an idle worker uses: paused from the start; terminate off, so it is never killed
    with dask.config.set({"distributed.worker.memory.terminate": False, "distributed.worker.memory.spill": False,
                          "distributed.worker.memory.target": False}):
        client = cluster_tools.client(n_workers=1, memory_limit="60MiB", silence_logs=logging.CRITICAL)
    with client:
        deadline = time.monotonic() + 30
        while not all(w["status"] == "paused" for w in client.scheduler_info()["workers"].values()):
            assert time.monotonic() < deadline, "the worker never paused"
            time.sleep(0.2)
        with pytest.raises(cluster_tools.ClusterTrouble, match="paused") as err:
            cluster_tools.compute(client.submit(_sleep, 0, pure=False), client, what="a paused job", timeout=60)
        assert "memory_limit" in str(err.value)


def test_client_joins_the_cluster_named_in_the_environment(monkeypatch):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR) as batch_cluster:
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", batch_cluster.scheduler_address)
        with cluster_tools.client(n_workers=3) as joined:
            assert joined.scheduler.address == batch_cluster.scheduler_address
            assert len(joined.scheduler_info()["workers"]) == 1  # the job's workers, not three new ones
        assert batch_cluster.status.name == "running"  # leaving the client does not stop the job's cluster
        with cluster_tools.client(n_workers=1, local_only=True, silence_logs=logging.ERROR) as own:
            assert own.scheduler.address != batch_cluster.scheduler_address
