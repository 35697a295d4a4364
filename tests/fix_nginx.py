"""Real nginx in front of real servers, with the shipped configuration.

The site file is ``deploy/nginx/tornado_sse.conf`` itself, with only its
upstream servers and listen port rewritten; the main configuration around it
keeps every path (pid, logs, temp files) in the test's folder, so nginx runs
as a plain subprocess next to the system's own (none needs to be running).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.cli_process import ROOT

SITE = ROOT / "deploy" / "nginx" / "tornado_sse.conf"
_UPSTREAM_SERVER = re.compile(r"^(\s*)server 127\.0\.0\.1:\d+( [^;]*)?;\n", re.MULTILINE)
_LISTEN = re.compile(r"^(\s*)listen \d+;$", re.MULTILINE)


def nginx_binary() -> str:
    """The nginx program, or skip: scripts/test.sh installs it as root."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)
    if found is None:
        pytest.skip("nginx is not installed (scripts/test.sh installs nginx-light when run as root)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def site_config(upstreams: Sequence[int], listen: int) -> str:
    """The shipped site file with these upstream ports and listen port."""
    text = SITE.read_text(encoding="utf-8")
    template = _UPSTREAM_SERVER.search(text)
    assert template is not None and _LISTEN.search(text), f"{SITE} changed shape"
    indent, options = template.group(1), template.group(2) or ""
    servers = "".join(f"{indent}server 127.0.0.1:{port}{options};\n" for port in upstreams)
    seen: list[int] = []

    def replace(_: re.Match[str]) -> str:
        """The first server line becomes ours, the others go."""
        seen.append(1)
        return servers if len(seen) == 1 else ""

    text = _UPSTREAM_SERVER.sub(replace, text)
    return _LISTEN.sub(rf"\g<1>listen 127.0.0.1:{listen};", text)


def main_config(folder: Path, site: Path, connections: int = 1024) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(f"    {kind}_temp_path {folder / kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"{user}daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\n"
            f"error_log {folder / 'error.log'} info;\n"
            f"worker_rlimit_nofile {2 * connections + 100};\n"
            f"events {{ worker_connections {connections}; }}\n"
            "http {\n"
            # Which server answered each request, and what the ones tried said.
            "    log_format upstreams '$msec $request $status $body_bytes_sent"
            " $upstream_addr $upstream_status';\n"
            f"    access_log {folder / 'access.log'} upstreams;\n{temp}"
            f"    include {site};\n}}\n")


@contextmanager
def running_nginx(folder: Path, upstreams: Sequence[int], connections: int = 1024) -> Iterator[str]:
    """nginx with the shipped site in front of ``upstreams``; yields its URL.
    Each stream takes two of its ``connections`` (client and upstream)."""
    binary = nginx_binary()
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    site = folder / "tornado_sse.conf"
    site.write_text(site_config(upstreams, port), encoding="utf-8")
    conf = folder / "nginx.conf"
    conf.write_text(main_config(folder, site, connections), encoding="utf-8")
    proc = subprocess.Popen([binary, "-p", str(folder), "-e", str(folder / "error.log"),
                             "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                assert proc.stderr is not None
                raise AssertionError(f"nginx exited {proc.returncode}: {proc.stderr.read()!r}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not listen within 20 s"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
