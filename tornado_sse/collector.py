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
    garbage is never collected. The thresholds' first value (allocations
    before a young collection) is raised too: with streams detached it
    matters little, but it still spares every collection while 20,000
    events reach 10,000 streams (Python's defaults: 56 collections,
    11 ms of CPU; ``bench/gcpause.py --events``, bench/RESULTS.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    return gc.get_freeze_count()
