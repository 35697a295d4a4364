"""The npm package clients/js (issue 22), through its own tools: node's test
runner against a real server (the npm ``eventsource`` package as the
EventSource), ``tsc --strict`` over its types and the page's scripts, and
``npm pack`` to a tarball that installs and imports by name.

``npm ci`` installs the package's dev tools (typescript, eventsource) from
package-lock.json when node_modules is missing (scripts/test.sh does it
first); without node and npm these tests skip and say so.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fix_directory import add_directory
from tests.fix_server import admin_token, staff_token

pytestmark = pytest.mark.pg_independent  # the client's logic, not PostgreSQL's version

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "clients" / "js"


@pytest.fixture(scope="module")
def npm() -> str:
    """npm, with the package's dev dependencies installed."""
    found = shutil.which("npm")
    if found is None or shutil.which("node") is None:
        pytest.skip("node and npm are not installed (apt-get install nodejs npm)")
    if not (PACKAGE / "node_modules" / ".package-lock.json").exists():
        subprocess.run([found, "ci", "--no-audit", "--no-fund"], cwd=PACKAGE, check=True,
                       capture_output=True, timeout=300)
    return found


def run(*argv: str, cwd: Path = PACKAGE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.gen_test(timeout=120)
async def test_node_test_runner_passes_against_a_real_server(npm, make_server, db):
    """clients/js/test/*.test.mjs; a failing node test fails this test with its output."""
    # The ids the node tests book: the write API knows only the directory's (SPEC §8).
    add_directory(db, staff={5: "Eva", 7: "Ole"}, products={456: ("Cut", 60, "50.00")}, customers={789: "Ida"})
    server = await make_server()
    env = {**os.environ, "TSSE_URL": server.url, "TSSE_ADMIN_TOKEN": admin_token(),
           "TSSE_STAFF_TOKEN": staff_token(5)}
    # Async: the server under test runs on this loop.
    proc = await asyncio.create_subprocess_exec(
        "node", "--test", "--test-reporter=spec", "test/", cwd=PACKAGE, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    report = out.decode()
    assert proc.returncode == 0, report
    # The spec reporter's summary: every test ran (none skipped for a missing server).
    summary = dict(re.findall(r"^ℹ (\w+) (\d+)$", report, re.MULTILINE))
    assert summary["fail"] == summary["skipped"] == summary["cancelled"] == "0", report
    assert int(summary["pass"]) >= 15, report


def test_types_pass_tsc_strict(npm):
    """The package's .d.ts and a program using it, the module's own JSDoc
    types (both strict), and the page's scripts against the same types
    (tsconfig.json at the root)."""
    tsc = str(PACKAGE / "node_modules" / ".bin" / "tsc")
    for project in (PACKAGE / "tsconfig.json", PACKAGE / "tsconfig.source.json", ROOT / "tsconfig.json"):
        checked = run(tsc, "-p", str(project), cwd=project.parent)
        assert checked.returncode == 0, f"{project}:\n{checked.stdout}{checked.stderr}"


def test_npm_pack_makes_a_tarball_that_installs_and_imports_by_name(npm, tmp_path):
    """The README's install: ``npm pack`` in clients/js, ``npm install
    ./tornado-sse-<version>.tgz`` in an app, ``import {follow} from 'tornado-sse'``."""
    packed = run(npm, "pack", "--json", "--pack-destination", str(tmp_path))
    assert packed.returncode == 0, packed.stderr
    info = json.loads(packed.stdout)[0]
    assert sorted(f["path"] for f in info["files"]) == ["README.md", "index.d.ts", "package.json",
                                                          "tornado-sse.js"]
    assert not (PACKAGE / "tornado-sse.js").exists(), "postpack leaves no copy behind"
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text('{"name": "app", "private": true, "type": "module"}')
    installed = run(npm, "install", "--no-audit", "--no-fund", "--offline", str(tmp_path / info["filename"]),
                    cwd=app)
    assert installed.returncode == 0, installed.stderr
    shipped = app / "node_modules" / "tornado-sse" / "tornado-sse.js"
    assert shipped.read_bytes() == (ROOT / "tornado_sse" / "static" / "client.js").read_bytes()
    imported = run("node", "-e", "import('tornado-sse').then(m => console.log(Object.keys(m).sort().join(',')))",
                   cwd=app)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "SnapshotError,follow,subscribe"
