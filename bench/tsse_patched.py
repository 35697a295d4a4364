"""Run tornado_sse with diagnostic hooks (``--tornado-patch``).

For server developers: ``python bench/run.py --tornado-patch gclog`` starts
the server through this file instead of ``run.py``; the report names the
hooks so a patched run is never mistaken for the product.

Usage: ``python bench/tsse_patched.py HOOK[,HOOK...] <run.py arguments>``.

Hooks:

- ``gclog``: log every garbage collection that takes over 5 ms (generation,
  duration, objects collected) to the server's stderr.
- ``memtrace``: ``tracemalloc`` from the start; ``kill -USR1 <pid>`` prints
  the 25 biggest allocation sites and the count of live objects by type
  (where the memory per stream goes).

The experiments this file used to carry (direct socket sends, gc.freeze,
no per-write Future, TCP_NODELAY) were measured here; the first two are now
in the server (tornado_sse/stream.py, server.py), the others were dropped
(bench/RESULTS.md has the figures).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The source snapshot bench/run.py made (else the repository).
ROOT = Path(os.environ.get("TSSE_SRC") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))

PATCHES = ("gclog", "memtrace")


def apply(names: list[str]) -> None:
    for name in names:
        if name not in PATCHES:
            raise SystemExit(f"unknown patch {name!r}; known: {', '.join(PATCHES)}")
    if "memtrace" in names:
        import collections
        import gc
        import signal
        import tracemalloc

        tracemalloc.start(1)

        def dump(*_):  # type: ignore[no-untyped-def]
            snap = tracemalloc.take_snapshot()
            total = sum(st.size for st in snap.statistics("filename"))
            print(f"[memtrace] traced {total / 2**20:.1f} MB", file=sys.stderr)
            for stat in snap.statistics("lineno")[:25]:
                print(f"[memtrace] {stat.size / 1024:10.0f} KB {stat.count:8d} "
                      f"{stat.traceback[0].filename.split('site-packages/')[-1]}:"
                      f"{stat.traceback[0].lineno}", file=sys.stderr)
            types = collections.Counter(type(o).__name__ for o in gc.get_objects())
            print("[memtrace] objects: " + ", ".join(f"{k} {v}" for k, v in types.most_common(25)),
                  file=sys.stderr, flush=True)

        signal.signal(signal.SIGUSR1, dump)
    if "gclog" in names:
        import gc
        import time

        started: list[float] = [0.0]

        def cb(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                ms = (time.perf_counter() - started[0]) * 1000
                if ms > 5:
                    print(f"[gclog] gen {info['generation']} {ms:.1f} ms collected "
                          f"{info['collected']} tracked "
                          f"{len(gc.get_objects(2)) if info['generation'] == 2 else '-'}",
                          file=sys.stderr, flush=True)

        gc.callbacks.append(cb)


if __name__ == "__main__":
    patches = [p for p in sys.argv[1].split(",") if p]
    apply(patches)
    from tornado_sse.cli import main

    sys.argv = [str(ROOT / "run.py"), *sys.argv[2:]]
    raise SystemExit(main())
