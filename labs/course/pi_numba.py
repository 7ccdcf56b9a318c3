"""π by Monte-Carlo compiled with Numba (lab 03), and the same generator in plain Python for checking.

Every version here draws its darts from the same tiny random-number generator, *SplitMix64*: chunk ``i``
of seed ``base`` starts from the state ``mix64(base·γ + i)`` and each dart takes two steps of it. Being a
few integer operations, it compiles to the same machine code in Numba and Cython, so the serial, the
``prange``, the ``nogil``-thread and the Cython versions all count exactly the same hits, whatever the
number of threads. (NumPy's own generators cannot be called from compiled loops this freely.)

Compiled functions are cached (``cache=True``) in ``$NUMBA_CACHE_DIR`` (the labs point it at ``_build/``),
so the second run of a lab skips the compilation.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, vectorize

GAMMA = np.uint64(0x9E3779B97F4A7C15)  # the golden-ratio increment of SplitMix64
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
S30, S27, S31, S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53: the top 53 bits of a 64-bit integer -> a float in [0, 1)


@njit(cache=True, inline="always")
def mix64(z):
    z = (z ^ (z >> S30)) * M1
    z = (z ^ (z >> S27)) * M2
    return z ^ (z >> S31)


@njit(nogil=True, cache=True)
def chunk_hits(n, base, i):
    """Hits among ``n`` darts of chunk ``i`` of seed ``base``. ``nogil``: Python threads run it in parallel."""
    state = mix64(np.uint64(base) * GAMMA + np.uint64(i))
    hits = 0
    for _ in range(n):
        state += GAMMA
        x = (mix64(state) >> S11) * TO_UNIT
        state += GAMMA
        y = (mix64(state) >> S11) * TO_UNIT
        if x * x + y * y <= 1.0:
            hits += 1
    return hits


@njit(nogil=True, cache=True)
def hits_range(n_per_chunk, base, first, last):
    """Hits of chunks ``first .. last-1``: one thread's share of the chunks."""
    total = 0
    for c in range(first, last):
        total += chunk_hits(n_per_chunk, base, c)
    return total


@njit(cache=True)
def hits_serial(n_per_chunk, chunks, base):
    """All chunks, one after another, on one core."""
    return hits_range(n_per_chunk, base, 0, chunks)


@njit(parallel=True, cache=True)
def hits_prange(n_per_chunk, chunks, base):
    """All chunks, shared among Numba's threads by ``prange`` (``numba.set_num_threads`` sets how many)."""
    total = 0
    for c in prange(chunks):
        total += chunk_hits(n_per_chunk, base, c)  # Numba turns `total +=` into a safe parallel reduction
    return total


@vectorize(["boolean(float64, float64)"], target="parallel")
def inside_parallel(x, y):
    """A ufunc compiled by Numba that runs on all of Numba's threads: True where the dart is inside."""
    return x * x + y * y <= 1.0


# ---------------------------------------------------------------------------------------------------
# The same generator in plain Python: 100× slower, but it shows the compiled versions count correctly.

_MASK = (1 << 64) - 1


def _mix64_py(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def chunk_hits_reference(n: int, base: int, i: int) -> int:
    """Plain-Python twin of :func:`chunk_hits` (same darts, same count)."""
    gamma = 0x9E3779B97F4A7C15
    state = _mix64_py((base * gamma + i) & _MASK)
    hits = 0
    for _ in range(n):
        state = (state + gamma) & _MASK
        x = (_mix64_py(state) >> 11) * TO_UNIT
        state = (state + gamma) & _MASK
        y = (_mix64_py(state) >> 11) * TO_UNIT
        hits += x * x + y * y <= 1.0
    return hits


# ---------------------------------------------------------------------------------------------------
# The threading-layer pitfall (lab 03). Run as: NUMBA_THREADING_LAYER=omp python pi_numba.py


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

    hits_prange(1000, 8, 0)  # load/compile and start the threading layer outside the timings
    hits_range(1000, 0, 0, 1)
    burnt = []
    for r in range(5):
        hits_prange(20_000, 2 * threads, r)
        cpu = time.process_time()  # CPU time of all threads of this process
        time.sleep(0.05)
        burnt.append(time.process_time() - cpu)
    per_round = []
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda t: hits_range(1000, 0, t, t + 1), range(threads)))  # start the threads
        for r in range(rounds):
            hits_prange(20_000, 2 * threads, r)  # a short parallel region; its threads are idle after it
            start = time.perf_counter()
            list(pool.map(lambda t: hits_range(n_per_chunk, r, t, t + 1), range(threads)))
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
