"""Wall-clock timing shared by the benchmarks in bench/."""

from __future__ import annotations

import time


def timed(fn) -> tuple:
    """(seconds, result) of one call of fn."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out
