"""π by Monte-Carlo compiled with Numba (lab 03): the SplitMix64 darts of ``course.pi``, compiled.

``chunk_hits`` is not rewritten here: it *is* ``pi.splitmix_hits``, the plain Python loop, handed to
Numba's compiler. So the Python loop, the NumPy version, the serial, ``prange`` and ``nogil``-thread
versions here, and the Cython and C++ kernels, all count exactly the same hits for the same chunk, with
any number of threads. Every chunk starts from ``pi.chunk_seed(base, i)``: the compiled functions take
those seeds (a uint64 array from ``pi.chunk_seeds``) rather than seeding anything themselves.

Compiled functions are cached (``cache=True``) in ``$NUMBA_CACHE_DIR`` (the labs point it at ``_build/``),
so the second run of a lab skips the compilation.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, vectorize
from numba.extending import register_jitable

from course import pi

# Let compiled code call pi.mix64 (Numba compiles it into its callers); in Python it stays as it is.
register_jitable(pi.mix64)

# The Python loop, compiled: n (int64) darts from a uint64 seed, without the GIL. The explicit types
# make Numba convert the seed to uint64 at the call, so that all the arithmetic stays 64-bit unsigned.
chunk_hits = njit("int64(int64, uint64)", nogil=True, cache=True)(pi.splitmix_hits)


@njit(nogil=True, cache=True)
def hits_of_seeds(n_per_chunk, seeds):
    """Hits of ``n_per_chunk`` darts from each seed, one chunk after another (one thread's share)."""
    total = 0
    for seed in seeds:
        total += chunk_hits(n_per_chunk, seed)
    return total


@njit(parallel=True, cache=True)
def hits_prange(n_per_chunk, seeds):
    """All chunks, shared among Numba's threads by ``prange`` (``numba.set_num_threads`` sets how many)."""
    total = 0
    for c in prange(len(seeds)):
        total += chunk_hits(n_per_chunk, seeds[c])  # Numba turns `total +=` into a safe parallel reduction
    return total


@vectorize(["boolean(float64, float64)"], target="parallel")
def inside_parallel(x, y):
    """A ufunc compiled by Numba that runs on all of Numba's threads: True where the dart is inside."""
    return x * x + y * y <= 1.0


# ---------------------------------------------------------------------------------------------------
# The threading-layer pitfall (lab 03). Run from labs/: NUMBA_THREADING_LAYER=omp python -m course.pi_numba


def layer_demo(rounds: int = 80, n_per_chunk: int = 4_000_000, threads: int = 2) -> dict:
    """What Numba's threads do *between* ``prange`` calls, measured two ways.

    1. ``idle_cpu_ms``: CPU time the process burns while its main thread sleeps for 50 ms right after a
       short ``prange`` call. Sleeping threads use none; OpenMP's idle threads spin (busy-wait) for a
       while, hoping for more parallel work, and use CPU time.
    2. ``nogil_median_ms``: a short ``prange`` call, then ``threads`` Python threads each running
       ``nogil`` Numba code; the median time of the threaded part. Spinning OpenMP threads compete with
       them for the cores.

    It also times the parallel ufunc :func:`inside_parallel` on 4 million darts (``ufunc_ms``): the
    OpenMP layer calls the compiled kernel once per element, the workqueue layer once per block.
    """
    import time
    from concurrent.futures import ThreadPoolExecutor

    import numba

    seeds = [pi.chunk_seeds(r, 2 * threads) for r in range(rounds)]
    hits_prange(1000, seeds[0])  # load/compile and start the threading layer outside the timings
    hits_of_seeds(1000, seeds[0][:1])
    burnt = []
    for r in range(5):
        hits_prange(20_000, seeds[r])
        cpu = time.process_time()  # CPU time of all threads of this process
        time.sleep(0.05)
        burnt.append(time.process_time() - cpu)
    per_round = []
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda t: hits_of_seeds(1000, seeds[0][t : t + 1]), range(threads)))  # start the threads
        for r in range(rounds):
            hits_prange(20_000, seeds[r])  # a short parallel region; its threads are idle after it
            start = time.perf_counter()
            list(pool.map(lambda t: hits_of_seeds(n_per_chunk, seeds[r][t : t + 1]), range(threads)))
            per_round.append(time.perf_counter() - start)
    x, y = np.random.default_rng(0).random((2, 4_000_000))
    inside_parallel(x, y)
    ufunc = []
    for _ in range(5):
        start = time.perf_counter()
        inside_parallel(x, y)
        ufunc.append(time.perf_counter() - start)
    return {"layer": numba.threading_layer(), "idle_cpu_ms": 1e3 * float(np.median(burnt)),
            "nogil_median_ms": 1e3 * float(np.median(per_round)), "nogil_best_ms": 1e3 * min(per_round),
            "ufunc_ms": 1e3 * min(ufunc)}


if __name__ == "__main__":
    import json

    print(json.dumps(layer_demo()))
