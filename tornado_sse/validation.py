"""Checking what clients send to the write API and the snapshot queries.

Every field is checked and every bad one named in one 400 (SPEC §4:
``rest_invalid_param``), before anything touches the database, so bad input
changes nothing. Unknown fields are errors too: a misspelt ``stat`` must not
silently do nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
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


class DuplicateKey(Invalid):
    """A JSON object in the body names ``key`` twice."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{key} appears more than once in the body")
        self.key = key


#: C0 controls and DEL (issue 19): invisible in a calendar, and a NUL or an
#: escape sequence in a title ends up in every client's DOM and every log.
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def parse_json(body: bytes) -> object:
    """The body's JSON, refusing an object that names a key twice.

    Python's json (like most parsers) keeps the last of two equal keys,
    another parser in front of us (a WAF, a proxy that logs) may keep the
    first: ``{"status": "paid", "status": "trash"}`` would mean two things
    (issue 19). Raises :class:`DuplicateKey` or :class:`Invalid`.
    """
    def unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
        obj: dict[str, object] = {}
        for key, value in pairs:
            if key in obj:
                raise DuplicateKey(key)
            obj[key] = value
        return obj

    try:
        return json.loads(body or b"null", object_pairs_hook=unique)
    except Invalid:
        raise
    except (ValueError, RecursionError):
        raise Invalid("is not valid JSON") from None


def query_control_characters(arguments: Mapping[str, list[bytes]]) -> dict[str, str]:
    """Query parameters whose name or value holds a control character, as
    errors naming each (escaped). Tornado turns them into spaces and a
    ``%00`` name is simply another name, so ``since_id=%00`` and
    ``since_id%00=5`` used to pass as "absent" (issue 19): 400 instead."""
    errors: dict[str, str] = {}
    for name, values in arguments.items():
        if _CONTROL.search(name) or any(_CONTROL.search(v.decode("latin-1")) for v in values):
            shown = name.encode("unicode_escape").decode("ascii")
            errors[shown] = f"{shown} must not contain control characters."
    return errors


def parse_time(value: Any) -> dt.datetime:
    """Epoch seconds (number or ASCII digit string) or ISO 8601; naive means
    UTC. The result lies in years 1-9999 in UTC, with a day to spare on each
    side, so adding a default span or converting to UTC cannot overflow."""
    if isinstance(value, bool) or (isinstance(value, str) and not value.isascii()):
        # str.strip() and float() also take NBSP and other Unicode spaces
        # and digits ("\u00a01733044800"): a time is ASCII (issue 19).
        raise Invalid("must be epoch seconds or an ISO 8601 date-time (ASCII)")
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
        if not isinstance(value, str) or len(value) > limit:
            raise Invalid(f"must be text of at most {limit} characters")
        if _CONTROL.search(value):
            raise Invalid("must not contain control characters (tab, newline, NUL, ESC, DEL, ...)")
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


#: Customers (issue 23, sql/006): a name, and how to reach them.
MAX_NAME, MAX_PHONE, MAX_EMAIL = 200, 40, 254
#: A phone number as people write it: digits with + ( ) . / - and spaces.
_PHONE = re.compile(r"^[+(]?[0-9][0-9 ()./-]*$")
#: An address a desk can write to: something@domain.tld, no spaces. Not
#: RFC 5322 in full: a typo is more likely than a quoted local part.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def _name(value: Any) -> str:
    name = _text(MAX_NAME)(value)
    if not name.strip():
        raise Invalid(f"must be 1 to {MAX_NAME} characters, not only spaces")
    return name.strip()


def _contact(pattern: re.Pattern[str], limit: int, shape: str) -> Callable[[Any], str | None]:
    """An optional phone or e-mail: null or "" means none."""
    def check(value: Any) -> str | None:
        if value is None or value == "":
            return None
        text = _text(limit)(value).strip()
        if not pattern.match(text):
            raise Invalid(f"must look like {shape}")
        return text
    return check


_CUSTOMER: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "name": ("name", _name),
    "phone": ("phone", _contact(_PHONE, MAX_PHONE, "a phone number (digits, + ( ) . / - and spaces)")),
    "email": ("email", _contact(_EMAIL, MAX_EMAIL, "an e-mail address (name@example.com)")),
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


def customer_columns(body: Any, *, errors: dict[str, str]) -> dict[str, Any]:
    """Columns of a new customer; problems go to ``errors``."""
    return _columns(body, _CUSTOMER, ("name",), errors)


def availability_columns(body: Any, *, partial: bool, errors: dict[str, str]) -> dict[str, Any]:
    """Columns to write for an availability rule; problems go to ``errors``."""
    values = _columns(body, _AVAILABILITY, (), errors)
    if not partial:  # a PATCH is checked merged with the stored rule
        errors.update(availability_row_errors(values))
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


#: Years the write API books in: a typo (year 20244 as epoch milliseconds,
#: a zero epoch) is refused rather than booked (parse_time alone allows
#: 1-9999, which snapshots and psql keep).
WRITE_YEARS = (1900, 2200)


def appointment_row_errors(row: dict[str, Any], changed: dict[str, Any], *, creating: bool,
                           max_duration: dt.timedelta) -> dict[str, str]:
    """Problems of an appointment as it would be after a write (SPEC §8).

    ``row`` is the whole row (on PATCH: the stored row merged with the
    change), ``changed`` the columns the request sets. The time rules apply
    when the request sets a time or all_day, so a row psql wrote long ago
    can still be marked paid; a new appointment cannot start in the trash.
    """
    errors: dict[str, str] = {}
    if creating and row.get("status") == "trash":
        errors["status"] = "status a new appointment cannot be trash."
    for field, column in (("start", "start_at"), ("end", "end_at")):
        value = changed.get(column)
        if isinstance(value, dt.datetime) and not WRITE_YEARS[0] <= value.year <= WRITE_YEARS[1]:
            errors[field] = f"{field} must be in the years {WRITE_YEARS[0]} to {WRITE_YEARS[1]}."
    if errors or not {"start_at", "end_at", "all_day"} & changed.keys():
        return errors
    start, end, all_day = row.get("start_at"), row.get("end_at"), bool(row.get("all_day"))
    if not isinstance(start, dt.datetime) or not isinstance(end, dt.datetime):
        return errors
    if all_day:
        if end < start:
            errors["end"] = "end must not be before start."
    elif end <= start:
        errors["end"] = "end must be after start (only an all-day appointment may have no length)."
    elif end - start > max_duration:
        hours = max_duration.total_seconds() / 3600
        errors["end"] = f"an appointment may last at most {hours:g} hours unless it is all-day."
    return errors


def availability_row_errors(row: dict[str, Any]) -> dict[str, str]:
    """Problems of an availability rule as it would be after a write: a
    staff rule needs its staff member, a product rule its product (checked
    on the merged row, so PATCH {"scope": "staff"} on a global rule is 400)."""
    errors: dict[str, str] = {}
    if row.get("scope") == "staff" and row.get("staff_id") is None:
        errors["staff_id"] = "a staff rule needs staff_id."
    if row.get("scope") == "product" and row.get("product_id") is None:
        errors["product_id"] = "a product rule needs product_id."
    return errors


#: Idempotency-Key (SPEC §8): at most this many characters, printable ASCII.
MAX_IDEMPOTENCY_KEY = 200


def idempotency_key(raw: str) -> str:
    """The key as sent, or :class:`Invalid` (empty, too long, not printable
    ASCII: it is stored and compared byte for byte)."""
    if not 0 < len(raw) <= MAX_IDEMPOTENCY_KEY or not all(" " <= c <= "~" for c in raw):
        raise Invalid(f"must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters")
    return raw


def pop_override(body: Any, errors: dict[str, str]) -> bool:
    """Take ``override_availability`` (SPEC §8: an admin books closed time
    on purpose) out of an appointment body: it is a request flag, not a
    column."""
    if not isinstance(body, dict) or "override_availability" not in body:
        return False
    value = body.pop("override_availability")
    if not isinstance(value, bool):
        errors["override_availability"] = "override_availability must be true or false."
        return False
    return value
