"""A tornado_sse server in a real process, started as a user starts it.

The environment is the caller's minus every ``TORNADO_SSE_*`` variable and
``DATABASE_URL`` (the test suite sets that to pick its server): a process
only sees the database and options its caller names, so a test meant for
the embedded database never touches a shared server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

#: The command line of ``run.py``, wherever the package is installed.
COMMAND = (sys.executable, "-m", "tornado_sse")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without TORNADO_SSE_* and DATABASE_URL."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("TORNADO_SSE_") and k != "DATABASE_URL"}
    return {**clean, **(extra or {})}


@contextmanager
def serving(*args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 30.0,
            log: list[str] | None = None) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``serve ARGS`` in a real process: yields it and its URL once it
    listens; kills it afterwards if the caller did not stop it. Its stderr
    lines after the start go to ``log`` when one is given."""
    proc = subprocess.Popen([*COMMAND, *args], stderr=subprocess.PIPE, text=True,
                            env=clean_env(env), cwd=cwd)
    assert proc.stderr is not None
    try:
        deadline = time.monotonic() + timeout
        line = ""
        while "listening on" not in line:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"the server did not start: {line!r}")
            line = proc.stderr.readline()
        # Keep reading stderr so the server never blocks on a full pipe.
        stderr = proc.stderr
        if log is None:
            threading.Thread(target=stderr.read, daemon=True).start()
        else:
            threading.Thread(target=lambda: log.extend(iter(stderr.readline, "")), daemon=True).start()
        yield proc, line.split()[-1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
