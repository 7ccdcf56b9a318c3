# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""π by Monte-Carlo in Cython (lab 03): the same SplitMix64 darts as pi_numba.py, so the same counts.

Lab 03 compiles this file into _build/cython/ (cythonize + setuptools, with OpenMP where the compiler
has it). The work happens in ``cdef ... nogil`` functions, which touch no Python objects; the Python-
callable wrappers release the GIL around them, so Python threads (or ``prange``) run them in parallel.
"""

from cython.parallel cimport prange
from libc.stdint cimport uint64_t

cdef uint64_t GAMMA = 0x9E3779B97F4A7C15
cdef double TO_UNIT = 1.0 / 9007199254740992.0


cdef inline uint64_t mix64(uint64_t z) noexcept nogil:
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef long long _chunk_hits(long long n, uint64_t base, uint64_t i) noexcept nogil:
    cdef uint64_t state = mix64(base * GAMMA + i)
    cdef long long hits = 0, k
    cdef double x, y
    for k in range(n):
        state = state + GAMMA
        x = (mix64(state) >> 11) * TO_UNIT
        state = state + GAMMA
        y = (mix64(state) >> 11) * TO_UNIT
        if x * x + y * y <= 1.0:
            hits += 1
    return hits


def chunk_hits(long long n, unsigned long long base, unsigned long long i):
    """Hits among ``n`` darts of chunk ``i`` of seed ``base``; the GIL is released while it counts."""
    cdef long long hits
    with nogil:
        hits = _chunk_hits(n, base, i)
    return hits


def hits_range(long long n_per_chunk, unsigned long long base, long long first, long long last):
    """Hits of chunks ``first .. last-1`` without the GIL: call it from several Python threads."""
    cdef long long total = 0, c
    with nogil:
        for c in range(first, last):
            total += _chunk_hits(n_per_chunk, base, c)
    return total


def hits_prange(long long n_per_chunk, long long chunks, unsigned long long base, int num_threads):
    """All chunks shared among ``num_threads`` OpenMP threads (serial when built without OpenMP)."""
    cdef long long total = 0, c
    for c in prange(chunks, nogil=True, num_threads=num_threads, schedule="static"):
        total += _chunk_hits(n_per_chunk, base, c)
    return total
