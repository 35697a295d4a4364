"""iCalendar (RFC 5545) text for appointments: pure encoding, no I/O.

Written by hand because the format needs little, and what it needs is easy
to get subtly wrong, so each rule is here and tested on exact text:

- TEXT values escape backslash, semicolon, comma and newline (§3.3.11);
- lines end in CRLF and are folded at 75 octets, never inside a UTF-8
  character, continuing with one space (§3.1);
- times are UTC date-times, ``19970714T173000Z`` (§3.3.5, form 2).

Deliberate choices: an appointment without length (all-day, end = start)
has no DTEND (§3.6.1: then it takes no time); all-day appointments are
written with their stored UTC times rather than as DATE values, because
their day is the shop's, which this server does not know for sure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

#: The calendar's product identifier (§3.7.3).
PRODID = "-//tornado_sse//appointments//EN"

#: VEVENT STATUS (§3.8.1.11) for each appointment status: what a calendar
#: app should make of it.
EVENT_STATUS = {
    "unpaid": "CONFIRMED", "confirmed": "CONFIRMED", "paid": "CONFIRMED", "complete": "CONFIRMED",
    "pending-confirmation": "TENTATIVE", "in-cart": "TENTATIVE",
    "cancelled": "CANCELLED", "was-in-cart": "CANCELLED", "trash": "CANCELLED",
}

#: The status in words, for people reading the event.
STATUS_WORDS = {
    "unpaid": "Booked, not paid yet", "pending-confirmation": "Waiting for confirmation",
    "confirmed": "Confirmed", "paid": "Paid", "complete": "Completed",
    "in-cart": "In a shopping cart, not booked yet", "was-in-cart": "Left in a shopping cart",
    "cancelled": "Cancelled", "trash": "Deleted",
}

_FOLD_AT = 75  # octets per line, CRLF not counted (§3.1)


@dataclass(frozen=True)
class Entry:
    """One appointment as a calendar event."""

    id: int
    start: dt.datetime
    end: dt.datetime
    status: str
    service: str  # the product's name, or "Appointment"
    customer: str | None
    staff: list[str]
    version: int
    updated: dt.datetime


def escape(text: str) -> str:
    """A TEXT value (§3.3.11): ``\\``, ``;``, ``,`` escaped, newlines as ``\\n``."""
    text = text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return text.replace("\r\n", "\\n").replace("\r", "\\n").replace("\n", "\\n")


def fold(line: str) -> str:
    """One content line, folded at 75 octets (§3.1), ending in CRLF.

    Continuation lines start with a space, which counts towards their 75;
    a UTF-8 character is never split between lines."""
    out: list[str] = []
    current: list[str] = []
    size, limit = 0, _FOLD_AT
    for ch in line:
        n = len(ch.encode("utf-8"))
        if size + n > limit:
            out.append("".join(current))
            current, size, limit = [], 0, _FOLD_AT - 1  # the leading space is one octet
        current.append(ch)
        size += n
    out.append("".join(current))
    return "\r\n ".join(out) + "\r\n"


def utc(moment: dt.datetime) -> str:
    """A DATE-TIME in UTC (§3.3.5 form 2)."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def summary(entry: Entry) -> str:
    """"Haircut · Anna Berg": what the desk calls an appointment."""
    return f"{entry.service} · {entry.customer}" if entry.customer else entry.service


def event_lines(entry: Entry, *, host: str, stamp: dt.datetime) -> list[str]:
    """The VEVENT's content lines, unfolded. The UID is the appointment's
    id at this host, so a re-import updates the event instead of adding one,
    and SEQUENCE its version, so the newer copy wins."""
    lines = ["BEGIN:VEVENT", f"UID:{escape(f'appointment-{entry.id}@{host}')}", f"DTSTAMP:{utc(stamp)}",
             f"DTSTART:{utc(entry.start)}"]
    if entry.end > entry.start:
        lines.append(f"DTEND:{utc(entry.end)}")
    words = STATUS_WORDS.get(entry.status, entry.status)
    description = f"Status: {words}"
    if entry.staff:
        description += "\nWith: " + ", ".join(entry.staff)
    lines += [f"SUMMARY:{escape(summary(entry))}", f"STATUS:{EVENT_STATUS.get(entry.status, 'CONFIRMED')}",
              f"DESCRIPTION:{escape(description)}", f"SEQUENCE:{max(entry.version - 1, 0)}",
              f"LAST-MODIFIED:{utc(entry.updated)}", "END:VEVENT"]
    return lines


def calendar(entries: Iterable[Entry], *, name: str, host: str, stamp: dt.datetime) -> str:
    """A VCALENDAR with one VEVENT per entry, folded, CRLF line ends."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN",
             "METHOD:PUBLISH", f"X-WR-CALNAME:{escape(name)}"]
    for entry in entries:
        lines += event_lines(entry, host=host, stamp=stamp)
    lines.append("END:VCALENDAR")
    return "".join(fold(line) for line in lines)
