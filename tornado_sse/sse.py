"""Server-Sent Events wire format: pure functions from values to bytes.

No I/O here, so every rule is provable on exact bytes (tests/test_sse.py).

Deliberate choices, so that no one "fixes" them:

- ``data`` is split on CRLF, CR and LF into one ``data:`` line each, as the
  WHATWG parser joins them back with LF. A value can therefore never forge a
  field: an embedded ``\\nid: 999`` becomes ``data: id: 999``.
- ``id`` and ``event`` are single-line fields: CR, LF and NUL are removed
  (an ``id`` with NUL is ignored by browsers, which would silently break
  resume). NUL is removed from data as well (SPEC §3: field values never
  contain CR, LF or NUL).
- ``retry`` must be a non-negative integer; anything else is a bug in the
  caller, so it raises.
- Every frame ends with one blank line; comments are ``: text`` lines and
  are ignored by clients, which makes them the keepalive.
- The heartbeat (SPEC §3, ``?heartbeat=S``) is an event a page *can* see,
  but it has no ``id:`` line: a browser keeps its Last-Event-ID, so the
  resume cursor never moves past an event the client has not received.
"""

from __future__ import annotations

import re

_NEWLINES = re.compile(r"\r\n|\r|\n")
_FIELD_FORBIDDEN = str.maketrans("", "", "\r\n\0")


def _field(value: str) -> str:
    """A single-line field value: CR, LF and NUL removed."""
    return value.translate(_FIELD_FORBIDDEN)


def frame(data: str, *, event: str | None = None, id: int | str | None = None) -> bytes:
    """One event: optional ``id:`` and ``event:``, the data lines, a blank line."""
    lines: list[str] = []
    if id is not None:
        lines.append("id: " + _field(str(id)))
    if event is not None:
        lines.append("event: " + _field(event))
    for line in _NEWLINES.split(data.replace("\0", "")):
        lines.append("data: " + line)
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def retry(milliseconds: int) -> bytes:
    """The ``retry:`` field telling a client how long to wait before reconnecting."""
    if isinstance(milliseconds, bool) or not isinstance(milliseconds, int) or milliseconds < 0:
        raise ValueError(f"retry must be a non-negative integer, not {milliseconds!r}")
    return b"retry: %d\n\n" % milliseconds


def comment(text: str = "") -> bytes:
    """A comment line (``: text``), ignored by clients; used as keepalive."""
    return (": " + _field(text) + "\n\n").encode("utf-8") if text else b":\n\n"


KEEPALIVE = comment("keepalive")


def heartbeat(last_id: int) -> bytes:
    """``event: heartbeat`` with ``{"last_id": N}`` and no ``id:`` (SPEC §3).

    ``last_id`` is the stream's cursor, the id of the last event it sent:
    a page that holds a smaller id knows it missed one and resumes.
    """
    return b'event: heartbeat\ndata: {"last_id": %d}\n\n' % last_id


def http_chunk(payload: bytes) -> bytes:
    """``payload`` as one HTTP/1.1 chunk (RFC 9112 §7.1).

    Kept beside the frames because an event is encoded once, in both forms,
    and the same bytes go to every stream (STYLE: encode once).
    """
    return b"%x\r\n%b\r\n" % (len(payload), payload) if payload else b""
