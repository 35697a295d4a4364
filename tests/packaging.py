"""Build the wheel and install it where no checkout can leak in.

The venv is a plain one (no ``--system-site-packages``): pip installs every
dependency from the package index, as it would for a user, so a missing
``install_requires`` entry or a file the wheel forgot fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.cli_process import ROOT

#: pip's own timeout per call; generous, the index may be slow.
PIP_TIMEOUT = 240


def build_wheel(dest: Path) -> Path:
    """``pip wheel --no-deps`` of the checkout into ``dest``; the wheel's path."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dest),
                    str(ROOT)], check=True, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    [wheel] = dest.glob("tornado_sse-*.whl")
    return wheel


def wheel_files(wheel: Path) -> set[str]:
    """Every file name inside the wheel."""
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def outside_env() -> dict[str, str]:
    """The environment minus anything that points Python or the app at the
    checkout or the test's own venv and database."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DATABASE_URL")
    return {k: v for k, v in os.environ.items()
            if k not in drop and not k.startswith("TORNADO_SSE_")}


def install_into_fresh_venv(venv: Path, wheel: Path) -> Path:
    """A new venv at ``venv`` with ``wheel`` and its dependencies; its bin/."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bindir = venv / "bin"
    done = subprocess.run([str(bindir / "python"), "-m", "pip", "install", "-q",
                           "--disable-pip-version-check", str(wheel)],
                          capture_output=True, text=True, timeout=PIP_TIMEOUT,
                          env=outside_env(), cwd=venv)
    assert done.returncode == 0, done.stderr[-2000:]
    return bindir
