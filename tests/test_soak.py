"""The 60-second soak (bench/soak.py) as part of the suite: under load,
faults and reconnects no client loses or repeats an event. Longer runs:
``python bench/soak.py --duration 600``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")),
                    reason="the soak runs on a private embedded PostgreSQL (it restarts it), "
                           "so the DATABASE_URL run would repeat the embedded run")
def test_soak_60s_loses_and_repeats_nothing():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORNADO_SSE_")}
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--duration", "60"],
                            capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    report = result.stdout
    print(report)
    assert result.returncode == 0, report + result.stderr[-3000:]
    assert "soak: OK: 0 lost, 0 duplicated" in report
    assert "1 PostgreSQL restart(s)" in report and "slow client cut: True" in report
