"""The hub on its own: no HTTP, no database (tornado_sse/hub.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from tornado_sse.events import Encoding, Event
from tornado_sse.filters import Filter, parse_topics
from tornado_sse.hub import Hub

pytestmark = pytest.mark.pg_independent  # the hub alone, no database


def ev(i: int, topic: str = "appointment.created", staff=(5,), products=(456,)) -> Event:
    resource = topic.split(".")[0]
    return Event.from_row((i, topic, resource, i, "{}", 0,
                           None if staff is None else list(staff),
                           None if products is None else list(products), 0.0, None))


@dataclass(eq=False)
class Recorder:
    filter: Filter = field(default_factory=Filter)
    encoding: Encoding = Encoding.RAW
    got: list[int] = field(default_factory=list)
    writes: list[bytes] = field(default_factory=list)
    closed: str | None = None
    uptos: list[int] = field(default_factory=list)

    def deliver(self, events: Sequence[Event], data: bytes, upto: int) -> None:
        self.got += [e.id for e in events]
        self.writes.append(data)
        self.uptos.append(upto)

    def close(self, reason: str) -> None:
        self.closed = reason


def test_delivery_carries_how_far_the_batch_reached_past_the_last_match():
    """A poller's last_id must move past events its filter hid: the hub hands
    the batch's newest id with the matches, so no subscriber reads the hub."""
    hub = Hub()
    created = Recorder(filter=Filter(topics=("appointment.created",)))
    hub.subscribe(created)
    hub.publish([ev(1), ev(2, "appointment.deleted"), ev(3, "availability.created")])
    assert created.got == [1] and created.uptos == [3]


def test_one_write_per_batch_with_bytes_joined_once_per_filter():
    hub = Hub()
    a, b = Recorder(), Recorder()
    staff = Recorder(filter=Filter(audience_staff_id=6))
    for r in (a, b, staff):
        hub.subscribe(r)
    batch = [ev(1), ev(2, staff=(6,)), ev(3)]
    hub.publish(batch)
    assert a.got == b.got == [1, 2, 3]
    assert len(a.writes) == 1 and a.writes[0] == b"".join(e.frame for e in batch)
    assert a.writes[0] is b.writes[0]  # the same bytes object: joined once
    assert staff.got == [2]


def test_window_answers_resumes_and_reports_what_it_cannot():
    hub = Hub(window=3)
    hub.start_at(10)
    assert hub.events_after(10) == []
    assert hub.events_after(9) is None  # before the server started: not in memory
    hub.publish([ev(11), ev(12)])
    hub.publish([ev(13), ev(14), ev(15)])  # 11 and 12 leave the window
    assert [e.id for e in hub.events_after(12)] == [13, 14, 15]
    assert [e.id for e in hub.events_after(14)] == [15]
    assert hub.events_after(11) is None
    assert hub.events_after(15) == []


def test_publish_rejects_out_of_order_batches():
    hub = Hub()
    hub.publish([ev(5)])
    try:
        hub.publish([ev(5)])
    except ValueError:
        pass
    else:
        raise AssertionError("a repeated id was accepted")


def test_filters_topics_wildcards_staff_and_product():
    topics = parse_topics("appointment.*,availability.deleted")
    f = Filter(topics=topics)
    assert f.matches(ev(1, "appointment.rescheduled"))
    assert f.matches(ev(2, "availability.deleted", staff=None, products=None))
    assert not f.matches(ev(3, "availability.created", staff=None, products=None))
    assert Filter(staff_id=5).matches(ev(4))
    assert not Filter(staff_id=7).matches(ev(5))
    assert Filter(staff_id=7).matches(ev(6, "availability.created", staff=None, products=None))
    assert not Filter(product_id=1).matches(ev(7))
    # A staff audience sees appointments that are or were theirs, and all availability.
    moved_away = ev(8, "appointment.updated", staff=(5, 9))
    assert Filter(audience_staff_id=5).matches(moved_away)
    assert not Filter(audience_staff_id=4).matches(moved_away)
    assert Filter(audience_staff_id=4).matches(ev(9, "availability.updated", staff=(3,)))


def test_close_ends_every_subscriber_and_refuses_new_ones():
    hub = Hub()
    r = Recorder()
    hub.subscribe(r)
    hub.close("shutdown")
    assert r.closed == "shutdown" and len(hub) == 0
    try:
        hub.subscribe(Recorder())
    except RuntimeError:
        pass
    else:
        raise AssertionError("closed hub accepted a subscriber")


def test_a_failing_subscriber_is_dropped_and_the_others_still_get_the_batch(caplog):
    """Regression: a subscriber raising inside deliver (a bug) used to abort
    the fan-out mid-batch after last_id had moved, so the rest of the batch
    was never delivered to the others and a re-read was refused."""

    @dataclass(eq=False)
    class Broken(Recorder):
        def deliver(self, events: Sequence[Event], data: bytes, upto: int) -> None:
            raise AttributeError("boom")

    hub = Hub()
    broken, good = Broken(), Recorder(filter=Filter(topics=("appointment.created",)))
    hub.subscribe(broken)
    hub.subscribe(good)
    hub.publish([ev(1)])
    hub.publish([ev(2)])
    assert good.got == [1, 2]
    assert broken.closed == "error" and len(hub) == 1
    assert "subscriber failed" in caplog.text


def test_indexed_fan_out_delivers_exactly_what_every_filter_matches():
    """The staff index must be an optimisation only: with filters of every
    kind (admin, staff audiences, ?staff_id=, topics, products) and events of
    every kind, each subscriber gets exactly the events Filter.matches
    admits, in id order, once."""
    import random

    rng = random.Random(7)
    hub = Hub()
    recorders = []
    for _ in range(300):
        flt = Filter(
            topics=rng.choice([(), ("appointment.created",), ("availability.created",), ("appointment.updated",)]),
            staff_id=rng.choice([None, None, 1, 2, 3]),
            product_id=rng.choice([None, None, 456, 457]),
            audience_staff_id=rng.choice([None, None, 1, 2, 3, 4]),
        )
        r = Recorder(filter=flt)
        hub.subscribe(r)
        recorders.append(r)
    events = []
    for i in range(1, 401):
        topic = rng.choice(["appointment.created", "appointment.updated", "availability.created"])
        staff = None if topic.startswith("availability") and rng.random() < 0.5 else \
            tuple(rng.sample([1, 2, 3, 4, 5], rng.randint(0, 2)))
        products = None if topic.startswith("availability") else (rng.choice([456, 457]),)
        events.append(ev(i, topic, staff=staff, products=products))
    for start in range(0, 400, 37):  # batches of several events
        hub.publish(events[start:start + 37])
    for r in recorders:
        assert r.got == [e.id for e in events if r.filter.matches(e)]


def test_a_staff_event_visits_only_its_staff_groups():
    """Fan-out cost follows deliveries: an appointment of staff 2 is not
    tested against the groups of 1,000 other staff members."""
    calls = []

    @dataclass(frozen=True)
    class Counting(Filter):
        def matches(self, event: Event) -> bool:
            calls.append(self.audience_staff_id)
            return super().matches(event)

    hub = Hub()
    for staff in range(1, 1001):
        hub.subscribe(Recorder(filter=Counting(audience_staff_id=staff)))
    hub.publish([ev(1, staff=(2,))])
    assert calls == [2]


def test_equal_filters_share_one_object_while_subscribed_and_none_is_kept_after():
    """A stream holds the filter a subscription already holds (one object
    for the collector, issue 21), and the hub forgets it with the last one,
    so distinct filters from past streams do not pile up."""
    hub = Hub()
    first = Recorder(filter=Filter(staff_id=7))
    assert hub.shared_filter(first.filter) is first.filter  # nothing to share yet
    hub.subscribe(first)
    twin = Filter(staff_id=7)
    assert twin is not first.filter and hub.shared_filter(twin) is first.filter
    chunked = Recorder(filter=hub.shared_filter(twin), encoding=Encoding.CHUNKED)
    hub.subscribe(chunked)
    hub.unsubscribe(first)  # the other encoding's group still holds it
    assert hub.shared_filter(Filter(staff_id=7)) is first.filter
    hub.unsubscribe(chunked)
    again = Filter(staff_id=7)
    assert hub.shared_filter(again) is again
