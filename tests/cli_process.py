"""``python run.py ...`` in a real process, exactly as a user types it
(the README's command), with a clean environment (see
:func:`tornado_sse.testing.processes.clean_env`)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tornado_sse.testing.processes import clean_env

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``run.py ARGS`` with only ``env`` added to a clean environment."""
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=clean_env(env))
