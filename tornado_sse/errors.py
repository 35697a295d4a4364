"""The small error vocabulary, in the WordPress REST shape of SPEC §4.

Every error a client can see is an :class:`ApiError`; the base handler turns
it into JSON in one place. Anything else is a bug and becomes a generic 500
without details (the traceback goes to the log, never to the client).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error with its HTTP status, WordPress code and message."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: int | None = None,
                 headers: dict[str, str] | None = None, **data: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.data = status, code, message, data
        #: Seconds for a ``Retry-After`` header (503, 429).
        self.retry_after = retry_after
        #: Further response headers (``WWW-Authenticate``).
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body: ``{"code", "message", "data": {"status", ...}}``."""
        return {"code": self.code, "message": self.message,
                "data": {"status": self.status, **self.data}}


def invalid_params(params: dict[str, str]) -> ApiError:
    """400 naming each bad parameter and why, as WordPress does."""
    return ApiError(400, "rest_invalid_param",
                    "Invalid parameter(s): " + ", ".join(sorted(params)), params=params)


#: The one body every 401 and 403 has (SPEC §4), whatever the cause.
DENIED = "Sorry, you are not allowed to do that."


def unauthorized(description: str, *, error: str = "invalid_token") -> ApiError:
    """401: no token, or one that is malformed, badly signed or expired.

    The body is always the same (SPEC §4); what was wrong goes in the
    ``WWW-Authenticate`` challenge (RFC 6750 §3): ``invalid_request`` when
    no usable token was sent, ``invalid_token`` for one that fails, with an
    ``error_description`` a client or a log can tell expired from forged by.
    """
    text = description.replace("\\", "").replace('"', "'")
    challenge = f'Bearer realm="tornado_sse", error="{error}", error_description="{text}"'
    return ApiError(401, "rest_forbidden", DENIED, headers={"WWW-Authenticate": challenge})


def key_reused() -> ApiError:
    """422: an Idempotency-Key sent again with another request (SPEC §8)."""
    return ApiError(422, "rest_idempotency_key_reused", "This Idempotency-Key was used with a different request.")


def forbidden(message: str = DENIED) -> ApiError:
    """403: a valid token whose role may not do this."""
    return ApiError(403, "rest_forbidden", message)


def not_found(message: str = "No route was found matching the URL and request method.") -> ApiError:
    return ApiError(404, "rest_no_route", message)


def unavailable(message: str = "The database is unreachable; try again shortly.") -> ApiError:
    """503 while the database is down, for a request that needs it."""
    return ApiError(503, "rest_unavailable", message, retry_after=5, reason="unreachable")


def read_only() -> ApiError:
    """503 when the database answers but takes no writes: SQLSTATE 25006,
    as after a failover to a replica or with ``default_transaction_read_only``
    (issue 19: it was a 500 with a traceback). Nothing was written."""
    return ApiError(503, "rest_unavailable", "The database is read-only for now; try again shortly.",
                    retry_after=5, reason="read_only")


def cannot_write() -> ApiError:
    """503 when the database cannot take the request for want of resources
    (SQLSTATE class 53: disk full, out of memory, too many connections)."""
    return ApiError(503, "rest_unavailable", "The database cannot take this request now; "
                    "try again shortly.", retry_after=5, reason="resources")


def too_many_streams(limit: int) -> ApiError:
    """429: this token already has ``limit`` open streams (others unaffected)."""
    return ApiError(429, "rest_too_many_streams",
                    f"This token already has {limit} open streams; close one or retry later.",
                    retry_after=10)


def too_many_snapshots(limit: int) -> ApiError:
    """429: this token already has ``limit`` snapshots being read (others
    unaffected): each holds memory and possibly a database connection."""
    return ApiError(429, "rest_too_many_snapshots",
                    f"This token already has {limit} snapshots in progress; retry when one is done.",
                    retry_after=5)


def busy(message: str = "The database is busy; try again shortly.") -> ApiError:
    """503 when the database answers but not in time: every pooled connection
    is in use, a row lock was not granted within the lock timeout, or a
    statement ran past its time. Said apart from "unreachable" (SPEC §4) so
    an operator knows whether to look at load or at the network."""
    return ApiError(503, "rest_busy", message, retry_after=1, reason="busy")
