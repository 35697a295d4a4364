"""Checking what clients send to the write API and the snapshot queries.

Every field is checked and every bad one named in one 400 (SPEC §4:
``rest_invalid_param``), before anything touches the database, so bad input
changes nothing. Unknown fields are errors too: a misspelt ``stat`` must not
silently do nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

APPOINTMENT_STATUSES = ("unpaid", "pending-confirmation", "confirmed", "paid", "complete",
                        "in-cart", "was-in-cart", "cancelled", "trash")
CUSTOMER_STATUSES = ("expected", "arrived", "no-show")
SCOPES = ("global", "product", "staff")
_MAX_BIGINT = 2 ** 63 - 1
#: staff_ids per appointment (SPEC §7): each id is copied into every event's
#: audience and into the resume window.
MAX_STAFF_IDS = 100
#: Text fields (SPEC §7).
MAX_TEXT = 1000
#: Times PostgreSQL and every client can hold: years 1 to 9999, in UTC.
_EARLIEST = dt.datetime(1, 1, 2, tzinfo=dt.timezone.utc)
_LATEST = dt.datetime(9999, 12, 30, tzinfo=dt.timezone.utc)


class Invalid(ValueError):
    """One field's problem, as the message the client sees."""


def parse_time(value: Any) -> dt.datetime:
    """Epoch seconds (number or ASCII digit string) or ISO 8601; naive means
    UTC. The result lies in years 1-9999 in UTC, with a day to spare on each
    side, so adding a default span or converting to UTC cannot overflow."""
    if isinstance(value, bool):
        raise Invalid("must be epoch seconds or an ISO 8601 date-time")
    digits = isinstance(value, str) and value.strip().removeprefix("-").isascii() \
        and value.strip().removeprefix("-").isdigit()
    if isinstance(value, (int, float)) or digits:
        try:
            parsed = dt.datetime.fromtimestamp(float(value), tz=dt.timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise Invalid("is out of range") from None
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise Invalid("must be epoch seconds or an ISO 8601 date-time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
    else:
        raise Invalid("must be epoch seconds or an ISO 8601 date-time")
    try:
        utc = parsed.astimezone(dt.timezone.utc)
    except OverflowError:
        raise Invalid("is out of range") from None
    if not _EARLIEST <= utc <= _LATEST:
        raise Invalid("is out of range (years 1 to 9999)")
    return utc


def _id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_BIGINT:
        raise Invalid("must be a positive integer")
    return value


def _opt_id(value: Any) -> int | None:
    return None if value is None else _id(value)


def _id_list(value: Any) -> list[int]:
    if not isinstance(value, list) or len(value) > MAX_STAFF_IDS:
        raise Invalid(f"must be a list of at most {MAX_STAFF_IDS} positive integers")
    return [_id(v) for v in value]


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            raise Invalid("must be one of " + ", ".join(options))
        return value
    return check


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be true or false")
    return value


def _cost(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise Invalid("must be a non-negative amount like \"50.00\"")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise Invalid("must be a non-negative amount like \"50.00\"") from None
    if not amount.is_finite() or amount < 0 or amount >= Decimal("1e10"):
        raise Invalid("must be a non-negative amount below 10000000000")
    rounded = amount.quantize(Decimal("0.01"))
    if rounded >= Decimal("1e10"):  # "9999999999.999" rounds past numeric(12,2)
        raise Invalid("must be a non-negative amount below 10000000000")
    return rounded


def _text(limit: int) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or len(value) > limit or "\0" in value:
            raise Invalid(f"must be text of at most {limit} characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate ("\ud800") has no UTF-8
            raise Invalid("must be valid Unicode text (no lone surrogates)") from None
        return value
    return check


def _opt_text(limit: int) -> Callable[[Any], str | None]:
    text = _text(limit)
    return lambda value: None if value is None else text(value)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2 ** 31 - 1:
        raise Invalid("must be an integer")
    return value


# field -> (column, converter)
_APPOINTMENT: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "start": ("start_at", parse_time),
    "end": ("end_at", parse_time),
    "product_id": ("product_id", _opt_id),
    "staff_ids": ("staff_ids", _id_list),
    "staff_id": ("staff_ids", lambda v: [] if v is None else [_id(v)]),
    "customer_id": ("customer_id", _opt_id),
    "order_id": ("order_id", _opt_id),
    "order_item_id": ("order_item_id", _opt_id),
    "status": ("status", _choice(APPOINTMENT_STATUSES)),
    "customer_status": ("customer_status", _choice(CUSTOMER_STATUSES)),
    "cost": ("cost", _cost),
    "all_day": ("all_day", _bool),
    "notes": ("notes", _opt_text(MAX_TEXT)),
    "overlap_allowed": ("overlap_allowed", _bool),
}

_AVAILABILITY: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "scope": ("scope", _choice(SCOPES)),
    "product_id": ("product_id", _opt_id),
    "staff_id": ("staff_id", _opt_id),
    "title": ("title", _text(200)),
    "range_type": ("range_type", _text(40)),
    "from_range": ("from_range", _opt_text(100)),
    "to_range": ("to_range", _opt_text(100)),
    "appointable": ("appointable", _bool),
    "priority": ("priority", _int),
    "qty": ("qty", _int),
    "ordering": ("ordering", _int),
    "rrule": ("rrule", _opt_text(MAX_TEXT)),
}


def _columns(body: Any, fields: dict[str, tuple[str, Callable[[Any], Any]]],
             required: tuple[str, ...], errors: dict[str, str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        errors["body"] = "The body must be a JSON object."
        return {}
    values: dict[str, Any] = {}
    for name, raw in body.items():
        if name not in fields:
            errors[name] = f"{name} is not a known field."
            continue
        column, convert = fields[name]
        try:
            values[column] = convert(raw)
        except Invalid as exc:
            errors[name] = f"{name} {exc}."
    for name in required:
        if name not in body:
            errors[name] = f"{name} is required."
    if "staff_id" in body and "staff_ids" in body:
        errors["staff_id"] = "give staff_id or staff_ids, not both."
    if not body and not errors:
        errors["body"] = "Nothing to change."
    return values


def appointment_columns(body: Any, *, partial: bool, errors: dict[str, str]) -> dict[str, Any]:
    """Columns to write for an appointment; problems go to ``errors``."""
    values = _columns(body, _APPOINTMENT, () if partial else ("start", "end"), errors)
    start, end = values.get("start_at"), values.get("end_at")
    if start is not None and end is not None and end < start:
        errors["end"] = "end must not be before start."
    return values


def availability_columns(body: Any, *, partial: bool, errors: dict[str, str]) -> dict[str, Any]:
    """Columns to write for an availability rule; problems go to ``errors``."""
    values = _columns(body, _AVAILABILITY, (), errors)
    scope = values.get("scope")
    if scope == "staff" and values.get("staff_id") is None and not partial:
        errors["staff_id"] = "a staff rule needs staff_id."
    if scope == "product" and values.get("product_id") is None and not partial:
        errors["product_id"] = "a product rule needs product_id."
    return values


#: Entity tags a client may send in If-Match: the ETag we answer is a
#: version in double quotes (SPEC §8).
MAX_IF_MATCH = 20


def if_match(raw: str) -> frozenset[int] | None:
    """The versions an If-Match header accepts, or None for ``*`` (any
    current row), per RFC 9110 §13.1.1: a comma list of entity tags. A weak
    tag (W/"3") never matches (If-Match uses the strong comparison), so it
    is refused rather than silently failing every write."""
    text = raw.strip()
    if text == "*":
        return None
    versions: set[int] = set()
    tags = [t.strip() for t in text.split(",")]
    if not text or len(tags) > MAX_IF_MATCH:
        raise Invalid(f'must be "*" or up to {MAX_IF_MATCH} quoted versions like "3"')
    for tag in tags:
        inner = tag[1:-1] if len(tag) >= 2 and tag[0] == tag[-1] == '"' else ""
        if not (inner.isascii() and inner.isdigit()) or len(inner) > 19:
            raise Invalid('must be "*" or quoted versions like "3" (strong entity tags)')
        versions.add(int(inner))
    return frozenset(versions)
