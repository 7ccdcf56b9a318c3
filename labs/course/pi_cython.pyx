# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""π by Monte-Carlo in Cython (lab 03): the SplitMix64 darts of course/pi.py, so the same counts.

Lab 03 compiles this file into _build/cython/ (cythonize + setuptools, with OpenMP where the compiler
has it). The work happens in ``cdef ... nogil`` functions, which touch no Python objects; the Python-
callable wrappers release the GIL around them, so Python threads (or ``prange``) run them in parallel.
Each chunk starts from its seed, ``pi.chunk_seed(base, i)``, computed in Python and passed in.
"""

from cython.parallel cimport prange
from libc.stdint cimport uint64_t

cdef uint64_t GAMMA = 0x9E3779B97F4A7C15
cdef double TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


cdef inline uint64_t mix64(uint64_t z) noexcept nogil:
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef long long _chunk_hits(long long n, uint64_t state) noexcept nogil:
    cdef long long hits = 0, k
    cdef double x, y
    for k in range(n):
        state = state + GAMMA
        x = <long long>(mix64(state) >> 11) * TO_UNIT  # signed: a faster conversion
        state = state + GAMMA
        y = <long long>(mix64(state) >> 11) * TO_UNIT
        if x * x + y * y <= 1.0:
            hits += 1
    return hits


def chunk_hits(long long n, uint64_t seed):
    """Hits among ``n`` darts from ``seed``; the GIL is released while it counts."""
    cdef long long hits
    with nogil:
        hits = _chunk_hits(n, seed)
    return hits


def hits_of_seeds(long long n_per_chunk, const uint64_t[::1] seeds):
    """Hits of ``n_per_chunk`` darts from each seed, without the GIL: call it from several Python threads."""
    cdef long long total = 0
    cdef Py_ssize_t c
    with nogil:
        for c in range(seeds.shape[0]):
            total += _chunk_hits(n_per_chunk, seeds[c])
    return total


def hits_prange(long long n_per_chunk, const uint64_t[::1] seeds, int num_threads):
    """All chunks shared among ``num_threads`` OpenMP threads (serial when built without OpenMP)."""
    cdef long long total = 0
    cdef Py_ssize_t c
    for c in prange(seeds.shape[0], nogil=True, num_threads=num_threads, schedule="static"):
        total += _chunk_hits(n_per_chunk, seeds[c])
    return total
