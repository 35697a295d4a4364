"""Garbage-collector settings for a process that holds many long-lived streams."""

from __future__ import annotations

import gc


def quiet_collector() -> None:
    """Keep full garbage collections off the fan-out's latency.

    Everything alive after start-up (modules, the app, the pool) is moved out
    of the collector's view, and full collections run ten times less often
    (the thresholds' first value counts allocations). Measured in the paced
    benchmark: full collections of 75-100 ms every few seconds were the p99
    (bench/RESULTS.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
