"""gzip for files and JSON answers, never for event streams (SPEC §3).

Tornado's ``compress_response`` compresses every ``text/*`` answer, which
includes ``text/event-stream``: a gzip stream only emits bytes in blocks, so
events would sit in the compressor (and in every proxy that waits for a
block) instead of reaching the calendar. :class:`Compression` is Tornado's
gzip transform with event streams excluded by type, which covers ``/sse``
and both WooCommerce routes whatever their path.

It also reads ``Accept-Encoding`` properly (Tornado's looks for the
substring, so ``gzip;q=0``, "anything but gzip", got gzip) and leaves
partial answers (206) alone: a compressed byte range is not the range the
client asked for.
"""

from __future__ import annotations

from tornado.httputil import HTTPHeaders, HTTPServerRequest
from tornado.web import GZipContentEncoding

#: Content types never compressed: each event must leave at once.
STREAM_TYPES = frozenset({"text/event-stream"})


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (RFC 9110 §12.5.3)."""
    star: bool | None = None
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        coding = name.strip().lower()
        if coding in ("gzip", "x-gzip"):
            return q > 0
        if coding == "*":
            star = q > 0
    return bool(star)


class Compression(GZipContentEncoding):
    """Tornado's gzip transform, minus event streams and partial answers."""

    def __init__(self, request: HTTPServerRequest) -> None:
        super().__init__(request)
        self._gzipping = accepts_gzip(request.headers.get("Accept-Encoding", ""))

    def _compressible_type(self, ctype: str) -> bool:
        return ctype not in STREAM_TYPES and super()._compressible_type(ctype)

    def transform_first_chunk(self, status_code: int, headers: HTTPHeaders, chunk: bytes,
                              finishing: bool) -> tuple[int, HTTPHeaders, bytes]:
        if status_code == 206:
            self._gzipping = False
        return super().transform_first_chunk(status_code, headers, chunk, finishing)
