"""π by the midpoint rule with MPI: every rank sums its own slice, rank 0 adds the slices up.

Run it with the ``mpiexec`` of your MPI (the course's pip/conda environment ships MPICH's):

    mpiexec -n 2 python labs/mpi_pi.py 1000000000

Rank 0 prints one line that episode 05 parses:

    pi=3.14159265358979... ranks=2 n=50000000 seconds=0.1234

``seconds`` is the compute time between two barriers (process start-up excluded). The slices are the
same ``pi_tasks.slices`` a Dask cluster gets in episode 05, so the two results can be compared exactly.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # find pi_tasks when run as a script

import pi_tasks  # noqa: E402

LINE = re.compile(r"pi=(?P<pi>\S+) ranks=(?P<ranks>\d+) n=(?P<n>\d+) seconds=(?P<seconds>\S+)")


def parse(output: str) -> dict:
    """The numbers from rank 0's line: ``{"pi": float, "ranks": int, "n": int, "seconds": float}``."""
    m = LINE.search(output)
    if m is None:
        raise ValueError(f"no 'pi=... ranks=...' line in the MPI program's output: {output[-300:]!r}")
    return {"pi": float(m["pi"]), "ranks": int(m["ranks"]), "n": int(m["n"]), "seconds": float(m["seconds"])}


def main(argv: list[str]) -> int:
    from mpi4py import MPI  # imported here so that `import mpi_pi` works without MPI

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    n = int(argv[1]) if len(argv) > 1 else 100_000_000

    comm.Barrier()
    start = MPI.Wtime()
    lo, hi = pi_tasks.slices(n, size)[rank]  # this rank's share of the work
    part = pi_tasks.pi_slice_numpy(lo, hi, n)
    parts = comm.gather(part, root=0)  # rank 0 collects the parts in rank order
    comm.Barrier()
    elapsed = MPI.Wtime() - start
    if rank == 0:
        print(f"pi={sum(parts)!r} ranks={size} n={n} seconds={elapsed:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
