"""GET /healthz and GET /metrics (SPEC §6)."""

from __future__ import annotations

import os
import time

from prometheus_client import CONTENT_TYPE_LATEST

from ..stream import open_streams
from .base import BaseHandler


class HealthHandler(BaseHandler):
    """200 while the listener is connected, 503 otherwise, with the reason."""

    def get(self) -> None:
        listener = self.ctx.listener
        hub = self.ctx.hub
        body = {
            "status": "ok" if listener.connected else "unavailable",
            "listener": listener.state.value,
            "last_event_id": hub.last_id,
            # Seconds since the listener last heard from the database (a read
            # or a liveness check); grows while it is cut off.
            "last_contact_age": round(time.monotonic() - listener.last_contact, 3)
            if listener.last_contact else None,
            # Commit-to-fan-out delay of the newest event, seconds.
            "lag": self.ctx.metrics.last_lag,
            "streams": len(open_streams(self.ctx.hub)),
            "reconnects": listener.reconnects,
            "pid": os.getpid(),  # which server process answered (--processes N)
            "time": int(time.time()),
        }
        if not listener.connected and listener.last_error:
            body["reason"] = listener.last_error
        self.set_header("Cache-Control", "no-store")
        self.write_json(body, 200 if listener.connected else 503)


class MetricsHandler(BaseHandler):
    """Prometheus text format; unauthenticated like most exporters, so keep
    the port private or put auth in front (README)."""

    def get(self) -> None:
        self.ctx.metrics.listener_reconnects.set(self.ctx.listener.reconnects)
        self.ctx.metrics.log_reads.set(self.ctx.listener.log_reads)
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(self.ctx.metrics.render())
