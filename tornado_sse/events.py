"""The event: one row of ``sse_events``, encoded once for every transport.

The JSON envelope (SPEC §2), its SSE frame and that frame as an HTTP chunk
are built when the row is read, once per process, and every stream gets
the same bytes: fan-out cost does not grow with the size of the payload.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import sse

TOPICS: tuple[str, ...] = (
    "appointment.created", "appointment.updated", "appointment.rescheduled",
    "appointment.cancelled", "appointment.trashed", "appointment.deleted",
    "availability.created", "availability.updated", "availability.deleted",
)

_DECODER = json.JSONDecoder()

#: Columns in the order :meth:`Event.from_row` takes them.
COLUMNS = ("id, topic, resource, resource_id, payload::text, ts, staff_ids, product_ids,"
           " extract(epoch FROM created_at)::float8")


@dataclass(frozen=True, slots=True)
class Event:
    """An event as every stream sees it."""

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

    @property
    def size(self) -> int:
        """Bytes this event holds in memory (its three encodings), roughly."""
        return len(self.json) + len(self.frame) + len(self.chunk)

    @classmethod
    def from_notification(cls, text: str) -> Event:
        """Build from a NOTIFY payload that carries the event (sql/002).

        The envelope is the notification's own prefix, up to ``"ts"``: the
        same bytes :meth:`from_row` builds, cut out rather than decoded and
        encoded again, so the payload (the bulk) is never parsed. Raises
        ValueError for anything not in that shape; the listener then reads
        the log by cursor instead.
        """
        cut = text.rfind(',"staff_ids":')
        ts_at = text.rfind(',"ts":', 0, cut)
        if not text.startswith('{"id":') or cut < 0 or ts_at < 0:
            raise ValueError("not an event notification")
        decode = _DECODER.raw_decode
        eid, end = decode(text, 6)
        fields: list[Any] = []
        for name in ("topic", "resource", "resource_id"):
            key = f',"{name}":'
            if not text.startswith(key, end):
                raise ValueError(f"notification: expected {name}")
            value, end = decode(text, end + len(key))
            fields.append(value)
        if not text.startswith(',"payload":{', end):
            raise ValueError("notification: expected payload")
        topic, resource, resource_id = fields
        ts = int(text[ts_at + 6:cut])
        tail = json.loads("{" + text[cut + 1:])
        envelope = text[:cut] + "}"
        frame = sse.frame(envelope, event=topic, id=eid)
        staff, products = tail["staff_ids"], tail["product_ids"]
        if not (isinstance(eid, int) and isinstance(topic, str) and isinstance(resource, str)
                and isinstance(resource_id, int)) or ts < 0:
            raise ValueError("notification: unexpected types")
        return cls(
            id=eid, topic=topic, resource=resource, resource_id=resource_id,
            staff_ids=None if staff is None else frozenset(staff),
            product_ids=None if products is None else frozenset(products),
            created_at=float(tail["created_at"]), json=envelope, frame=frame, chunk=sse.http_chunk(frame),
        )

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Event:
        """Build from a row selected with :data:`COLUMNS`."""
        eid, topic, resource, resource_id, payload, ts, staff, products, created = row
        envelope = (
            f'{{"id":{int(eid)},"topic":{json.dumps(topic)},"resource":{json.dumps(resource)},'
            f'"resource_id":{int(resource_id)},"payload":{payload},"ts":{int(ts)}}}'
        )
        frame = sse.frame(envelope, event=topic, id=eid)
        return cls(
            id=int(eid), topic=topic, resource=resource, resource_id=int(resource_id),
            staff_ids=None if staff is None else frozenset(staff),
            product_ids=None if products is None else frozenset(products),
            created_at=float(created), json=envelope, frame=frame, chunk=sse.http_chunk(frame),
        )


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
    if encoding is Encoding.CHUNKED:
        return b"".join([e.chunk for e in events])
    if encoding is Encoding.RAW:
        return b"".join([e.frame for e in events])
    return b""
