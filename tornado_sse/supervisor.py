"""``--processes N``: N forked server processes sharing the listening sockets.

Each process has its own listener, pool and hub (that is the scaling
model: see README). The parent only supervises: it forwards SIGTERM and
SIGINT, restarts a child that dies on its own, and exits when all have.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

log = logging.getLogger("tornado_sse.supervisor")


def supervise(n: int, serve_one: Callable[[int], int]) -> int:
    """Fork ``n`` children running ``serve_one(index)``; 0 after a clean stop."""
    children: dict[int, int] = {}
    stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:  # child: serve, then leave without the parent's atexit hooks
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                code = serve_one(index)
            finally:
                os._exit(code)
        children[pid] = index

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    for index in range(n):
        spawn(index)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    while children:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        if pid not in children:
            continue
        index = children.pop(pid)
        if code != 0:
            status = 1
            if not stopping:
                log.error("server process %d exited (status %d); starting another", pid, code)
                spawn(index)
    return 0 if stopping else status
