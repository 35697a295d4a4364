"""The stream parameters shared by /sse and /poll (SPEC §3, §5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..filters import Filter, InvalidTopic, parse_topics

#: The most events one /poll answer or one-shot /sse stream may ask for
#: (SPEC §7): ``max_events=9223372036854775807`` once made one poll build a
#: 37 MB answer over 100,000 events.
MAX_EVENTS = 1000

if TYPE_CHECKING:
    from ..auth import Principal
    from .base import BaseHandler


@dataclass(frozen=True)
class StreamQuery:
    """Where to start and what to send."""

    cursor: int | None  # None: start live, at the newest event
    filter: Filter
    max_events: int | None  # None: the route's default


def parse_stream_query(handler: BaseHandler, principal: Principal,
                       errors: dict[str, str]) -> StreamQuery:
    """Read cursor and filters; bad values are recorded in ``errors``.

    ``Last-Event-ID`` wins over ``since_id``: a browser reconnects to the
    same URL (still carrying the original since_id) with the header set.
    """
    header = handler.request.headers.get("Last-Event-ID")
    if header is not None and header.strip() != "":
        cursor = handler.int_arg("Last-Event-ID", errors, value=header)
    else:
        cursor = handler.int_arg("since_id", errors)
    topics: tuple[str, ...] = ()
    raw_topics = handler.get_query_argument("topics", None)
    if raw_topics:
        try:
            topics = parse_topics(raw_topics)
        except InvalidTopic as exc:
            errors["topics"] = f"topics: {exc} matches no known topic."
    flt = Filter(
        topics=topics,
        staff_id=handler.int_arg("staff_id", errors, minimum=1),
        product_id=handler.int_arg("product_id", errors, minimum=1),
        audience_staff_id=principal.audience_staff_id,
    )
    max_events = handler.int_arg("max_events", errors, minimum=1, maximum=MAX_EVENTS)
    return StreamQuery(cursor=cursor, filter=flt, max_events=max_events)
