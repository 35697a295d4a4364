"""``python run.py ...`` in a real process, as a user types it.

The environment is the test's own minus every ``TORNADO_SSE_*`` variable and
``DATABASE_URL`` (the suite sets that to pick its server): a command only
sees the database and options its test names, so a test meant for the
embedded database never touches a shared server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

ROOT = Path(__file__).resolve().parent.parent


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without TORNADO_SSE_* and DATABASE_URL."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("TORNADO_SSE_") and k != "DATABASE_URL"}
    return {**clean, **(extra or {})}


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``run.py ARGS`` with only ``env`` added to a clean environment."""
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=clean_env(env))


@contextmanager
def serving(*args: str, cwd: Path,
            log: list[str] | None = None) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``run.py serve ARGS`` in a real process: yields it and its URL once it
    listens; kills it afterwards if the test did not stop it. Its stderr
    lines after the start go to ``log`` when one is given."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], stderr=subprocess.PIPE,
                            text=True, env=clean_env(), cwd=cwd)
    assert proc.stderr is not None
    try:
        deadline = time.monotonic() + 30
        line = ""
        while "listening on" not in line:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"run.py did not start: {line!r}")
            line = proc.stderr.readline()
        # Keep reading stderr so the server never blocks on a full pipe.
        if log is None:
            threading.Thread(target=proc.stderr.read, daemon=True).start()
        else:
            threading.Thread(target=lambda: log.extend(iter(proc.stderr.readline, "")),  # type: ignore[union-attr]
                             daemon=True).start()
        yield proc, line.split()[-1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
