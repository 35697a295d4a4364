"""nginx with the shipped site file in front of tornado_sse servers.

What a deployment runs (deploy/nginx/tornado_sse.conf) with only its
upstream servers and listen port rewritten; the main configuration keeps
every path (pid, logs, temp files) in the caller's folder, so nginx runs as
a plain subprocess beside the system's own. Shared by the scale-out test
and the sizing benchmark.
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

_UPSTREAM_SERVER = re.compile(r"^(\s*)server 127\.0\.0\.1:\d+( [^;]*)?;\n", re.MULTILINE)
_LISTEN = re.compile(r"^(\s*)listen \d+;$", re.MULTILINE)


class NginxError(RuntimeError):
    """nginx is missing, did not start, or the site file changed shape."""


def find_nginx() -> str | None:
    """The nginx program, or None when it is not installed."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


def free_port() -> int:
    """A port nothing listens on now (the usual small race is acceptable here)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def site_config(site: Path, upstreams: Sequence[int], listen: int) -> str:
    """The site file ``site`` with these upstream ports and listen port."""
    text = site.read_text(encoding="utf-8")
    template = _UPSTREAM_SERVER.search(text)
    if template is None or not _LISTEN.search(text):
        raise NginxError(f"{site} changed shape: no 'server 127.0.0.1:PORT' or 'listen PORT' line")
    indent, options = template.group(1), template.group(2) or ""
    servers = "".join(f"{indent}server 127.0.0.1:{port}{options};\n" for port in upstreams)
    seen: list[int] = []

    def replace(_: re.Match[str]) -> str:
        """The first server line becomes ours, the others go."""
        seen.append(1)
        return servers if len(seen) == 1 else ""

    text = _UPSTREAM_SERVER.sub(replace, text)
    return _LISTEN.sub(rf"\g<1>listen 127.0.0.1:{listen};", text)


def main_config(folder: Path, site: Path, connections: int, *, access_log: bool = False) -> str:
    """Everything around the site: one worker, all paths inside ``folder``;
    with ``access_log``, which server answered each request and what the
    ones tried said, in ``folder/access.log``."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    log = ("    log_format upstreams '$msec $request $status $body_bytes_sent"
           " $upstream_addr $upstream_status';\n"
           f"    access_log {folder / 'access.log'} upstreams;\n") if access_log else "    access_log off;\n"
    temp = "".join(f"    {kind}_temp_path {folder / kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"{user}daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\n"
            f"error_log {folder / 'error.log'} {'info' if access_log else 'warn'};\n"
            f"worker_rlimit_nofile {2 * connections + 100};\n"
            f"events {{ worker_connections {connections}; }}\n"
            f"http {{\n{log}{temp}    include {site};\n}}\n")


@contextmanager
def running_nginx(site_file: Path, folder: Path, upstreams: Sequence[int], connections: int = 1024, *,
                  access_log: bool = False) -> Iterator[str]:
    """nginx with ``site_file`` (deploy/nginx/tornado_sse.conf) in front of
    ``upstreams``; yields its URL. Each stream takes two of its
    ``connections`` (client and upstream)."""
    binary = find_nginx()
    if binary is None:
        raise NginxError("nginx is not installed (apt-get install -y nginx-light)")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    site = folder / "tornado_sse.conf"
    site.write_text(site_config(site_file, upstreams, port), encoding="utf-8")
    conf = folder / "nginx.conf"
    conf.write_text(main_config(folder, site, connections, access_log=access_log), encoding="utf-8")
    proc = subprocess.Popen([binary, "-p", str(folder), "-e", str(folder / "error.log"),
                             "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                assert proc.stderr is not None
                raise NginxError(f"nginx exited {proc.returncode}: {proc.stderr.read()!r}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise NginxError("nginx did not listen within 20 s") from None
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
