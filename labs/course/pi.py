"""π, the course's running example: every worker function that labs send to threads, processes,
Dask workers and MPI ranks (``from course import pi``).

* **Monte-Carlo darts** (labs 01–03): ``count_hits_python``, ``count_hits_numpy``, ``hits_of_chunk``, …
* **Checkpointing** (lab 03): ``checkpoint_chunk``, ``checkpointed_hits``.
* **Midpoint-rule slices** (labs 04–05): ``slices``, ``pi_slice_python``, ``pi_slice_numpy``.
* **MPI** (lab 05): ``mpiexec -n 2 python -m course.pi mpi N`` (run from ``labs/``), and ``parse``.

The compiled darts (Numba, Cython, C++) live beside this file in ``pi_numba.py``, ``pi_cython.pyx`` and
``pi_cpp.cpp``: they import Numba or need a compiler, and a worker process that only wants NumPy should
not pay for that.

Throw darts at the unit square; the fraction that lands inside the quarter circle x² + y² ≤ 1 is π/4.

The work is split into *chunks*. Chunk ``i`` of a run with seed ``base`` always starts its random numbers
from ``chunk_seed(base, i)``, whichever generator draws them, so the total number of hits does not depend
on how many workers share the chunks, nor on which worker gets which chunk: serial and parallel runs give
the same answer, bit for bit. Four ways to draw the darts, all started from that seed:

* ``count_hits_python``   a Python loop over ``random.Random`` (Mersenne Twister, MT19937), labs 01–02;
* ``count_hits_numpy``    NumPy's own generator (PCG64), in blocks, labs 01–03;
* ``count_hits_splitmix`` a Python loop over *SplitMix64*, a generator of a few integer operations that
  Numba, Cython and C++ compile to the same machine-level steps: lab 03's like-for-like π ladder;
* ``count_hits_splitmix_numpy``  the same SplitMix64 darts, drawn by whole-array NumPy operations.

The two SplitMix64 versions and every compiled one count exactly the same hits for the same chunk.

These functions live in a module rather than in the labs because of the *spawn* start method (the
default on macOS and Windows): a spawned worker process starts a fresh Python, imports the module
named in the pickled task and looks the function up there. A function defined in a notebook or a
script's ``__main__`` cannot be found that way.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from pathlib import Path

import numpy as np

# Darts drawn at a time by count_hits_numpy, into buffers that each thread keeps between calls. Fresh
# arrays on every block would make the operating system hand out (and zero) new memory again and
# again; with glibc on Linux that costs the *main* thread (and so every serial run and every worker
# process) up to three times more than a worker thread, and muddles every comparison in labs 01–03.
BLOCK = 2**18
_buffers = threading.local()


def stderr(n: int) -> float:
    """Standard error of the π estimate from ``n`` samples: 4·sqrt(p(1-p)/n) with p = π/4."""
    p = np.pi / 4
    return 4 * float(np.sqrt(p * (1 - p) / n))


def split(n: int, chunks: int) -> list[int]:
    """``n`` samples as ``chunks`` near-equal chunk sizes (the first ones one larger)."""
    q, r = divmod(n, chunks)
    return [q + (i < r) for i in range(chunks)]


# ---------------------------------------------------------------------------------------------------
# The random numbers. SplitMix64 (Steele, Lea & Flood 2014) steps a 64-bit state by a constant γ and
# scrambles it with mix64. These few lines serve Python ints, NumPy uint64 arrays, and Numba, which
# compiles this very code (course/pi_numba.py); pi_cython.pyx and pi_cpp.cpp spell the same steps in
# their own languages.

MASK = (1 << 64) - 1  # keeps Python ints to 64 bits, as the machine's integers wrap by themselves
GAMMA = 0x9E3779B97F4A7C15  # the golden-ratio increment
TO_UNIT = 2.0**-53  # the top 53 bits of a 64-bit integer -> a float in [0, 1)


def mix64(z):
    """SplitMix64's scrambler: a 64-bit integer (or array of them) -> a random-looking one."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def chunk_seed(base: int, i: int) -> int:
    """The seed of chunk ``i`` of a run with seed ``base``: the one place the course seeds its darts."""
    return mix64((base * GAMMA + i) & MASK)


def chunk_seeds(base: int, chunks: int) -> np.ndarray:
    """``chunk_seed(base, i)`` for ``i`` in ``range(chunks)``, as the uint64 array compiled code takes."""
    return np.array([chunk_seed(base, i) for i in range(chunks)], dtype=np.uint64)


def splitmix_hits(n, seed):
    """Hits among ``n`` SplitMix64 darts from state ``seed``: a plain loop, which Numba compiles as is."""
    state = seed & MASK
    hits = 0
    for _ in range(n):
        state = (state + GAMMA) & MASK
        x = (mix64(state) >> 11) * TO_UNIT
        state = (state + GAMMA) & MASK
        y = (mix64(state) >> 11) * TO_UNIT
        if x * x + y * y <= 1.0:
            hits += 1
    return hits


def count_hits_splitmix(n: int, base: int = 0, i: int = 0) -> int:
    """Hits in n SplitMix64 darts (chunk i of seed base), by the plain Python loop above."""
    return splitmix_hits(n, chunk_seed(base, i))


def count_hits_splitmix_numpy(n: int, base: int = 0, i: int = 0) -> int:
    """The same darts as :func:`count_hits_splitmix`, drawn with whole-array NumPy operations.

    Dart k (from 0) of a chunk takes states ``seed + (2k+1)·γ`` and ``seed + (2k+2)·γ``; NumPy's uint64
    arithmetic wraps around like the machine's, so no mask is needed for the arrays."""
    seed = chunk_seed(base, i)
    block = BLOCK // 2
    steps = np.arange(1, 2 * block + 1, dtype=np.uint64) * np.uint64(GAMMA)  # (1..2m)·γ, wrapped
    hits = 0
    for start in range(0, n, block):
        m = min(block, n - start)
        state = steps[: 2 * m] + np.uint64((seed + 2 * start * GAMMA) & MASK)
        u = (mix64(state) >> 11) * TO_UNIT
        x, y = u[0::2], u[1::2]
        hits += int(np.count_nonzero(x * x + y * y <= 1.0))
    return hits


def count_hits_python(n: int, base: int = 0, i: int = 0) -> int:
    """Hits in n darts (chunk i of seed base), by a plain Python loop."""
    rng = random.Random(chunk_seed(base, i))  # Mersenne Twister
    hits = 0
    for _ in range(n):
        x = rng.random()
        y = rng.random()
        if x * x + y * y <= 1.0:
            hits += 1
    return hits


def count_hits_numpy(n: int, base: int = 0, i: int = 0) -> int:
    """Hits in ``n`` darts, drawn by NumPy in blocks of at most ``BLOCK`` (chunk ``i`` of seed ``base``)."""
    rng = np.random.default_rng(chunk_seed(base, i))  # PCG64, NumPy's default generator
    if not hasattr(_buffers, "xy"):
        _buffers.xy = np.empty((2, BLOCK)), np.empty(BLOCK, dtype=bool)
    (xs, ys), inside = _buffers.xy
    hits = 0
    for start in range(0, n, BLOCK):
        m = min(BLOCK, n - start)
        x, y, ok = xs[:m], ys[:m], inside[:m]
        rng.random(out=x)  # the same numbers as rng.random(m), written into x
        rng.random(out=y)
        np.multiply(x, x, out=x)  # x*x + y*y <= 1, without making new arrays
        np.multiply(y, y, out=y)
        np.add(x, y, out=x)
        np.less_equal(x, 1.0, out=ok)
        hits += int(np.count_nonzero(ok))
    return hits


def hits_of_chunk(task: tuple) -> int:
    """``task = (kind, n, base, i)`` -> hits; one argument, so it works with every ``map``."""
    kind, n, base, i = task
    return COUNTERS[kind](n, base, i)


COUNTERS = {"python": count_hits_python, "numpy": count_hits_numpy,
            "splitmix": count_hits_splitmix, "splitmix-numpy": count_hits_splitmix_numpy}


def tasks(kind: str, n: int, chunks: int, base: int = 0) -> list[tuple]:
    """The chunk tasks of one run: ``n`` samples in ``chunks`` chunks for :func:`hits_of_chunk`."""
    return [(kind, m, base, i) for i, m in enumerate(split(n, chunks))]


def estimate(hits: int, n: int) -> float:
    return 4.0 * hits / n


def total_of(values) -> int:
    """Sum of an iterable of hit counts (the *reduce* step). Sent to workers in lab 02's tree reduction."""
    return sum(values)


def array_sum(a: np.ndarray) -> float:
    """Sum of an array: a task whose argument must be pickled and sent to the worker (lab 02, overhead)."""
    return float(a.sum())


def nothing(x):
    """A task that does nothing: what remains of its run time is pure overhead."""
    return x


def sleep_then_return(seconds: float, value=None):
    """Simulated I/O (a download, a slow disk): waits without using the CPU."""
    time.sleep(seconds)
    return value


# ---------------------------------------------------------------------------------------------------
# Checkpointing (lab 03): a long run that can be killed and restarted without losing finished chunks.


def checkpoint_chunk(folder: str | os.PathLike, n: int, base: int, i: int, pause: float = 0.0) -> int:
    """Hits of chunk ``i``, read from ``folder/chunk_NNNNN.json`` if an earlier run finished it.

    A new result is written to a temporary name and then renamed. A rename is atomic, so a kill never
    leaves a half-written chunk behind: the chunk is either complete on disk or absent.
    ``pause`` (seconds) slows each new chunk down, for the demonstration.
    """
    done = Path(folder) / f"chunk_{i:05d}.json"
    if done.exists():
        record = json.loads(done.read_text())
        if (record["n"], record["base"]) != (n, base):
            raise ValueError(f"{done} belongs to another run (n or seed differ); use an empty folder")
        return record["hits"]
    hits = count_hits_numpy(n, base, i)
    time.sleep(pause)
    tmp = done.with_name(done.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"i": i, "n": n, "base": base, "hits": hits}))
    os.replace(tmp, done)
    return hits


def checkpointed_hits(folder: str | os.PathLike, n_per_chunk: int, chunks: int, base: int = 0,
                      pause: float = 0.0) -> int:
    """Total hits of ``chunks`` chunks of ``n_per_chunk`` darts, each chunk kept in ``folder``.

    Chunks already in ``folder`` are read back, not recomputed, so a run that was killed resumes
    where it stopped.
    """
    Path(folder).mkdir(parents=True, exist_ok=True)
    return sum(checkpoint_chunk(folder, n_per_chunk, base, i, pause) for i in range(chunks))


# ---------------------------------------------------------------------------------------------------
# π by the midpoint rule (labs 04–05), cut into slices that any scheduler can run in any process:
#
#     π = ∫₀¹ 4 / (1 + x²) dx  ≈  (1/n) Σᵢ 4 / (1 + xᵢ²),   xᵢ = (i + ½) / n
#
# Slice [start, stop) of the n terms is an independent task: add the slices in any order, on any
# number of workers, and you get the same π.


def slices(n: int, parts: int) -> list[tuple[int, int]]:
    """Cut ``range(n)`` into ``parts`` contiguous ``(start, stop)`` slices of nearly equal size."""
    return [(k * n // parts, (k + 1) * n // parts) for k in range(parts)]


def pi_slice_python(start: int, stop: int, n: int) -> float:
    """Part of the midpoint sum in a plain Python loop: holds the GIL the whole time."""
    h = 1.0 / n
    total = 0.0
    for i in range(start, stop):
        x = (i + 0.5) * h
        total += 4.0 / (1.0 + x * x)
    return total * h


def pi_slice_numpy(start: int, stop: int, n: int, block: int = 32_768) -> float:
    """Part of the midpoint sum with NumPy (which releases the GIL inside each operation).

    It works through the slice one small block at a time in two preallocated buffers: the blocks
    stay in the CPU cache, and no memory is allocated in the loop (allocating and freeing large
    temporaries is slow, and slower still in Dask workers, which return freed memory to the OS
    eagerly)."""
    h = 1.0 / n
    offsets = np.arange(block, dtype=np.float64) + 0.5
    buf = np.empty(block, dtype=np.float64)
    total = 0.0
    for lo in range(start, stop, block):
        m = min(block, stop - lo)
        x = buf[:m]
        np.add(offsets[:m], lo, out=x)  # i + 0.5
        x *= h  # x_i
        np.multiply(x, x, out=x)
        x += 1.0
        np.divide(4.0, x, out=x)
        total += float(x.sum())
    return total * h


# ---------------------------------------------------------------------------------------------------
# π with MPI (lab 05): every rank sums its own midpoint slice, rank 0 adds the slices up.
#
#     cd labs && mpiexec -n 2 python -m course.pi mpi 1000000000
#
# Rank 0 prints one line that lab 05 parses:  pi=3.14159265358979... ranks=2 n=50000000 seconds=0.1234
# ``seconds`` is the compute time between two barriers (process start-up excluded). The slices are the
# same ``slices`` a Dask cluster gets in lab 05, so the two results can be compared exactly.

MPI_LINE = re.compile(r"pi=(?P<pi>\S+) ranks=(?P<ranks>\d+) n=(?P<n>\d+) seconds=(?P<seconds>\S+)")


def parse(output: str) -> dict:
    """The numbers from rank 0's line: ``{"pi": float, "ranks": int, "n": int, "seconds": float}``."""
    m = MPI_LINE.search(output)
    if m is None:
        raise ValueError(f"no 'pi=... ranks=...' line in the MPI program's output: {output[-300:]!r}")
    return {"pi": float(m["pi"]), "ranks": int(m["ranks"]), "n": int(m["n"]), "seconds": float(m["seconds"])}


def mpi_main(n: int = 100_000_000) -> int:
    from mpi4py import MPI  # imported here so that `from course import pi` works without MPI

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    comm.Barrier()
    start = MPI.Wtime()
    lo, hi = slices(n, size)[rank]  # this rank's share of the work
    part = pi_slice_numpy(lo, hi, n)
    parts = comm.gather(part, root=0)  # rank 0 collects the parts in rank order
    comm.Barrier()
    elapsed = MPI.Wtime() - start
    if rank == 0:
        print(f"pi={sum(parts)!r} ranks={size} n={n} seconds={elapsed:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    # python -m course.pi loop N                                  π from N darts with the Python loop
    # python -m course.pi checkpoint FOLDER N_PER_CHUNK CHUNKS BASE PAUSE    (lab 03)
    # mpiexec -n 2 python -m course.pi mpi N                      (lab 05)
    import sys

    command, *args = sys.argv[1:] or ["loop", "1000000"]
    if command == "loop":
        n = int(args[0])
        print(estimate(count_hits_python(n), n))
    elif command == "checkpoint":
        folder, n, chunks, base, pause = args
        print(checkpointed_hits(folder, int(n), int(chunks), int(base), float(pause)))
    elif command == "mpi":
        sys.exit(mpi_main(int(args[0]) if args else 100_000_000))
    else:
        sys.exit(f"unknown command {command!r}: use `loop N`, `checkpoint FOLDER N CHUNKS BASE PAUSE` or `mpi N`")
