"""What every part of the bench shares: paths, the source snapshot, logging,
ports, and the one exception that marks a harness failure.

A harness failure (a server that does not start, a stream that does not
open, a frame lost or duplicated) makes the run exit 1; a missed
performance target never does, so ``--quick`` stays a safe smoke test.
"""

from __future__ import annotations

import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
#: The JWT secret every server under test is started with (HS256, SPEC §4).
JWT_SECRET = "bench-secret-not-for-production-0123456789abcdef"


class HarnessError(Exception):
    """Something in the harness (not a performance target) failed."""


def log(msg: str) -> None:
    """Progress on stderr; stdout carries the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def raise_nofile() -> None:
    """Soft open-file limit up to the hard one: 10,000 streams need 10,000
    sockets on each side. Also the ``preexec_fn`` of every child."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    """A port nothing listens on now (the usual small race is acceptable here)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Until something accepts on ``port``; fails early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise HarnessError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise HarnessError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def snapshot_source(workdir: Path) -> tuple[Path, dict[str, Any]]:
    """Copy run.py, tornado_sse/ and sql/ to workdir/src: the servers run
    from that copy, so edits to the working tree during a run (other
    engineers are changing the server) cannot mix versions. Returns the
    copy and what the report says about it (commit, uncommitted files)."""
    src = workdir / "src"
    src.mkdir()
    shutil.copy(ROOT / "run.py", src / "run.py")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "tornado_sse", src / "tornado_sse", ignore=ignore)
    shutil.copytree(ROOT / "sql", src / "sql", ignore=ignore)
    info: dict[str, Any] = {"path": str(ROOT)}
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                        capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "run.py", "tornado_sse", "sql"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10).stdout
        info["uncommitted_files"] = len([x for x in dirty.splitlines() if x.strip()])
    except (OSError, subprocess.SubprocessError):
        pass
    return src, info


def start_run_py(dsn: str, workdir: Path, secret: str, *options: str) -> tuple[subprocess.Popen[str], int]:
    """``run.py`` on ``dsn`` at a port of its choosing, its log drained in
    the background (a full stderr pipe would stall it); (process, port)."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--dsn", dsn, "--port", "0",
                             "--jwt-secret", secret, "--data-dir", str(workdir), "--log-level", "warning",
                             *options],
                            cwd=workdir, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = ""
    while "listening on" not in line:
        if proc.poll() is not None:
            raise SystemExit(f"server did not start: {line!r}")
        line = proc.stderr.readline()
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc, int(line.rsplit(":", 1)[1])
