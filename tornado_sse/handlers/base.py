"""What every handler shares: the context, auth, parameters, errors, CORS.

Errors become responses here and only here (STYLE §8): an :class:`ApiError`
renders as WordPress-shaped JSON with its status and logs no traceback;
Tornado's own errors (404, 405, ...) get the same shape; anything else is a
500 with a generic body and a logged traceback.
"""

from __future__ import annotations

import hashlib
import json
import logging
from asyncio import Future
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg_pool import PoolTimeout
from tornado.http1connection import HTTP1Connection
from tornado.iostream import StreamClosedError
from tornado.web import HTTPError, RequestHandler, stream_request_body

from ..auth import MAX_ID, redact_uri
from ..calendar_rows import Limits
from ..edge import EdgeIOStream
from ..errors import ApiError, busy, cannot_write, invalid_params, read_only, unavailable
from ..idempotency import Idempotency
from ..quota import Refusal
from ..validation import DuplicateKey, Invalid, idempotency_key, parse_json, query_control_characters

if TYPE_CHECKING:
    from ..auth import Principal
    from ..context import Context

log = logging.getLogger("tornado_sse.http")
_T = TypeVar("_T")

#: Database errors that mean "answering, but not in time" (SPEC §7); a
#: serialization failure or deadlock (class 40) is worth a retry as well.
_BUSY = (PoolTimeout, psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled,
         psycopg.errors.TransactionRollback)


def database_error(exc: Exception) -> ApiError | None:
    """The 503 a database failure becomes, saying whether it is busy or
    unreachable; None for anything else (a bug: 500)."""
    if isinstance(exc, _BUSY):
        return busy()
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return read_only()
    if isinstance(exc, psycopg.errors.InsufficientResources):
        return cannot_write()
    if isinstance(exc, psycopg.OperationalError):
        return unavailable()
    return None


#: What the access log shows for a request whose client hung up (nginx's code).
CLIENT_CLOSED = 499

#: On every response (SPEC §7): no MIME sniffing of JSON or scripts, and no
#: Referer, so a page opened as ``/?token=...`` never sends its address, and
#: the token in it, to anyone (it did, from 12 of 19 subresource requests).
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

_TORNADO_CODES = {404: "rest_no_route", 405: "rest_no_route", 400: "rest_invalid_request"}


#: Methods whose body a handler may read.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@stream_request_body
class BaseHandler(RequestHandler):
    """Handlers receive their dependencies through ``initialize`` (no globals).

    Every handler streams its request body (``stream_request_body``) so that
    :meth:`prepare` runs on the headers alone, before a single body byte is
    read: the size limit is decided on ``Content-Length`` (413), and the
    token is checked first (401/403), so an anonymous 50 MB POST costs the
    server nothing but its headers (SPEC §7).
    """

    ctx: Context
    #: This route's body limit in bytes (None: the server's --max-body-size).
    body_limit: int | None = None
    #: Whether the token is checked before the body is read (all but /session,
    #: whose body is the token).
    auth_before_body = True

    def initialize(self, ctx: Context) -> None:
        self.ctx = ctx
        self._counted = False
        self._body = bytearray()
        self._expect_body = False
        #: The client hung up (a late answer or a pending write is pointless).
        self.gone = False
        #: This answer is one of a flood logged as a sampled summary elsewhere.
        self.log_sampled = False

    def on_connection_close(self) -> None:
        """The client hung up: the request ends here (SPEC §7).

        Tornado's own version fails the body future, without which a
        handler waiting for the rest of an abandoned body waited for ever,
        holding its partial body (300 such requests: +300 MB, and 751
        "in flight" answered 500 at shutdown). Tornado then drops such a
        request without finishing it (``on_finish`` never runs), so it
        stops counting as in flight here: nobody is left to answer."""
        self.gone = True
        self._body = bytearray()  # free the partial body now, not when the handler is collected
        super().on_connection_close()
        self._uncount()

    async def prepare(self) -> None:
        self.ctx.inflight += 1
        self._counted = True
        self._refuse_repeated_parameters()
        headers = self.request.headers
        chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        raw_length = headers.get("Content-Length")
        self._expect_body = chunked or raw_length not in (None, "", "0")
        if not self._expect_body:
            return
        if self.request.method in _BODY_METHODS and self.auth_before_body:
            # SPEC §7: auth is checked on the headers first, so an anonymous
            # client learns nothing but 401 whatever it declares.
            self.principal()
        limit = self.body_limit or self.ctx.settings.max_body_size
        if raw_length is not None and not chunked:
            if not (raw_length.isascii() and raw_length.isdigit()):
                raise invalid_params({"Content-Length": "Content-Length must be ASCII digits."})
            if int(raw_length) > limit:
                raise ApiError(413, "rest_body_too_large", f"The request body may be at most {limit} bytes.",
                               limit=limit)
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection):
            connection.set_max_body_size(limit)  # chunked bodies stop there too

    def data_received(self, chunk: bytes) -> None:
        # A GET's body means nothing (RFC 9110 §9.3.1): read to keep the
        # connection in step, but never held (200 abandoned 1 MB bodies on
        # GET /healthz and /poll held 200 MB).
        if self.request.method in _BODY_METHODS:
            self._body += chunk

    @property
    def body(self) -> bytes:
        """The request body, complete once the method handler runs."""
        return bytes(self._body)

    def flush(self, include_footers: bool = False) -> Future[None]:
        if not self._headers_written:
            stream = getattr(self.request.connection, "stream", None)
            if isinstance(stream, EdgeIOStream) and \
                    self._headers.get("Content-Type", "").startswith("text/event-stream"):
                # An event stream has its own slow-consumer cut (--max-buffer)
                # and may rightly be quiet; the write timeout is for the rest.
                stream.write_timeout_exempt = True
        return super().flush(include_footers)

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> Future[None]:
        future = super().finish(chunk)
        if self._expect_body and not self._body_complete():
            # Answered before the body was read (413, 401, ...): close once
            # the answer is out, rather than read (or misparse) what follows.
            stream = getattr(self.request.connection, "stream", None)
            if stream is not None:
                future.add_done_callback(lambda _f: stream.close())
        return future

    def _body_complete(self) -> bool:
        body_future = getattr(self.request, "_body_future", None)
        return body_future is not None and body_future.done()

    def _refuse_repeated_parameters(self) -> None:
        """One rule everywhere (README): a parameter given twice is a 400,
        never "first wins" in one place and "last wins" in another; so is one
        whose name or value holds a control character (``%00``)."""
        repeated = {name: f"{name} is given more than once."
                    for name, values in self.request.query_arguments.items() if len(values) > 1}
        repeated.update(query_control_characters(self.request.query_arguments))
        if repeated:
            raise invalid_params(repeated)

    async def head(self, *args: str) -> None:
        """HEAD wherever GET works (load balancers probe with it)."""
        if type(self).get is RequestHandler.get:
            raise HTTPError(405)
        result = self.get(*args)
        if result is not None:
            await result

    def on_finish(self) -> None:
        self._uncount()
        stream = getattr(self.request.connection, "stream", None)
        if isinstance(stream, EdgeIOStream):
            stream.write_timeout_exempt = False  # the next request on this connection is not a stream

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            self.ctx.inflight -= 1

    # -- CORS ------------------------------------------------------------------
    def set_default_headers(self) -> None:
        # Runs before initialize() and again when an error resets the
        # headers, so the origin list comes from the application settings.
        origin = self.request.headers.get("Origin")
        if origin is not None and origin in self.application.settings["cors_origins"]:
            # Only listed origins, echoed, never "*": responses carry private
            # data and credentials (cookie) are allowed.
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Allow-Credentials", "true")
            # Write answers' headers a cross-origin calendar must read (SPEC §8).
            self.set_header("Access-Control-Expose-Headers", "ETag, Event-Id, Idempotent-Replayed")
        self.add_header("Vary", "Origin")
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)

    def options(self, *args: str) -> None:
        """Preflight: allowed origins may send the methods this route serves."""
        if "Access-Control-Allow-Origin" in self._headers:
            methods = [m for m in ("GET", "POST", "PATCH", "DELETE")
                       if getattr(type(self), m.lower()) is not getattr(RequestHandler, m.lower())]
            self.set_header("Access-Control-Allow-Methods", ", ".join([*methods, "OPTIONS"]))
            self.set_header("Access-Control-Allow-Headers",
                            "Authorization, Content-Type, Last-Event-ID, X-WP-Nonce, If-Match, Idempotency-Key")
            self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)

    # -- auth --------------------------------------------------------------------
    def principal(self) -> Principal:
        """Who is asking: raises 401/403 unless admin or staff (SPEC §4)."""
        return self.ctx.auth.authenticate(self.request)

    def require_started(self) -> None:
        """503 until the listener has reached the database once: before that
        the server cannot know which events a cursor has missed."""
        if not self.ctx.hub.started:
            raise unavailable("The server is still connecting to the database; retry shortly.")
        if self.ctx.hub.closed:  # a request on a kept-alive connection during shutdown
            raise unavailable("The server is shutting down; retry (another server answers).")

    # -- parameters --------------------------------------------------------------
    def int_arg(self, name: str, errors: dict[str, str], *, minimum: int = 0,
                maximum: int | None = None, default: int | None = None,
                value: str | None = None) -> int | None:
        """An integer query parameter; a bad one is recorded in ``errors``."""
        raw = value if value is not None else self.get_query_argument(name, None, strip=False)
        if raw is None or raw == "":
            return default
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
            # ASCII digits only (SPEC §7): int() also reads "+5", "5_0", "١٢".
            errors[name] = f"{name} must be a whole number in ASCII digits."
            return default
        number = int(raw)
        if maximum is None:
            maximum = MAX_ID  # ids and cursors are bigints
        if number < minimum or number > maximum:
            bound = f" and at most {maximum}"
            errors[name] = f"{name} must be at least {minimum}{bound}."
            return default
        return number

    @property
    def limits(self) -> Limits:
        """The bounds of this server's database transactions (SPEC §7)."""
        s = self.ctx.settings
        return Limits(lock_timeout=s.db_lock_timeout, statement_timeout=s.db_statement_timeout)

    def json_body(self) -> Any:
        """The request body's JSON; 415 unless sent as application/json,
        400 when it is not JSON or names a key twice."""
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            # Also a CSRF guard: a cross-site form cannot send this type
            # without a CORS preflight.
            raise ApiError(415, "rest_invalid_content_type", "Send the body as application/json.")
        try:
            return parse_json(self.body)
        except DuplicateKey as exc:
            raise invalid_params({exc.key: f"{exc}."}) from None
        except Invalid:
            raise invalid_params({"body": "The body is not valid JSON."}) from None

    def header(self, name: str, parse: Callable[[str], _T]) -> _T:
        """Header ``name`` (the caller checked it is there) through its
        validator; a 400 naming the header when it does not pass."""
        try:
            return parse(self.request.headers[name])
        except Invalid as exc:
            raise invalid_params({name: f"{name} {exc}."}) from None

    def idempotency(self, principal: Principal, body: Any) -> Idempotency | None:
        """The POST's Idempotency-Key (SPEC §8), scoped to the token's
        subject (one client's keys never answer another's), with a hash of
        the request: method, path and body."""
        if "Idempotency-Key" not in self.request.headers:
            return None
        key = self.header("Idempotency-Key", idempotency_key)
        who = principal.subject if principal.subject is not None else (principal.staff_id or "")
        request = f"{self.request.method} {self.request.path}\n" + json.dumps(
            body, sort_keys=True, separators=(",", ":"))
        return Idempotency(subject=f"{principal.role}:{who}", key=key,
                           request_hash=hashlib.sha256(request.encode("utf-8", "surrogatepass")).hexdigest())

    @staticmethod
    def check(errors: dict[str, str]) -> None:
        """Raise one 400 naming every bad parameter."""
        if errors:
            raise invalid_params(errors)

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body, separators=(",", ":")))

    # -- errors ------------------------------------------------------------------
    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if self.gone or isinstance(exc, StreamClosedError):
            # The client hung up (an abandoned body, a reset): nobody reads
            # an answer. 499, as nginx logs it, rather than a 500 that
            # would page someone for a client's departure.
            self.set_status(CLIENT_CLOSED, "Client Closed Request")
            self.finish()
            return
        if isinstance(exc, Refusal):
            self.log_sampled = True  # the quota logs a summary of these
        if isinstance(exc, ApiError):
            error = exc
        elif isinstance(exc, Exception) and (db_error := database_error(exc)) is not None:
            error = db_error
        elif isinstance(exc, HTTPError) or status_code < 500:
            error = ApiError(status_code, _TORNADO_CODES.get(status_code, "rest_error"),
                             self._reason)
        else:
            error = ApiError(500, "rest_internal_error", "Internal server error.")
        self.error_code = error.code  # the access log's reason
        self.set_status(error.status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        if error.retry_after is not None:
            self.set_header("Retry-After", str(error.retry_after))
        for name, value in error.headers.items():
            self.set_header(name, value)
        self.finish(json.dumps(error.body(), separators=(",", ":")))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, (ApiError, HTTPError, StreamClosedError)):
            # Expected: the access log line says enough; no traceback.
            return
        if isinstance(value, Exception) and database_error(value) is not None:
            first = str(value).strip().splitlines()
            log.warning("database %s for %s %s: %s", "busy" if isinstance(value, _BUSY) else "unavailable",
                        self.request.method, redact_uri(self.request.uri or ""),
                        first[0] if first else type(value).__name__)
            return
        # Tornado's own version prints the request with its URI and headers,
        # which may carry a token (SPEC §4: never in logs).
        log.error("uncaught exception in %s %s", self.request.method,
                  redact_uri(self.request.uri or ""), exc_info=(typ, value, tb))
