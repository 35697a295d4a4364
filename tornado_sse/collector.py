"""Garbage-collector settings for a process that holds many long-lived streams."""

from __future__ import annotations

import gc


def quiet_collector() -> int:
    """Keep full garbage collections off the fan-out's latency; returns the
    number of objects frozen.

    Everything alive after start-up (modules, the app, the pool) is moved
    out of the collector's view (``gc.freeze``), so a full collection walks
    only what was made since: with streams that own their socket, one
    object per open stream (tornado_sse/stream.py), about 10 ms at 10,000
    streams instead of most of a second (bench/RESULTS.md, issue 21). This
    is safe only because a closed stream leaves no reference cycle: frozen
    garbage is never collected. Full collections also run ten times less
    often (the thresholds' first value counts allocations): measured in
    the paced benchmark before streams were detached, full collections of
    75-100 ms every few seconds were the p99.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    return gc.get_freeze_count()
