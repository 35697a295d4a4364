"""The fan-out hub: subscribe, unsubscribe, publish, close.

It knows neither HTTP nor psycopg (STYLE §2). The listener publishes batches
of events in id order; transports subscribe objects that satisfy
:class:`Subscriber`. Subscribers with equal filters and encodings form a
group whose matching events and joined bytes are computed once per batch, so
a wake-up costs one join per distinct filter, not one per stream, and each
stream gets one write per wake-up however many events it carries.

The hub is the one registry of open subscriptions. It hands a subscriber
everything it needs in :meth:`Subscriber.deliver` and never asks it for
anything back; a subscription ends one way: the subscriber (or, at
shutdown, :meth:`Hub.close` through it) calls :meth:`Hub.unsubscribe`.

The hub also keeps a bounded window of recent events: a resume whose cursor
lies inside it is answered from memory, atomically with the subscription,
so replay and live hand over with no gap and no duplicate.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Sequence
from typing import Protocol

from .events import Encoding, Event, join
from .filters import Filter

log = logging.getLogger("tornado_sse.hub")


class Subscriber(Protocol):
    """What the hub needs of a stream or a waiting poll."""

    filter: Filter
    encoding: Encoding

    def deliver(self, events: Sequence[Event], data: bytes, upto: int) -> None:
        """Take the matching events of one batch.

        ``data`` is their joined bytes in this subscriber's encoding;
        ``upto`` is the id of the batch's newest event, matching or not
        (how far the log has been scanned for this subscriber). Must not
        block and must not raise: a subscriber that cannot keep up ends
        itself (and unsubscribes) instead.
        """

    def close(self, reason: str) -> None:
        """End the subscription (shutdown); the client will resume elsewhere.
        The subscriber unsubscribes itself."""


_GroupKey = tuple[Filter, Encoding]


def _staff_key(flt: Filter) -> int | None:
    """The staff member whose appointment events alone a filter can match
    (its audience, else its ?staff_id=); None: it can match any."""
    return flt.audience_staff_id if flt.audience_staff_id is not None else flt.staff_id


class _Group:
    """The subscribers of one (filter, encoding), and whether that filter
    takes every event, worked out once when the group is made.

    The hub routes events to these objects, never to their keys: a key's
    hash is two Python-level ``__hash__`` calls (a dataclass and an enum),
    which cost more per event than the routing itself (issue 21, round 3).
    """

    __slots__ = ("encoding", "everything", "filter", "subs")

    def __init__(self, key: _GroupKey) -> None:
        self.filter, self.encoding = key
        self.subs: set[Subscriber] = set()
        #: Every event matches (the common admin stream).
        self.everything = self.filter.everything


class Hub:
    """One per process. Not thread-safe: used from the IOLoop only."""

    def __init__(self, *, window: int = 10000, window_bytes: int = 0) -> None:
        self._groups: dict[_GroupKey, _Group] = {}
        # The index that makes fan-out cost per delivery, not per audience:
        # groups whose filter names a staff member (a staff token's audience,
        # or ?staff_id=) can only match appointment events of that staff
        # member, so such an event visits only their groups; every other
        # group is "broad" and sees every event.
        self._by_staff: dict[int, set[_Group]] = {}
        self._broad: set[_Group] = set()
        # One object for many equal filters (every admin stream's, say): a
        # stream holds the shared one, so the collector walks it once.
        self._filters: dict[Filter, Filter] = {}
        # Bounded by count and by bytes (0: no bound of that kind): a few huge
        # events must not pin gigabytes for the sake of fast resumes.
        self._window: collections.deque[Event] = collections.deque()
        self._window_size = window
        self._window_bytes = window_bytes
        self._bytes = 0
        #: Every event with id > floor has been published and is in the window.
        self._floor = 0
        self.last_id = 0
        #: False until the listener has told us where the log stands.
        self.started = False
        self.closed = False

    # -- state -----------------------------------------------------------
    def start_at(self, cursor: int) -> None:
        """Declare ``cursor`` the newest event before anything is published."""
        self._window.clear()
        self._bytes = 0
        self._floor = self.last_id = cursor
        self.started = True

    def __len__(self) -> int:
        return sum(len(g.subs) for g in self._groups.values())

    def subscribers(self) -> list[Subscriber]:
        """Every current subscriber (a snapshot, safe to mutate the hub while iterating)."""
        return [s for g in self._groups.values() for s in g.subs]

    # -- subscriptions -----------------------------------------------------
    def shared_filter(self, flt: Filter) -> Filter:
        """An equal filter a subscription already holds, else ``flt`` itself."""
        return self._filters.get(flt, flt)

    def subscribe(self, sub: Subscriber) -> None:
        """Add ``sub``; from now on it receives every matching published batch."""
        if self.closed:
            raise RuntimeError("hub is closed")
        key = (sub.filter, sub.encoding)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(key)
            self._filters.setdefault(sub.filter, sub.filter)
            staff = _staff_key(sub.filter)
            if staff is None:
                self._broad.add(group)
            else:
                self._by_staff.setdefault(staff, set()).add(group)
        group.subs.add(sub)

    def unsubscribe(self, sub: Subscriber) -> None:
        """Remove ``sub``; a no-op when it is not subscribed."""
        key = (sub.filter, sub.encoding)
        group = self._groups.get(key)
        if group is not None:
            group.subs.discard(sub)
            if not group.subs:
                del self._groups[key]
                if not any((sub.filter, encoding) in self._groups for encoding in Encoding):
                    self._filters.pop(sub.filter, None)
                staff = _staff_key(sub.filter)
                if staff is None:
                    self._broad.discard(group)
                else:
                    groups = self._by_staff[staff]
                    groups.discard(group)
                    if not groups:
                        del self._by_staff[staff]

    def events_after(self, cursor: int) -> list[Event] | None:
        """Events with id > cursor from memory, or None if the window does not
        reach back that far (the caller then reads the database)."""
        if cursor < self._floor:
            return None
        if cursor >= self.last_id:
            return []
        # Ids are increasing; walk from the newest end, which is where
        # resumes usually point.
        out: list[Event] = []
        for event in reversed(self._window):
            if event.id <= cursor:
                break
            out.append(event)
        out.reverse()
        return out

    # -- publishing ---------------------------------------------------------
    def publish(self, events: Sequence[Event]) -> tuple[int, int]:
        """Fan one batch out. ``events`` are new, in increasing id order.

        Returns ``(deliveries, bytes)``: events and bytes handed to streams,
        counted per group (a multiplication, not a loop per stream).
        """
        if not events:
            return 0, 0
        if events[0].id <= self.last_id:
            raise ValueError(f"event {events[0].id} is not after {self.last_id}")
        self._window.extend(events)
        for event in events:
            self._bytes += event.size
        self.last_id = events[-1].id
        self._trim()

        upto = self.last_id
        deliveries = sent = 0
        for group, matched in self._route(events):
            subs = group.subs
            if not subs:
                continue  # emptied by a delivery earlier in this batch
            data = join(matched, group.encoding)
            deliveries += len(matched) * len(subs)
            sent += len(data) * len(subs)
            for sub in list(subs):
                try:
                    sub.deliver(matched, data, upto)
                except Exception:  # one broken stream must not stop the others
                    log.exception("subscriber failed; dropping it")
                    self.unsubscribe(sub)
                    sub.close("error")
        return deliveries, sent

    def _route(self, events: Sequence[Event]) -> list[tuple[_Group, Sequence[Event]]]:
        """Each group with its matching events (in id order), visiting only
        the groups an event can reach: broad groups see every event; staff
        groups see the appointment events of their staff member and the
        events that concern everyone (availability rules)."""
        routed: list[tuple[_Group, Sequence[Event]]] = []
        for group in list(self._broad):
            flt = group.filter
            matched = events if group.everything else [e for e in events if flt.matches(e)]
            if matched:
                routed.append((group, matched))
        by_staff = self._by_staff
        if not by_staff:
            return routed
        keyed: dict[_Group, list[Event]] = {}
        for event in events:
            if event.resource == "appointment" and event.staff_ids is not None:
                for staff in event.staff_ids:
                    for group in by_staff.get(staff, ()):
                        if group.filter.matches(event):
                            if group in keyed:
                                keyed[group].append(event)
                            else:
                                keyed[group] = [event]
            else:
                for groups in by_staff.values():
                    for group in groups:
                        if group.filter.matches(event):
                            keyed.setdefault(group, []).append(event)
        routed.extend(keyed.items())
        return routed

    def _trim(self) -> None:
        """Drop the oldest events past either bound; the floor follows them."""
        window = self._window
        while window and ((self._window_size and len(window) > self._window_size)
                          or (self._window_bytes and self._bytes > self._window_bytes)
                          or not self._window_size):
            dropped = window.popleft()
            self._bytes -= dropped.size
            self._floor = dropped.id

    def close(self, reason: str = "shutdown") -> None:
        """End every subscription; new ones are refused."""
        self.closed = True
        for sub in self.subscribers():
            sub.close(reason)
        self._groups.clear()
        self._filters.clear()
