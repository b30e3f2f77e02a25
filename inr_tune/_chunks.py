"""Chunked float64 passes over [T, …] arrays, in threads (numpy releases the GIL)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["CHUNK_VALUES", "frames_per_chunk", "map_chunks", "workers"]

CHUNK_VALUES = 1 << 20  # values per chunk (8 MiB as float64) for a statistics pass

_R = TypeVar("_R")


def frames_per_chunk(shape: tuple[int, ...], values: int) -> int:
    per_frame = max(1, math.prod(shape[1:]))
    return max(1, values // per_frame)


def workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def map_chunks(fn: Callable[[int, int], _R], n: int, step: int) -> list[_R]:
    """``fn(start, stop)`` over ``[0, n)`` in steps; threads when there are several chunks.

    numpy releases the GIL inside its loops, so the chunks run in parallel.
    """
    bounds = [(a, min(a + step, n)) for a in range(0, n, step)]
    n_workers = min(workers(), len(bounds))
    if n_workers <= 1:
        return [fn(a, b) for a, b in bounds]
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        return list(pool.map(lambda ab: fn(*ab), bounds))
