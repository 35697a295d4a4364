"""The probes and metrics: /livez, /readyz, /healthz, /metrics (SPEC §6).

Three questions, three routes, so that a database blip never restarts a
server (issue 22): ``/livez`` is "is this process stuck?" (answered by the
event loop alone, never the database: a liveness probe restarts on
failure), ``/readyz`` is "should it get traffic now?" (database reachable
and writable, listener connected, not shutting down: a readiness probe
only takes it out of rotation), and ``/healthz`` keeps its old meaning for
existing monitors (the listener is connected). All are unauthenticated, so
they say what is wrong in generic words; the details go to the log.
"""

from __future__ import annotations

import os
import time

from prometheus_client import CONTENT_TYPE_LATEST

from ..listener import State
from ..readiness import OK
from ..stream import open_streams
from .base import BaseHandler

#: /healthz's reason, per listener state, in words that name no host, port
#: or server message (issue 19: the raw connection error was shown to anyone).
_REASONS = {State.STARTING: "connecting to the database",
            State.DISCONNECTED: "the database is unreachable",
            State.STOPPED: "the server is stopping"}


class LiveHandler(BaseHandler):
    """200 whenever the process's event loop runs this handler."""

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.write_json({"status": "ok", "pid": os.getpid()})


class ReadyHandler(BaseHandler):
    """200 when every check is ``ok``, else 503 naming the failed ones."""

    async def get(self) -> None:
        checks = await self.ctx.readiness.checks()
        failed = sorted(name for name, word in checks.items() if word != OK)
        keys = self.ctx.auth.key_status()
        if keys is not None:
            # --jwks-url (issue 22): not ready until the first key set has
            # loaded (tokens cannot be checked); a stale set (the identity
            # provider is down, cached keys serve) stays ready and says so,
            # so an IdP outage does not take every server out of rotation.
            checks["jwks"] = OK if keys["ready"] and not keys["stale"] else "stale" if keys["ready"] else "loading"
            if not keys["ready"]:
                failed = sorted([*failed, "jwks"])
        self.set_header("Cache-Control", "no-store")
        body: dict[str, object] = {"status": "unavailable" if failed else "ok", "checks": checks}
        if failed:
            body["failed"] = failed
            self.set_header("Retry-After", "5")
        self.write_json(body, 503 if failed else 200)


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
        if not listener.connected:
            body["reason"] = _REASONS.get(listener.state, "the database is unreachable")
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
