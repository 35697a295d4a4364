"""What the write API checks inside a write's transaction (SPEC §8).

Each check sees the row as it will be (on PATCH, the stored row merged with
the change, read under the row lock), so a PATCH cannot slip past a rule
by changing one field at a time, and the directory and the availability
rules are read in the same transaction as the write. The database's own
guarantees (no double booking, version) do not live here: they bind every
writer (sql/005). These bind the API only: a shop or psql may still write
unknown ids or book closed time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from psycopg import AsyncConnection

from . import calendar_rows as rows
from .availability import Rule, first_closure, rule_errors, zone
from .errors import ApiError, invalid_params
from .validation import appointment_row_errors, availability_row_errors

#: Columns whose change moves a booking in time or to other people, so the
#: availability rules are asked again.
_PLACEMENT = ("start_at", "end_at", "all_day", "staff_ids", "product_id")
#: Statuses that hold no time (sql/005, tornado_sse_holds_time).
_NOT_HELD = ("cancelled", "trash", "was-in-cart")


def appointment_check(changed: dict[str, Any], *, creating: bool, max_duration: dt.timedelta,
                      override: bool, staff_field: str = "staff_ids") -> rows.Check:
    """The check of an appointment write: ranges, references, availability
    (unless ``override``: an admin's explicit "book anyway"). Errors name
    the fields as sent (``staff_field``: staff_id or staff_ids)."""

    async def check(conn: AsyncConnection[Any], current: dict[str, Any] | None, row: dict[str, Any]) -> None:
        errors = appointment_row_errors(row, changed, creating=creating, max_duration=max_duration)
        unknown = await rows.unknown_references(
            conn, {k: changed[k] for k in ("staff_ids", "product_id", "customer_id") if k in changed})
        if "staff_ids" in unknown:
            unknown[staff_field] = unknown.pop("staff_ids").replace("staff_ids", staff_field, 1)
        errors.update(unknown)
        if errors:
            raise invalid_params(errors)
        moved = current is None or any(k in changed and changed[k] != current.get(k) for k in _PLACEMENT)
        if override or not moved or row.get("status") in _NOT_HELD:
            return
        staff = list(row.get("staff_ids") or [])
        name, offset, found = await rows.availability_rules(conn, product_id=row.get("product_id"),
                                                            staff_ids=staff)
        closure = first_closure([Rule.from_row(r) for r in found], row["start_at"], row["end_at"],
                                zone(name, offset), all_day=bool(row.get("all_day")),
                                product_id=row.get("product_id"), staff_ids=staff)
        if closure is not None:
            rule = closure.rule
            how = "is outside" if closure.outside else "is closed by"
            raise ApiError(409, "rest_unavailable",
                           f"That time {how} the availability rule \u201c{rule.title}\u201d ({rule.scope}, "
                           f"id {rule.id}); send \"override_availability\": true to book it anyway.",
                           rule=rule.summary(), outside=closure.outside,
                           closed={"start": int(closure.start.timestamp()), "end": int(closure.end.timestamp())})

    return check


def availability_check(changed: dict[str, Any]) -> rows.Check:
    """The check of an availability rule write: scope and its owner,
    references, and a range the rules module can evaluate."""

    async def check(conn: AsyncConnection[Any], current: dict[str, Any] | None, row: dict[str, Any]) -> None:
        errors = availability_row_errors(row)
        errors.update(await rows.unknown_references(
            conn, {k: changed[k] for k in ("staff_id", "product_id") if k in changed}))
        ranged = ("range_type", "from_range", "to_range", "rrule")
        if current is None or any(k in changed for k in ranged):
            errors.update(rule_errors(Rule.from_row(row)))
        if errors:
            raise invalid_params(errors)

    return check
