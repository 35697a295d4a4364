"""Availability rules: which time they close, for whom (SPEC §8, issue 20).

Pure: rules in, closed intervals out, no I/O, so every range type is tested
on its own and the write API and the calendar's "unavailable time" read the
same answer.

The model (modelled on WooCommerce Appointments; README "Writes" says it
for users):

- A rule belongs to a *layer*: global (everyone), a product, or a staff
  member. A booking is under the global layer, its product's layer and the
  layer of each of its staff members.
- Within a layer, at a given moment the matching rule with the lowest
  ``priority`` number decides (then ``ordering``, then id): ``appointable``
  opens, otherwise closes. When no rule of the layer matches, the layer is
  open, unless it has appointable rules: then its time is closed outside
  them ("Opening hours 09:00-18:00" closes the evening; a product bookable
  "on Wednesday afternoons" is closed on Monday).
- A moment is bookable when every layer over the booking is open: a staff
  member's holiday closes an open day; a staff rule cannot open the shop on
  its closed Sunday.
- Times are wall-clock times in the database's time zone (``SHOW
  TimeZone``), as the demo seed writes them.
- Range types: ``custom`` (dates, inclusive), ``months`` (1-12), ``weeks``
  (ISO weeks 1-53), ``days`` (1 Monday - 7 Sunday), ranges wrapping past
  the end (``days`` 6-1 is Saturday to Monday); ``time`` (HH:MM-HH:MM every
  day, past midnight when to <= from), ``time:1`` .. ``time:7`` (on that
  weekday); ``time:range`` (``YYYY-MM-DD HH:MM`` to ``YYYY-MM-DD HH:MM``);
  ``rrule`` (days an RFC 5545 RRULE of FREQ DAILY, WEEKLY, MONTHLY or
  YEARLY with INTERVAL, UNTIL, BYMONTH, BYMONTHDAY and weekday BYDAY
  yields from DTSTART = ``from_range``, each lasting through ``to_range``'s
  offset). A rule this module cannot read (another type, a typo written by
  psql, COUNT or BYSETPOS) closes and opens nothing; the write API refuses
  such rules (:func:`rule_errors`).
- ``qty`` (capacity) is not evaluated: the no-double-booking rule of
  sql/005 is what limits a staff member to one booking at a time.
- An all-day booking is refused only when a whole day of it is closed
  (opening hours do not refuse it; a holiday or a closed day does).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: How many local days one evaluation walks at most (an all-day booking or
#: a calendar range longer than this is checked over its first days only).
MAX_DAYS = 400

_DAY = dt.timedelta(days=1)
_TIME = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
_WEEKDAYS = {"MO": 1, "TU": 2, "WE": 3, "TH": 4, "FR": 5, "SA": 6, "SU": 7}
_FREQS = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")

Matcher = Callable[[dt.datetime], bool]


@dataclass(frozen=True)
class Rule:
    """One availability row, as the database holds it."""

    id: int
    scope: str
    product_id: int | None
    staff_id: int | None
    title: str
    range_type: str
    from_range: str | None
    to_range: str | None
    appointable: bool
    priority: int
    ordering: int = 0
    rrule: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Rule:
        """From a row's columns (a rule not yet inserted has id 0)."""
        values: dict[str, Any] = {name: row.get(name) for name in cls.__dataclass_fields__}
        values["id"] = values["id"] or 0
        for name, default in (("title", ""), ("range_type", "custom"), ("scope", "global")):
            values[name] = values[name] if values[name] is not None else default
        values["appointable"] = values["appointable"] is not False
        values["priority"] = values["priority"] if values["priority"] is not None else 10
        values["ordering"] = values["ordering"] or 0
        return cls(**values)

    def summary(self) -> dict[str, Any]:
        """How an answer names the rule (``data.rule``)."""
        return {"id": self.id, "title": self.title, "scope": self.scope,
                "range_type": self.range_type, "appointable": self.appointable}


@dataclass(frozen=True)
class Closed:
    """Time a rule closes: [start, end) in UTC. ``outside`` is true when the
    time is closed because it lies outside ``rule``, an appointable rule."""

    start: dt.datetime
    end: dt.datetime
    rule: Rule
    outside: bool = False


# -- reading one rule ---------------------------------------------------------------

def _minutes(text: str | None) -> int:
    m = _TIME.match((text or "").strip())
    if m is None or int(m.group(1)) * 60 + int(m.group(2)) > 1440:
        raise ValueError(f"{text!r} is not a time HH:MM")
    return int(m.group(1)) * 60 + int(m.group(2))


def _date(text: str | None) -> dt.date:
    return dt.date.fromisoformat((text or "").strip())


def _number(text: str | None, low: int, high: int) -> int:
    raw = (text or "").strip()
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ValueError(f"{text!r} is not a number {low}-{high}")
    return int(raw)


def _cyclic(first: int, last: int, value: int) -> bool:
    """``value`` in first..last, wrapping past the end (6..1 = 6, 7, 1)."""
    return first <= value <= last if first <= last else value >= first or value <= last


def _in_minutes(first: int, last: int, minute: int) -> bool:
    """A minute of the day in [first, last), past midnight when last <= first."""
    if first == last:
        return True
    return first <= minute < last if first < last else minute >= first or minute < last


def _minute_of(moment: dt.datetime) -> int:
    return moment.hour * 60 + moment.minute


def _rrule_days(rule: Rule) -> Callable[[dt.date], bool]:
    """Whether an RRULE occurrence starts on a date (see module docstring)."""
    start = _date(rule.from_range)
    parts: dict[str, str] = {}
    for part in (rule.rrule or "").strip().removeprefix("RRULE:").split(";"):
        name, sep, value = part.partition("=")
        if not sep or name.upper() in parts:
            raise ValueError(f"RRULE part {part!r} is not NAME=VALUE once")
        parts[name.upper()] = value.upper()
    freq = parts.pop("FREQ", "")
    if freq not in _FREQS:
        raise ValueError("RRULE FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY")
    interval = _number(parts.pop("INTERVAL", "1"), 1, 1000)
    until: dt.date | None = None
    if "UNTIL" in parts:
        raw = parts.pop("UNTIL")[:8]
        until = dt.date(int(raw[:4]), int(raw[4:6]), int(raw[6:8]))
    months = {_number(v, 1, 12) for v in parts.pop("BYMONTH").split(",")} if "BYMONTH" in parts else None
    monthdays = {int(v) for v in parts.pop("BYMONTHDAY").split(",")} if "BYMONTHDAY" in parts else None
    if monthdays is not None and not all(1 <= abs(d) <= 31 for d in monthdays):
        raise ValueError("RRULE BYMONTHDAY must be 1-31 or -31--1")
    weekdays = {_WEEKDAYS[v] for v in parts.pop("BYDAY").split(",")} if "BYDAY" in parts else None
    parts.pop("WKST", None)
    if parts:
        raise ValueError(f"RRULE parts not supported: {', '.join(sorted(parts))}")
    if weekdays is None and freq == "WEEKLY":
        weekdays = {start.isoweekday()}
    if freq in ("MONTHLY", "YEARLY") and weekdays is None and monthdays is None:
        monthdays = {start.day}
    if freq == "YEARLY" and months is None and monthdays is not None and weekdays is None:
        months = {start.month}

    def occurs(day: dt.date) -> bool:
        if day < start or (until is not None and day > until):
            return False
        if freq == "DAILY":
            step = (day - start).days
        elif freq == "WEEKLY":
            step = (day - dt.timedelta(days=day.weekday()) - (start - dt.timedelta(days=start.weekday()))).days // 7
        elif freq == "MONTHLY":
            step = (day.year - start.year) * 12 + day.month - start.month
        else:
            step = day.year - start.year
        if step % interval:
            return False
        if months is not None and day.month not in months:
            return False
        if weekdays is not None and day.isoweekday() not in weekdays:
            return False
        if monthdays is not None:
            last = ((day.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - _DAY).day
            if day.day not in monthdays and day.day - last - 1 not in monthdays:
                return False
        return True

    return occurs


def compile_rule(rule: Rule) -> tuple[Matcher, list[int], list[dt.datetime]]:
    """The rule as (does it cover this local moment, the minutes of a day
    where it may switch, the local moments where it switches): raises
    ValueError when it cannot be read."""
    kind, first, last = rule.range_type.strip(), rule.from_range, rule.to_range
    if kind == "custom":
        d0, d1 = _date(first), _date(last)
        return (lambda m: d0 <= m.date() <= d1), [], []
    if kind in ("months", "weeks", "days"):
        high = {"months": 12, "weeks": 53, "days": 7}[kind]
        a, b = _number(first, 1, high), _number(last, 1, high)
        part: Callable[[dt.datetime], int] = {
            "months": lambda m: m.month, "weeks": lambda m: m.isocalendar()[1],
            "days": lambda m: m.isoweekday()}[kind]
        return (lambda m: _cyclic(a, b, part(m))), [], []
    if kind == "time":
        f, t = _minutes(first), _minutes(last)
        return (lambda m: _in_minutes(f, t, _minute_of(m))), [f, t], []
    if kind.startswith("time:") and kind[5:] in {str(n) for n in range(1, 8)}:
        weekday, f, t = int(kind[5:]), _minutes(first), _minutes(last)

        def on_day(m: dt.datetime) -> bool:
            minute, day = _minute_of(m), m.isoweekday()
            if f < t:
                return day == weekday and f <= minute < t
            return (day == weekday and minute >= f) or (day == weekday % 7 + 1 and minute < t)
        return on_day, [f, t], []
    if kind in ("time:range", "custom:daterange"):
        a_dt = dt.datetime.fromisoformat((first or "").strip())
        b_dt = dt.datetime.fromisoformat((last or "").strip())
        if a_dt.tzinfo is not None or b_dt.tzinfo is not None or b_dt <= a_dt:
            raise ValueError("a range of two local date-times, the second later")
        return (lambda m: a_dt <= m.replace(tzinfo=None) < b_dt), [], [a_dt, b_dt]
    if kind == "rrule":
        occurs = _rrule_days(rule)
        span = (_date(last) - _date(first)).days if last else 0
        if not 0 <= span < 366:
            raise ValueError("to_range must be 0-365 days after from_range")
        return (lambda m: any(occurs(m.date() - dt.timedelta(days=k)) for k in range(span + 1))), [], []
    raise ValueError(f"unknown range_type {kind!r}")


def rule_errors(rule: Rule) -> dict[str, str]:
    """What the write API says about a rule it could not evaluate (400),
    naming the field most likely wrong."""
    kind = rule.range_type.strip()
    try:
        if kind == "rrule":
            _rrule_days(Rule(**{**rule.__dict__, "from_range": rule.from_range or "2000-01-01"}))
        compile_rule(rule)
    except (ValueError, KeyError, IndexError) as exc:
        if kind not in _KNOWN_TYPES and not kind.startswith("time:"):
            field = "range_type"
        elif kind == "rrule" and ("RRULE" in str(exc) or "FREQ" in str(exc) or isinstance(exc, KeyError)):
            field = "rrule"
        else:
            field = "from_range"
        return {field: f"{field}: the rule cannot be evaluated ({exc})."}
    return {}


_KNOWN_TYPES = ("custom", "months", "weeks", "days", "time", "time:range", "custom:daterange", "rrule")


# -- evaluating --------------------------------------------------------------------

@dataclass(frozen=True)
class _Compiled:
    rule: Rule
    covers: Matcher
    minutes: list[int]
    moments: list[dt.datetime]


def _layers(rules: Iterable[Rule], product_id: int | None,
            staff_ids: Sequence[int]) -> list[list[_Compiled]]:
    """The layers over a booking, each in decision order; unreadable rules left out."""
    wanted: list[tuple[str, int | None]] = [("global", None)]
    if product_id is not None:
        wanted.append(("product", product_id))
    wanted += [("staff", s) for s in dict.fromkeys(staff_ids)]
    layers: list[list[_Compiled]] = []
    for scope, owner in wanted:
        layer = []
        for r in rules:
            if r.scope != scope or (scope == "product" and r.product_id != owner) \
                    or (scope == "staff" and r.staff_id != owner):
                continue
            try:
                layer.append(_Compiled(r, *compile_rule(r)))
            except (ValueError, KeyError, IndexError):
                continue  # psql may write what this module cannot read: it decides nothing
        layers.append(sorted(layer, key=lambda c: (c.rule.priority, c.rule.ordering, c.rule.id)))
    return layers


def _closed_by(layers: list[list[_Compiled]], local: dt.datetime) -> tuple[Rule, bool] | None:
    """The rule that closes this local moment (and whether by lying outside
    it), or None when every layer is open. The most specific layer that
    closes is named (a staff member's holiday rather than the opening
    hours around it)."""
    for layer in reversed(layers):
        decided = next((c for c in layer if c.covers(local)), None)
        if decided is not None:
            if not decided.rule.appointable:
                return decided.rule, False
            continue
        opening = next((c for c in layer if c.rule.appointable), None)
        if opening is not None:
            return opening.rule, True
    return None


def closed_intervals(rules: Iterable[Rule], start: dt.datetime, end: dt.datetime, tz: dt.tzinfo, *,
                     product_id: int | None = None, staff_ids: Sequence[int] = ()) -> list[Closed]:
    """The closed parts of [start, end) for a booking of ``product_id`` with
    ``staff_ids``, in order, adjacent parts closed by one rule merged."""
    layers = _layers(rules, product_id, staff_ids)
    if end <= start or not any(layers):
        return []
    cuts = {start, end}
    first_day = start.astimezone(tz).date() - _DAY
    last_day = min(end.astimezone(tz).date(), first_day + dt.timedelta(days=MAX_DAYS))
    minutes = sorted({m for layer in layers for c in layer for m in c.minutes} | {0})
    day = first_day
    while day <= last_day:
        for minute in minutes:
            local = dt.datetime.combine(day, dt.time(0), tzinfo=tz) + dt.timedelta(minutes=minute)
            cuts.add(local.astimezone(dt.timezone.utc))
        day += _DAY
    for layer in layers:
        for c in layer:
            cuts.update(m.replace(tzinfo=tz).astimezone(dt.timezone.utc) for m in c.moments)
    points = sorted(p for p in cuts if start <= p <= end)
    found: list[Closed] = []
    for a, b in itertools.pairwise(points):
        closing = _closed_by(layers, a.astimezone(tz))
        if closing is None:
            continue
        rule, outside = closing
        if found and found[-1].end == a and found[-1].rule == rule and found[-1].outside == outside:
            found[-1] = Closed(found[-1].start, b, rule, outside)
        else:
            found.append(Closed(a, b, rule, outside))
    return found


def first_closure(rules: Iterable[Rule], start: dt.datetime, end: dt.datetime, tz: dt.tzinfo, *,
                  all_day: bool = False, product_id: int | None = None,
                  staff_ids: Sequence[int] = ()) -> Closed | None:
    """Why a booking of [start, end) may not be made, or None: the first
    closed part; for an all-day booking, the first whole local day closed."""
    closed = closed_intervals(rules, start, end, tz, product_id=product_id, staff_ids=staff_ids)
    if not all_day:
        return closed[0] if closed else None
    day = start.astimezone(tz).date()
    while closed and day <= end.astimezone(tz).date():
        lo = max(start, dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.timezone.utc))
        hi = min(end, dt.datetime.combine(day + _DAY, dt.time(0), tzinfo=tz).astimezone(dt.timezone.utc))
        covered, rule = lo, None
        for part in closed:
            if part.start <= covered < part.end:
                covered, rule = part.end, rule or part
        if lo < hi and covered >= hi and rule is not None:
            return Closed(lo, hi, rule.rule, rule.outside)
        day += _DAY
    return None


def zone(name: str, offset_seconds: float) -> dt.tzinfo:
    """The tzinfo for PostgreSQL's TimeZone setting: the IANA zone of that
    name, or (a POSIX-style or unknown name) its current fixed offset."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.timezone(dt.timedelta(seconds=round(offset_seconds)), name)
