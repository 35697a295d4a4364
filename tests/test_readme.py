"""The README documents every option: a new option without a row fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tornado_sse.settings import _OPTIONS, _SUBCOMMAND_OPTIONS, env_name

pytestmark = pytest.mark.pg_independent  # the README's text

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_readme_lists_every_option_with_its_flag():
    missing = [name for name, _, _ in _OPTIONS + _SUBCOMMAND_OPTIONS
               if "--" + name.replace("_", "-") not in README]
    assert missing == []


def test_readme_names_the_environment_variable_of_every_server_option():
    missing = [env_name(name) for name, _, _ in _OPTIONS if env_name(name) not in README]
    assert missing == []
