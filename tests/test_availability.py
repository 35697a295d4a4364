"""The availability rules (tornado_sse/availability.py): one test per range
type, then layers and priorities, on the demo seed's own rules. Pure: no
database, no server."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tornado_sse.availability import Rule, closed_intervals, first_closure, rule_errors

UTC = dt.timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


def rule(range_type: str, first: str | None, last: str | None, *, appointable: bool = False, rid: int = 1,
         priority: int = 10, scope: str = "global", staff_id: int | None = None,
         product_id: int | None = None, rrule: str | None = None, title: str = "r") -> Rule:
    return Rule(id=rid, scope=scope, product_id=product_id, staff_id=staff_id, title=title,
                range_type=range_type, from_range=first, to_range=last, appointable=appointable,
                priority=priority, rrule=rrule)


def at(text: str, tz: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=tz)


def closed(rules: list[Rule], start: str, end: str, tz: dt.tzinfo = UTC, **kw) -> list[tuple[str, str, int]]:
    return [(c.start.astimezone(tz).strftime("%a %d %H:%M"), c.end.astimezone(tz).strftime("%a %d %H:%M"), c.rule.id)
            for c in closed_intervals(rules, at(start, tz), at(end, tz), tz, **kw)]


# 2024-12-02 is a Monday.

def test_custom_closes_whole_dates_inclusive():
    holiday = rule("custom", "2024-12-03", "2024-12-04")
    assert closed([holiday], "2024-12-02 12:00", "2024-12-06 00:00") == [("Tue 03 00:00", "Thu 05 00:00", 1)]


def test_days_wrap_past_sunday():
    weekend = rule("days", "6", "1")  # Saturday to Monday
    assert closed([weekend], "2024-12-06 00:00", "2024-12-10 00:00") == [("Sat 07 00:00", "Tue 10 00:00", 1)]


def test_months_and_weeks():
    assert closed([rule("months", "12", "1")], "2024-11-30 00:00", "2024-12-01 01:00") == [
        ("Sun 01 00:00", "Sun 01 01:00", 1)]
    week49 = rule("weeks", "49", "49")  # ISO week 49 of 2024: Dec 2-8
    assert closed([week49], "2024-12-01 12:00", "2024-12-09 12:00") == [("Mon 02 00:00", "Mon 09 00:00", 1)]


def test_time_opening_hours_close_the_rest_of_the_day():
    hours = rule("time", "09:00", "18:00", appointable=True)
    assert closed([hours], "2024-12-02 08:00", "2024-12-02 20:00") == [
        ("Mon 02 08:00", "Mon 02 09:00", 1), ("Mon 02 18:00", "Mon 02 20:00", 1)]


def test_time_past_midnight_and_on_one_weekday():
    night = rule("time", "22:00", "06:00")
    assert closed([night], "2024-12-02 21:00", "2024-12-03 07:00") == [("Mon 02 22:00", "Tue 03 06:00", 1)]
    wednesday = rule("time:3", "13:00", "18:00")
    assert closed([wednesday], "2024-12-02 00:00", "2024-12-05 00:00") == [("Wed 04 13:00", "Wed 04 18:00", 1)]


def test_time_range_between_two_local_moments():
    inventory = rule("time:range", "2024-12-03 15:30", "2024-12-04 10:00")
    assert closed([inventory], "2024-12-03 00:00", "2024-12-05 00:00") == [("Tue 03 15:30", "Wed 04 10:00", 1)]


def test_rrule_yearly_christmas_and_weekly_with_interval():
    christmas = rule("rrule", "2024-12-25", "2024-12-25", rrule="FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=25")
    assert closed([christmas], "2031-12-24 12:00", "2031-12-26 12:00") == [("Thu 25 00:00", "Fri 26 00:00", 1)]
    assert closed([christmas], "2023-12-24 12:00", "2023-12-26 12:00") == []  # before DTSTART
    fortnightly = rule("rrule", "2024-12-02", "2024-12-03", rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=MO")
    assert closed([fortnightly], "2024-12-09 00:00", "2024-12-10 00:00") == []
    assert closed([fortnightly], "2024-12-16 00:00", "2024-12-19 00:00") == [("Mon 16 00:00", "Wed 18 00:00", 1)]


def test_priority_decides_within_a_layer_and_every_layer_must_be_open():
    hours = rule("time", "09:00", "18:00", appointable=True, rid=1, priority=10)
    sundays = rule("days", "7", "7", rid=2, priority=5)
    late_sunday = rule("custom", "2024-12-08", "2024-12-08", appointable=True, rid=3, priority=1)
    assert [c[2] for c in closed([hours, sundays], "2024-12-08 10:00", "2024-12-08 11:00")] == [2]
    assert closed([hours, sundays, late_sunday], "2024-12-08 10:00", "2024-12-08 11:00") == []
    holiday = rule("custom", "2024-12-02", "2024-12-02", rid=4, scope="staff", staff_id=3, priority=5)
    extra = rule("days", "7", "7", appointable=True, rid=5, scope="staff", staff_id=3, priority=1)
    assert [c[2] for c in closed([hours, holiday], "2024-12-02 10:00", "2024-12-02 11:00", staff_ids=[3])] == [4]
    assert closed([hours, holiday], "2024-12-02 10:00", "2024-12-02 11:00", staff_ids=[2]) == []
    # A staff rule cannot open what the shop closes.
    assert [c[2] for c in closed([hours, sundays, extra], "2024-12-08 10:00", "2024-12-08 11:00",
                                 staff_ids=[3])] == [2]


def test_a_product_bookable_only_within_its_rule_is_closed_outside_it():
    wednesday = rule("time:3", "13:00", "18:00", appointable=True, scope="product", product_id=103, rid=7)
    monday = first_closure([wednesday], at("2024-12-02 14:00"), at("2024-12-02 15:00"), UTC, product_id=103)
    assert monday is not None and monday.rule.id == 7 and monday.outside
    assert first_closure([wednesday], at("2024-12-04 14:00"), at("2024-12-04 15:00"), UTC, product_id=103) is None
    assert first_closure([wednesday], at("2024-12-02 14:00"), at("2024-12-02 15:00"), UTC, product_id=101) is None


def test_wall_clock_in_the_database_time_zone_across_a_dst_change():
    hours = rule("time", "09:00", "18:00", appointable=True)
    # 2024-03-31: Berlin moves from UTC+1 to UTC+2; 09:00 local is 07:00 UTC.
    assert closed([hours], "2024-03-31 08:00", "2024-03-31 10:00", BERLIN) == [("Sun 31 08:00", "Sun 31 09:00", 1)]
    assert first_closure([hours], at("2024-03-31 07:00"), at("2024-03-31 08:00"), BERLIN) is None


def test_all_day_bookings_are_refused_only_by_a_whole_closed_day():
    hours = rule("time", "09:00", "18:00", appointable=True, rid=1)
    sundays = rule("days", "7", "7", rid=2, priority=5)
    friday = first_closure([hours, sundays], at("2024-12-06 00:00"), at("2024-12-07 00:00"), UTC, all_day=True)
    assert friday is None
    weekend = first_closure([hours, sundays], at("2024-12-07 00:00"), at("2024-12-09 00:00"), UTC, all_day=True)
    assert weekend is not None and weekend.rule.id == 2 and weekend.start == at("2024-12-08 00:00")


@pytest.mark.parametrize("bad, field", [
    (rule("fortnights", "1", "2"), "range_type"),
    (rule("time", "9am", "18:00"), "from_range"),
    (rule("days", "0", "7"), "from_range"),
    (rule("custom", "2024-13-01", "2024-12-02"), "from_range"),
    (rule("rrule", "2024-12-25", "2024-12-25", rrule="FREQ=HOURLY"), "rrule"),
    (rule("rrule", "2024-12-25", "2024-12-25", rrule="FREQ=YEARLY;COUNT=3"), "rrule"),
])
def test_rules_that_cannot_be_evaluated_are_named_and_decide_nothing(bad, field):
    assert list(rule_errors(bad)) == [field]
    assert closed([bad], "2024-12-02 00:00", "2024-12-03 00:00") == []
