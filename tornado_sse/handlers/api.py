"""Snapshots and admin writes: /api/appointments and /api/availabilities (SPEC §5).

A calendar loads a snapshot, then streams from its ``last_event_id``.
Writes are for admins; they change rows through SQL like any other writer,
and every open calendar (the writer's included) learns of the change from
the stream.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Callable

import psycopg

from .. import records
from ..auth import Principal
from ..errors import ApiError, forbidden, invalid_params
from ..validation import Invalid, appointment_columns, availability_columns, parse_time
from .base import BaseHandler

#: Without start/end a snapshot covers this window around now.
DEFAULT_BEFORE = dt.timedelta(days=7)
DEFAULT_SPAN = dt.timedelta(days=35)
#: A longer range is refused rather than answered slowly.
MAX_SPAN = dt.timedelta(days=400)

_CONSTRAINT_FIELDS = {"appointments_end_after_start": "end"}


class ResourceHandler(BaseHandler):
    """What the collection and item handlers of both resources share."""

    table: records.Table
    columns: Callable[..., dict[str, Any]]

    def json_body(self) -> Any:
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            # Also a CSRF guard: a cross-site form cannot send this type
            # without a CORS preflight.
            raise ApiError(415, "rest_invalid_content_type", "Send the body as application/json.")
        try:
            return json.loads(self.request.body or b"null")
        except ValueError:
            raise invalid_params({"body": "The body is not valid JSON."}) from None

    def admin(self) -> Principal:
        principal = self.principal()
        if not principal.is_admin:
            raise forbidden("Only admins may change the calendar.")
        return principal

    def values(self, *, partial: bool) -> dict[str, Any]:
        errors: dict[str, str] = {}
        values = type(self).columns(self.json_body(), partial=partial, errors=errors)
        self.check(errors)
        return values

    async def write_through(self, op: Any) -> dict[str, Any] | None:
        """Run a write; constraint violations become a 400 naming the field."""
        try:
            return await op
        except psycopg.errors.CheckViolation as exc:
            name = exc.diag.constraint_name or ""
            field = _CONSTRAINT_FIELDS.get(name, "body")
            raise invalid_params({field: f"{field} violates {name or 'a constraint'}."}) from None

    async def snapshot(self, key: str, where: list[str], params: list[Any]) -> None:
        """Answer with the rows matching ``where`` and the snapshot's last event id."""
        rows, last_id = await records.snapshot(self.ctx.pool, self.table, where, params)
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(f'{{"{key}":{rows},"last_event_id":{last_id}}}')

    def not_found(self, row_id: int) -> ApiError:
        return ApiError(404, "rest_invalid_id", f"No {self.table.name[:-1]} with id {row_id}.")


class AppointmentsHandler(ResourceHandler):
    table = records.APPOINTMENTS
    columns = staticmethod(appointment_columns)

    async def get(self) -> None:
        principal = self.principal()
        errors: dict[str, str] = {}
        start, end = self._time_arg("start", errors), self._time_arg("end", errors)
        staff_id = self.int_arg("staff_id", errors, minimum=1)
        product_id = self.int_arg("product_id", errors, minimum=1)
        if start is None:
            start = (end or dt.datetime.now(dt.timezone.utc)) - (DEFAULT_SPAN if end else DEFAULT_BEFORE)
        if end is None:
            end = start + DEFAULT_SPAN
        if end < start:
            errors["end"] = "end must not be before start."
        elif end - start > MAX_SPAN:
            errors["end"] = f"the range may span at most {MAX_SPAN.days} days."
        self.check(errors)
        # Trashed appointments are gone from a calendar's point of view.
        where = ["t.start_at < %s", "t.end_at > %s", "t.status <> 'trash'"]
        params: list[Any] = [end, start]
        if principal.audience_staff_id is not None:  # staff see their own only
            where.append("%s = ANY(t.staff_ids)")
            params.append(principal.audience_staff_id)
        if staff_id is not None:
            where.append("%s = ANY(t.staff_ids)")
            params.append(staff_id)
        if product_id is not None:
            where.append("t.product_id = %s")
            params.append(product_id)
        await self.snapshot("appointments", where, params)

    async def post(self) -> None:
        self.admin()
        values = self.values(partial=False)
        values.setdefault("status", "confirmed")
        row = await self.write_through(records.insert(self.ctx.pool, self.table, values))
        self.write_json(row, 201)

    def _time_arg(self, name: str, errors: dict[str, str]) -> dt.datetime | None:
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return None
        try:
            return parse_time(raw)
        except Invalid as exc:
            errors[name] = f"{name} {exc}."
            return None


class AvailabilitiesHandler(ResourceHandler):
    table = records.AVAILABILITIES
    columns = staticmethod(availability_columns)

    async def get(self) -> None:
        self.principal()  # every staff member sees every rule (SPEC §4)
        errors: dict[str, str] = {}
        staff_id = self.int_arg("staff_id", errors, minimum=1)
        product_id = self.int_arg("product_id", errors, minimum=1)
        self.check(errors)
        where: list[str] = []
        params: list[Any] = []
        if staff_id is not None:
            where.append("(t.scope <> 'staff' OR t.staff_id = %s)")
            params.append(staff_id)
        if product_id is not None:
            where.append("(t.scope <> 'product' OR t.product_id = %s)")
            params.append(product_id)
        await self.snapshot("availabilities", where, params)

    async def post(self) -> None:
        self.admin()
        row = await self.write_through(
            records.insert(self.ctx.pool, self.table, self.values(partial=False)))
        self.write_json(row, 201)


class ItemHandler(ResourceHandler):
    """PATCH and DELETE of one row: ``/api/<resource>/<id>``."""

    async def patch(self, row_id: str) -> None:
        self.admin()
        values = self.values(partial=True)
        row = await self.write_through(records.update(self.ctx.pool, self.table, int(row_id), values))
        if row is None:
            raise self.not_found(int(row_id))
        self.write_json(row)

    async def delete(self, row_id: str) -> None:
        self.admin()
        force = self.get_query_argument("force", "false").lower()
        if force not in ("true", "false", "1", "0"):
            raise invalid_params({"force": "force must be true or false."})
        row = await records.delete(self.ctx.pool, self.table, int(row_id),
                                   force=force in ("true", "1"))
        if row is None:
            raise self.not_found(int(row_id))
        self.write_json(row)


class AppointmentHandler(ItemHandler):
    table = records.APPOINTMENTS
    columns = staticmethod(appointment_columns)


class AvailabilityHandler(ItemHandler):
    table = records.AVAILABILITIES
    columns = staticmethod(availability_columns)
