"""The Tornado application: routes and their per-route options."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from tornado.web import Application, HTTPError, RequestHandler, StaticFileHandler

from .auth import redact_uri
from .context import Context
from .errors import ApiError, not_found
from .handlers.api import (
    AppointmentHandler,
    AppointmentsHandler,
    AvailabilitiesHandler,
    AvailabilityHandler,
    UnavailableHandler,
)
from .handlers.base import BaseHandler
from .handlers.directory import DirectoryHandler
from .handlers.health import HealthHandler, MetricsHandler
from .handlers.poll import PollHandler
from .handlers.session import MeHandler, SessionHandler
from .handlers.sse import SSEHandler

access_log = logging.getLogger("tornado.access")

STATIC = Path(__file__).resolve().parent / "static"


class StaticFiles(StaticFileHandler):
    """The page's scripts and styles, with errors in the JSON shape of SPEC §4
    (Tornado's are HTML) and no 500 for a hostile path (a NUL byte made
    ``os.path`` raise)."""

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        if "\x00" in absolute_path:
            raise not_found()
        return super().validate_absolute_path(root, absolute_path)

    @classmethod
    def get_absolute_path(cls, root: str, path: str) -> str:
        if "\x00" in path:
            raise not_found()
        return super().get_absolute_path(root, path)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        error = exc if isinstance(exc, ApiError) else ApiError(
            status_code, "rest_no_route" if status_code in (403, 404) else "rest_error",
            "No file was found matching the URL." if status_code in (403, 404) else self._reason)
        self.set_status(error.status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(error.body(), separators=(",", ":")))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, (ApiError, HTTPError)):
            return  # expected: the access log line says enough
        super().log_exception(typ, value, tb)


class CalendarHandler(StaticFiles):
    """``GET /``: the calendar page (one file, served without a redirect)."""

    def initialize(self, path: str, default_filename: str | None = None,
                   allowed_symlink_directory: str | list[str] | None = None) -> None:
        self._page = Path(path)
        super().initialize(path=str(self._page.parent))

    def get(self, path: str = "", include_body: bool = True) -> Any:
        return super().get(self._page.name, include_body)

    def head(self, path: str = "") -> Any:
        return self.get(path, include_body=False)


class NotFoundHandler(BaseHandler):
    """Unknown paths get the same JSON error shape as everything else."""

    async def prepare(self) -> None:
        await super().prepare()
        raise not_found()


def log_request(handler: RequestHandler) -> None:
    """Access log line with tokens masked (SPEC §4: never in logs)."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    request = handler.request
    access_log.log(level, "%d %s %s (%s) %.1fms", status, request.method, redact_uri(request.uri or ""),
                   request.remote_ip, 1000.0 * request.request_time())


def make_app(ctx: Context) -> Application:
    s = ctx.settings
    sse_routes = [
        (r"/sse", "sse", s.max_events, s.stream_timeout),
        (r"/wc-appointments/v2/sse", "wc", s.wc_max_events, s.wc_stream_timeout),
        (r"/wp-json/wc-appointments/v2/sse", "wc", s.wc_max_events, s.wc_stream_timeout),
    ]
    routes: list[Any] = [
        (path, SSEHandler, {"ctx": ctx, "route": route, "max_events": n, "stream_timeout": t})
        for path, route, n, t in sse_routes
    ]
    routes += [
        (path, PollHandler, {"ctx": ctx, "route": route})
        for path, route in ((r"/poll", "poll"), (r"/wc-appointments/v2/poll", "wc-poll"),
                            (r"/wp-json/wc-appointments/v2/poll", "wc-poll"))
    ]
    item = r"/(\d{1,18})"  # ids are bigints: longer digit strings are 404, not a 500
    routes += [
        (r"/api/appointments", AppointmentsHandler, {"ctx": ctx}),
        (r"/api/appointments" + item, AppointmentHandler, {"ctx": ctx}),
        (r"/api/availabilities", AvailabilitiesHandler, {"ctx": ctx}),
        (r"/api/availabilities" + item, AvailabilityHandler, {"ctx": ctx}),
        (r"/api/unavailable", UnavailableHandler, {"ctx": ctx}),
        (r"/api/directory", DirectoryHandler, {"ctx": ctx}),
        (r"/", CalendarHandler, {"path": str(STATIC / "calendar.html")}),
        (r"/static/(.*)", StaticFiles, {"path": str(STATIC)}),
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
