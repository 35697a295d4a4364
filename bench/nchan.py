"""Nchan (nginx + libnginx-mod-nchan), the C baseline: its configuration,
where to find it, and how to start and stop it.

Channel ``bench`` carries the broadcast scenarios (``POST /pub``, streams on
``/sse``); the scoped scenario gives every staff member a channel of their
own (``POST /pub/<staff>``, streams on ``/sub/<staff>``), which is how one
would deploy Nchan for per-user calendars. Without the module the session
skips Nchan with a note (``apt-get install -y nginx libnginx-mod-nchan``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from harness import free_port, wait_port
from systems import HTTPPublisher

NGINX_CONF = """\
{load_module}
worker_processes {workers};
master_process on;
daemon off;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_rlimit_nofile 20000;
events {{
    worker_connections 20000;
    multi_accept on;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /pub {{
            nchan_publisher http;
            nchan_channel_id bench;
            nchan_message_buffer_length 200;
        }}
        location = /sse {{
            nchan_subscriber eventsource;
            nchan_channel_id bench;
            nchan_eventsource_event appointment.created;
            nchan_subscriber_first_message newest;
        }}
        # scoped: one channel per staff member
        location ~ ^/pub/(\\d+)$ {{
            nchan_publisher http;
            nchan_channel_id $1;
            nchan_message_buffer_length 20;
        }}
        location ~ ^/sub/(\\d+)$ {{
            nchan_subscriber eventsource;
            nchan_channel_id $1;
            nchan_eventsource_event appointment.created;
            nchan_subscriber_first_message newest;
        }}
    }}
}}
"""

NCHAN_MODULE_PATHS = ("/usr/lib/nginx/modules/ngx_nchan_module.so",
                      "/usr/share/nginx/modules/ngx_nchan_module.so",
                      "/usr/lib64/nginx/modules/ngx_nchan_module.so")


def find_nginx() -> tuple[str | None, str | None]:
    """(nginx binary, nchan module path) or Nones."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    module = next((c for c in NCHAN_MODULE_PATHS if os.path.exists(c)), None)
    return nginx, module


def nchan_version() -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libnginx-mod-nchan"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


class Nchan(HTTPPublisher):
    """nginx + Nchan: channel ``bench`` for broadcast, one channel per staff
    member (``/pub/<staff>``, ``/sub/<staff>``) for the scoped scenario."""

    name = "nchan"
    publish_path = "/pub"
    scoped = True

    def __init__(self, workdir: Path, template: dict[str, Any], nginx: str, module: str,
                 workers: int = 1) -> None:
        super().__init__(workdir, template)
        self.nginx, self.module = nginx, module
        self.workers = workers
        self.dir = workdir / "nginx"
        self.dir.mkdir(exist_ok=True)
        os.chmod(self.dir, 0o755)

    def start(self) -> None:
        self.port = free_port()
        user = "user root;" if os.geteuid() == 0 else ""
        conf = NGINX_CONF.format(load_module=f"load_module {self.module};", workers=self.workers,
                                 user=user, dir=self.dir, port=self.port)
        (self.dir / "nginx.conf").write_text(conf)
        argv = [self.nginx, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"),
                "-e", str(self.dir / "error.log")]
        self.proc = self._popen(argv)
        wait_port(self.port, 30, self.proc)

    def scoped_streams(self, staffs: list[int]) -> list[dict[str, Any]]:
        return [{"path": f"/sub/{s}", "tag": str(s), "headers": {}} for s in staffs]

    def publish_path_for(self, staff: int | None) -> str:
        return self.publish_path if staff is None else f"/pub/{staff}"

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()
            self.http = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful; SIGTERM is fast shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self.proc = None

    def version(self) -> str:
        out = subprocess.run([self.nginx, "-v"], capture_output=True, text=True)
        return (out.stderr or out.stdout).strip().replace("nginx version: ", "")
