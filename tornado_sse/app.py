"""The Tornado application: routes and their per-route options."""

from __future__ import annotations

import logging

from tornado.web import Application, RequestHandler

from .auth import redact
from .context import Context
from .errors import not_found
from .handlers.base import BaseHandler
from .handlers.health import HealthHandler, MetricsHandler
from .handlers.session import MeHandler, SessionHandler
from .handlers.sse import SSEHandler

access_log = logging.getLogger("tornado.access")


class NotFoundHandler(BaseHandler):
    """Unknown paths get the same JSON error shape as everything else."""

    def prepare(self) -> None:
        raise not_found()


def log_request(handler: RequestHandler) -> None:
    """Access log line with tokens masked (SPEC §4: never in logs)."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    request = handler.request
    access_log.log(level, "%d %s %s (%s) %.1fms", status, request.method, redact(request.uri or ""),
                   request.remote_ip, 1000.0 * request.request_time())


def make_app(ctx: Context) -> Application:
    s = ctx.settings
    sse_routes = [
        (r"/sse", "sse", s.max_events, s.stream_timeout),
        (r"/wc-appointments/v2/sse", "wc", s.wc_max_events, s.wc_stream_timeout),
        (r"/wp-json/wc-appointments/v2/sse", "wc", s.wc_max_events, s.wc_stream_timeout),
    ]
    routes: list = [
        (path, SSEHandler, {"ctx": ctx, "route": route, "max_events": n, "stream_timeout": t})
        for path, route, n, t in sse_routes
    ]
    routes += [
        (r"/session", SessionHandler, {"ctx": ctx}),
        (r"/api/me", MeHandler, {"ctx": ctx}),
        (r"/healthz", HealthHandler, {"ctx": ctx}),
        (r"/metrics", MetricsHandler, {"ctx": ctx}),
    ]
    return Application(
        routes,
        default_handler_class=NotFoundHandler,
        default_handler_args={"ctx": ctx},
        log_function=log_request,
        compress_response=False,  # SPEC §3: never compressed (it would buffer the stream)
        cors_origins=frozenset(s.cors_origins),
    )
