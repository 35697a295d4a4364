"""The built wheel is the product (issue 13): installed into a fresh venv
with no checkout around, it migrates a database and serves.

By hand: ``pip wheel --no-deps -w dist .``, then ``python -m venv /tmp/v &&
/tmp/v/bin/pip install dist/tornado_sse-*.whl`` and, from any folder,
``/tmp/v/bin/tornado-sse --version``.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.fix_server import SECRET
from tests.packaging import build_wheel, install_into_fresh_venv, outside_env, wheel_files
from tornado_sse import __version__
from tornado_sse.testing.sse_client import Response, request

pytestmark = pytest.mark.pg_independent


def run(bindir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bindir / args[0]), *args[1:]], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env=outside_env())


async def get(url: str) -> Response:
    resp = await request(url)
    assert isinstance(resp, Response)
    return resp


async def healthz_until_ok(url: str, timeout: float = 30.0) -> Response:
    """/healthz answers 503 until the listener is connected; wait for the 200."""
    deadline = time.monotonic() + timeout
    while True:
        resp = await get(url + "/healthz")
        if resp.status == 200 or time.monotonic() > deadline:
            return resp
        await asyncio.sleep(0.1)


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_migrates_and_serves_with_no_checkout(tmp_path: Path,
                                                                    empty_db: str) -> None:
    wheel = build_wheel(tmp_path / "dist")
    files = wheel_files(wheel)
    for name in ("tornado_sse/sql/001_schema.sql", "tornado_sse/sql/seed.sql",
                 "tornado_sse/sql/simulate.sql", "tornado_sse/static/calendar.html",
                 "tornado_sse/static/vendor/fullcalendar/all/global.js",
                 "tornado_sse/static/vendor/fullcalendar/LICENSE.md"):
        assert name in files, f"{name} missing from the wheel"
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE")
               for n in files)

    bindir = install_into_fresh_venv(tmp_path / "venv", wheel)
    elsewhere = tmp_path / "elsewhere"  # no checkout, no sql/, no run.py here
    elsewhere.mkdir()

    where = run(bindir, "python", "-c", "import tornado_sse; print(tornado_sse.__file__)", cwd=elsewhere)
    assert where.stdout.startswith(str(tmp_path / "venv")), where.stdout + where.stderr

    for argv in (("tornado-sse", "--version"), ("python", "-m", "tornado_sse", "--version")):
        version = run(bindir, *argv, cwd=elsewhere)
        assert (version.returncode, version.stdout) == (0, f"tornado_sse {__version__}\n"), version

    migrated = run(bindir, "tornado-sse", "migrate", "--dsn", empty_db, cwd=elsewhere)
    assert migrated.returncode == 0, migrated.stderr
    assert "migrate: applied 001_schema.sql" in migrated.stdout

    proc = subprocess.Popen([str(bindir / "tornado-sse"), "serve", "--dsn", empty_db, "--port", "0",
                             "--jwt-secret", SECRET, "--data-dir", str(elsewhere / "data")],
                            cwd=elsewhere, env=outside_env(), stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    try:
        line = ""
        deadline = time.monotonic() + 30
        while "listening on" not in line:
            assert time.monotonic() < deadline and proc.poll() is None, f"did not start: {line!r}"
            line = proc.stderr.readline()
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        url = line.split()[-1]

        async def check() -> None:
            health = await healthz_until_ok(url)
            assert health.status == 200, health.body
            for path in ("/", "/static/client.js", "/static/vendor/fullcalendar/all/global.js"):
                assert (await get(url + path)).status == 200, path

        asyncio.run(check())
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
        proc.stderr.close()
