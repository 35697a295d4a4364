"""Shared fixtures; each fixture family lives in a ``fix_*.py`` module."""

pytest_plugins = ["tests.fix_db", "tests.fix_server"]
