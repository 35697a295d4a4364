"""One id per request, in the response and in every log line about it.

A proxy or client that already traces requests sends ``X-Request-Id``; the
server keeps it so one id follows a request through nginx, tornado_sse and
the caller's own logs. The header is the client's, so it is accepted only
when short and made of plain characters (up to 128 of letters, digits and
``._:+/=-``): a value with spaces, newlines or control characters would let
a client forge log lines, and a long one would bloat every line. Anything
else is replaced by a fresh id, never refused: a tracing header must not be
the reason a request fails.

:class:`RequestIdTransform` is a Tornado output transform, so the id reaches
every response (errors from any handler included) without each handler
remembering it.
"""

from __future__ import annotations

import re
import uuid

from tornado.httputil import HTTPHeaders, HTTPServerRequest
from tornado.web import OutputTransform

HEADER = "X-Request-Id"
_VALID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")
_ATTR = "tornado_sse_request_id"


def request_id(request: HTTPServerRequest) -> str:
    """The request's id: the client's valid ``X-Request-Id`` or a new one
    (made once per request, then remembered on it)."""
    known = getattr(request, _ATTR, None)
    if isinstance(known, str):
        return known
    sent = request.headers.get(HEADER, "")
    rid = sent if _VALID.fullmatch(sent) else uuid.uuid4().hex
    setattr(request, _ATTR, rid)
    return rid


class RequestIdTransform(OutputTransform):
    """Echo the request id in the response headers."""

    def __init__(self, request: HTTPServerRequest) -> None:
        self._id = request_id(request)

    def transform_first_chunk(self, status_code: int, headers: HTTPHeaders, chunk: bytes,
                              finishing: bool) -> tuple[int, HTTPHeaders, bytes]:
        headers[HEADER] = self._id
        return status_code, headers, chunk
