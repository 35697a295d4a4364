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
from pathlib import Path
from typing import Mapping

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``run.py ARGS`` with only ``env`` added to a clean environment."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("TORNADO_SSE_") and k != "DATABASE_URL"}
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**clean, **(env or {})})
