"""The event: one row of ``sse_events``, encoded once for every transport.

The JSON envelope (SPEC §2), its SSE frame and that frame as an HTTP chunk
are built when the row is read, once per process, and every stream gets
the same bytes: fan-out cost does not grow with the size of the payload.

An event arrives in one of two ways: a row read by cursor
(:meth:`Event.from_row`) or the body of a notification whose proof the
listener has checked (:meth:`Event.from_notification`, sql/004). Both build
the same bytes. The notification path only slices and formats: it runs
once per event per server, so it does no JSON decoding (issue 21). Where
the C extension is built, :data:`from_proven_notification` does the proof
and this parse in one call for the common shape (tornado_sse/_notice.c).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from . import sse

TOPICS: tuple[str, ...] = (
    "appointment.created", "appointment.updated", "appointment.rescheduled",
    "appointment.cancelled", "appointment.trashed", "appointment.deleted",
    "availability.created", "availability.updated", "availability.deleted",
)
_TOPICS = frozenset(TOPICS)
_RESOURCES = frozenset(("appointment", "availability"))

#: Columns in the order :meth:`Event.from_row` takes them.
COLUMNS = ("id, topic, resource, resource_id, payload::text, ts, staff_ids, product_ids,"
           " extract(epoch FROM created_at)::float8, actor::text")


class Event(NamedTuple):
    """An event as every stream sees it (a tuple: small, immutable, cheap)."""

    id: int
    topic: str
    resource: str
    resource_id: int
    #: Staff the event concerns; None: everyone (a global availability rule).
    staff_ids: frozenset[int] | None
    #: Products the event concerns; None: every product.
    product_ids: frozenset[int] | None
    #: Commit-side time, epoch seconds, for latency measurements.
    created_at: float
    json: str
    frame: bytes
    chunk: bytes
    #: Bytes this event holds in memory (its three encodings), roughly;
    #: counted once, for the hub's window adds and drops it per event.
    size: int

    @classmethod
    def from_notification(cls, body: str) -> Event:
        """Build from the body of a proven notification (sql/004's format:
        ``id created_at staff products topic resource resource_id envelope``).

        The envelope is cut out as it is, the bytes :meth:`from_row` builds.
        Raises ValueError for anything not in that shape (the listener then
        reads the log by cursor); the proof is the listener's to check.
        """
        fields = body.split(" ", 7)
        if len(fields) != 8:
            raise ValueError("not an event notification")
        eid_text, created, staff, products, topic, resource, rid, envelope = fields
        eid = int(eid_text)
        if topic not in _TOPICS or resource not in _RESOURCES or not envelope.startswith('{"id":'):
            raise ValueError("notification: unexpected topic, resource or envelope")
        return cls(eid, topic, resource, int(rid), _ids(staff), _ids(products), float(created),
                   envelope, *_encode(envelope, topic, eid))

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Event:
        """Build from a row selected with :data:`COLUMNS`."""
        eid, topic, resource, resource_id, payload, ts, staff, products, created, actor = row
        envelope = (
            f'{{"id":{int(eid)},"topic":{json.dumps(topic)},"resource":{json.dumps(resource)},'
            f'"resource_id":{int(resource_id)},"payload":{payload},"ts":{int(ts)},'
            f'"actor":{"null" if actor is None else actor}}}'
        )
        return cls(
            int(eid), topic, resource, int(resource_id),
            None if staff is None else frozenset(staff),
            None if products is None else frozenset(products),
            float(created), envelope, *_encode(envelope, topic, int(eid)))


def _ids(text: str) -> frozenset[int] | None:
    """An audience field of the notification: "-" is NULL, "" is empty."""
    if text == "-":
        return None
    if text.isdigit():  # one id, the common case: no split
        return frozenset((int(text),))
    return frozenset(map(int, text.split(","))) if text else frozenset()


def _encode(envelope: str, topic: str, eid: int) -> tuple[bytes, bytes, int]:
    """The SSE frame, its HTTP chunk and the event's size, by formatting
    (one line of data: PostgreSQL's JSON text never holds a raw CR or LF,
    nor NUL)."""
    if "\n" in envelope or "\r" in envelope or "\0" in envelope or topic not in _TOPICS:
        frame = sse.frame(envelope, event=topic, id=eid)  # any other text: the general rules
    else:
        frame = f"id: {eid}\nevent: {topic}\ndata: {envelope}\n\n".encode()
    chunk = b"%x\r\n%b\r\n" % (len(frame), frame)
    return frame, chunk, len(envelope) + len(frame) + len(chunk)


class FastPath(Protocol):
    """``_notice.event``: ``(payload, inner, outer) -> Event | None``."""

    def __call__(self, payload: bytes, inner: Any, outer: Any, /) -> Event | None: ...


def _fast_path() -> FastPath | None:
    """The C extension's notification parser, configured with this module's
    topics and Event class; None where it was not built (no C compiler)."""
    try:
        from . import _notice
    except ImportError:
        return None
    _notice.configure(TOPICS, tuple(sorted(_RESOURCES)), Event)
    fast: FastPath = _notice.event
    return fast


#: Proof and parse of a trigger notification in one C call (the listener's
#: per-event hot path): the payload's Event if its HMAC checks under the
#: two pad states and it has the common shape, else None, and the listener
#: decides with :meth:`Event.from_notification` and its own proof check.
#: None where the extension is not built.
from_proven_notification: FastPath | None = _fast_path()


class Encoding(enum.Enum):
    """The bytes a subscriber wants alongside the events."""

    CHUNKED = "chunked"  # SSE frames as HTTP/1.1 chunks
    RAW = "raw"  # SSE frames, for HTTP/1.0 (connection-delimited) bodies
    NONE = "none"  # events only (long-poll)


def join(events: Sequence[Event], encoding: Encoding) -> bytes:
    """The bytes of ``events`` in ``encoding``: the one place that joins them.

    The hub calls it once per group and wake-up; a stream calls it only when
    it must send part of a batch (a one-shot limit) or a replay.
    """
    if len(events) == 1:  # most wake-ups carry one event: its own bytes, no copy
        event = events[0]
        return event.chunk if encoding is Encoding.CHUNKED else event.frame if encoding is Encoding.RAW else b""
    if encoding is Encoding.CHUNKED:
        return b"".join([e.chunk for e in events])
    if encoding is Encoding.RAW:
        return b"".join([e.frame for e in events])
    return b""
