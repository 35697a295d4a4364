"""Real nginx in front of real servers, with the shipped configuration
(tornado_sse.testing.nginx); skipped, saying why, where nginx is missing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.cli_process import ROOT
from tornado_sse.testing.nginx import find_nginx
from tornado_sse.testing.nginx import running_nginx as _running_nginx

SITE = ROOT / "deploy" / "nginx" / "tornado_sse.conf"


def nginx_binary() -> str:
    """The nginx program, or skip: scripts/test.sh installs it as root."""
    found = find_nginx()
    if found is None:
        pytest.skip("nginx is not installed (scripts/test.sh installs nginx-light when run as root)")
    return found


@contextmanager
def running_nginx(folder: Path, upstreams: Sequence[int], connections: int = 1024) -> Iterator[str]:
    """The shipped site in front of ``upstreams``, logging which upstream
    answered each request to ``folder/access.log``; yields its URL."""
    nginx_binary()
    with _running_nginx(SITE, folder, upstreams, connections, access_log=True) as url:
        yield url
