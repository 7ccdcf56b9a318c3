"""Benchmark helpers for labs 01–03: timing with warm-up and repeats, the machine's load, figure stamps.

Lab 01 builds :func:`timings` step by step from ``timeit``; labs 02 and 03 import it from here.
"""

from __future__ import annotations

import statistics
import timeit

import course


def timings(fn, *args, repeat: int = 5, warmup: int = 1) -> list[float]:
    """Seconds taken by ``fn(*args)`` in each of ``repeat`` runs, after ``warmup`` untimed runs.

    ``timeit`` uses ``time.perf_counter`` (the finest clock there is) and switches the garbage
    collector off while it times, so a collection does not land in one run by chance.
    """
    for _ in range(warmup):
        fn(*args)
    return timeit.repeat(lambda: fn(*args), number=1, repeat=repeat)


def best(fn, *args, repeat: int = 5, warmup: int = 1) -> float:
    """The fastest of ``repeat`` timed runs: the one least disturbed by everything else on the machine."""
    return min(timings(fn, *args, repeat=repeat, warmup=warmup))


def median(fn, *args, repeat: int = 5, warmup: int = 1) -> float:
    return statistics.median(timings(fn, *args, repeat=repeat, warmup=warmup))


def matmul_seconds(n: int, repeats: int, blas_threads: int | None = None) -> float:
    """Seconds for ``repeats`` products of an n × n matrix with itself, with NumPy's BLAS limited to
    ``blas_threads`` threads (None: the library's default, usually every core). Lab 04 runs it in a
    process pool, so it lives here, importable by name."""
    import time

    import numpy as np
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((n, n))
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        a @ a  # warm up: BLAS starts its threads
        start = time.perf_counter()
        for _ in range(repeats):
            a @ a
        return time.perf_counter() - start


def load() -> str:
    """How busy the machine is: the 1-minute load average against the cores we may use."""
    import psutil

    one_minute = psutil.getloadavg()[0]
    return f"load average {one_minute:.1f} on {course.usable_cores()} usable cores"


def stamp(fig, note: str = "") -> None:
    """Print the hardware (and an optional note) at the foot of a figure, and tidy its layout."""
    text = course.hardware() + (f" · {note}" if note else "")
    fig.text(0.5, 0.005, text, ha="center", va="bottom", fontsize=9, color="#444444")
    fig.tight_layout(rect=(0, 0.045, 1, 1))


def evict(*paths) -> bool:
    """Drop these files (folders: every file below them) from the operating system's page cache, so the
    next read comes from the disk: a "cold" read. Needs no root: ``posix_fadvise(POSIX_FADV_DONTNEED)``
    on files we may open. Returns False where the OS has no such call (macOS, Windows): there the next
    read may come from memory, and a rate measured after it is a warm one; say so next to it.
    """
    import os
    from pathlib import Path

    if not hasattr(os, "posix_fadvise"):
        return False
    for path in map(Path, paths):
        for f in ([path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())):
            try:
                fd = os.open(f, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fdatasync(fd) if hasattr(os, "fdatasync") else None  # dirty pages cannot be dropped
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass
            finally:
                os.close(fd)
    return True
