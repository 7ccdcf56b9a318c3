"""π by the midpoint rule, cut into slices that any scheduler can run in any process.

    π = ∫₀¹ 4 / (1 + x²) dx  ≈  (1/n) Σᵢ 4 / (1 + xᵢ²),   xᵢ = (i + ½) / n

Slice ``[start, stop)`` of the ``n`` terms is an independent task: add the slices in any order,
on any number of workers, and you get the same π. Episodes 04 (Dask schedulers) and 05 (MPI and a
command-line Dask cluster) hand these functions to other processes, so they live in this small
module and not in the lab: a worker started with ``spawn`` imports them by name.
"""

from __future__ import annotations

import numpy as np


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
