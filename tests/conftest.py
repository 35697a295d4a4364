"""Shared fixtures; each fixture family lives in a ``fix_*.py`` module."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.fix_db", "tests.fix_server", "tests.fix_browser", "tests.fix_migrations",
                  "tests.fix_roles"]


@pytest.fixture(scope="session", autouse=True)
def _no_implicit_event_loop() -> Iterator[None]:
    """Stop asyncio from inventing event loops nobody closes.

    pytest-tornado builds an IOLoop per test; Tornado then asks asyncio for
    the current loop so it can restore it later, and with none set asyncio
    creates one, which is never closed and fails a random later test with a
    ResourceWarning when collected. Declaring "no current loop" makes asyncio
    raise instead, which Tornado handles.
    """
    asyncio.set_event_loop(None)
    yield
