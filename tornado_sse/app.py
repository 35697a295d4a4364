"""The Tornado application: routes and their per-route options, the output
transforms every answer goes through (request id, gzip), and the access log."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tornado.web import Application, HTTPError, RequestHandler, StaticFileHandler

from .auth import redact_uri
from .compress import Compression
from .context import Context
from .errors import ApiError, not_found
from .handlers.api import (
    AppointmentHandler,
    AppointmentsHandler,
    AvailabilitiesHandler,
    AvailabilityHandler,
    UnavailableHandler,
)
from .handlers.base import SECURITY_HEADERS, BaseHandler
from .handlers.customers import CustomerHandler, CustomersHandler
from .handlers.directory import DirectoryHandler
from .handlers.export import IcsHandler
from .handlers.health import HealthHandler, LiveHandler, MetricsHandler, ReadyHandler
from .handlers.openapi import OpenApiHandler
from .handlers.poll import PollHandler
from .handlers.session import MeHandler, SessionHandler
from .handlers.sse import SSEHandler
from .logfmt import fields
from .requestid import RequestIdTransform, request_id
from .tracing import Tracing

access_log = logging.getLogger("tornado.access")

STATIC = Path(__file__).resolve().parent / "static"


class StaticFiles(StaticFileHandler):
    """The page's scripts and styles, with errors in the JSON shape of SPEC §4
    (Tornado's are HTML) and no 500 for a hostile path (a NUL byte made
    ``os.path`` raise)."""

    def set_default_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)

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
        self.error_code = error.code  # the access log's reason
        self.set_status(error.status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(error.body(), separators=(",", ":")))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, (ApiError, HTTPError)):
            return  # expected: the access log line says enough
        super().log_exception(typ, value, tb)


#: The calendar page's policy (SPEC §7): no framing by any page (it was
#: frameable by any same-site page: clickjacking of admin actions), and only
#: the page's own scripts, styles and connections. The legend's colour
#: swatches are ``style="--c:..."`` attributes, hence ``style-src-attr``.
CALENDAR_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
                "img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; "
                "base-uri 'none'; frame-ancestors 'none'")


class CalendarHandler(StaticFiles):
    """``GET /``: the calendar page (one file, served without a redirect)."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Content-Security-Policy", CALENDAR_CSP)
        self.set_header("X-Frame-Options", "DENY")  # for browsers without frame-ancestors

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


def route_template(pattern: str) -> str:
    """A route's path as OpenAPI and the logs name it: ``/api/appointments/{id}``."""
    named = re.sub(r"\([^)]*\)", lambda m: "{id}" if "\\d" in m.group() else "{path}", pattern)
    return re.sub(r"\\(.)", r"\1", named)  # "/openapi\.json" is "/openapi.json"


_CHALLENGE_REASON = re.compile(r'error_description="([^"]*)"')


def _reason(handler: RequestHandler, status: int) -> str | None:
    """Why a request failed or a stream ended, for the log's ``reason``."""
    if isinstance(handler, SSEHandler) and handler.stream is not None and handler.stream.ended:
        return handler.stream.ended
    if status == 401:
        found = _CHALLENGE_REASON.search(str(handler._headers.get("WWW-Authenticate", "")))
        if found:
            return found.group(1)
    if status >= 400:
        code = getattr(handler, "error_code", None)
        return code if isinstance(code, str) else handler._reason
    return None


def access_logger(patterns: list[tuple[re.Pattern[str], str]],
                  tracing: Tracing) -> Callable[[RequestHandler], None]:
    """The access log: one line per request, its facts as fields (route,
    status, duration_ms, bytes, reason, events, request_id), the target with
    tokens masked (SPEC §4: never in logs); and its span, when tracing."""

    def log_request(handler: RequestHandler) -> None:
        if getattr(handler, "log_sampled", False):
            return  # one of a flood of refusals; logged as a sampled summary
        status = handler.get_status()
        level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
        request = handler.request
        target = redact_uri(request.uri or "")
        route = next((template for regex, template in patterns if regex.fullmatch(request.path)), None)
        events = sent = None
        if isinstance(handler, SSEHandler) and handler.stream is not None:
            events, sent = handler.stream.events_sent, handler.stream.bytes_sent
        elif "Content-Length" in handler._headers:
            length = str(handler._headers["Content-Length"])
            sent = int(length) if length.isdigit() else None
        duration, reason, rid = request.request_time(), _reason(handler, status), request_id(request)
        # The message keeps the text line people grep ("503 GET /healthz").
        access_log.log(level, "%d %s %s", status, request.method, target, extra=fields(
            route=route, method=request.method, target=target, status=status,
            duration_ms=round(1000.0 * duration, 1), bytes=sent, events=events,
            reason=reason, remote_ip=request.remote_ip, request_id=rid))
        if tracing.enabled:
            tracing.request(method=request.method or "", path=request.path, route=route, status=status,
                            duration=duration, headers=request.headers,
                            attributes={"request_id": rid, "events": events, "bytes": sent, "reason": reason})

    return log_request


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
        (r"/api/appointments\.ics", IcsHandler, {"ctx": ctx}),
        (r"/api/availabilities", AvailabilitiesHandler, {"ctx": ctx}),
        (r"/api/availabilities" + item, AvailabilityHandler, {"ctx": ctx}),
        (r"/api/unavailable", UnavailableHandler, {"ctx": ctx}),
        (r"/api/directory", DirectoryHandler, {"ctx": ctx}),
        (r"/api/customers", CustomersHandler, {"ctx": ctx}),
        (r"/api/customers" + item, CustomerHandler, {"ctx": ctx}),
        (r"/", CalendarHandler, {"path": str(STATIC / "calendar.html")}),
        (r"/static/(.*)", StaticFiles, {"path": str(STATIC)}),
        (r"/session", SessionHandler, {"ctx": ctx}),
        (r"/api/me", MeHandler, {"ctx": ctx}),
        (r"/healthz", HealthHandler, {"ctx": ctx}),
        (r"/livez", LiveHandler, {"ctx": ctx}),
        (r"/readyz", ReadyHandler, {"ctx": ctx}),
        (r"/metrics", MetricsHandler, {"ctx": ctx}),
        (r"/openapi\.json", OpenApiHandler, {"ctx": ctx}),
    ]
    patterns = [(re.compile(spec[0]), route_template(spec[0])) for spec in routes]
    return Application(
        routes,
        # The request id reaches every answer; gzip reaches files and JSON,
        # never an event stream (SPEC §3: it would hold events back).
        transforms=[RequestIdTransform, Compression],
        default_handler_class=NotFoundHandler,
        default_handler_args={"ctx": ctx},
        log_function=access_logger(patterns, ctx.tracing),
        cors_origins=frozenset(s.cors_origins),
    )
