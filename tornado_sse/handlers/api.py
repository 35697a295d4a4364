"""Snapshots, single rows and admin writes: /api/appointments and
/api/availabilities (SPEC §5, §8).

A calendar loads a snapshot, then streams from its ``last_event_id``.
Writes are for admins; they change rows through SQL like any other writer,
and every open calendar (the writer's included) learns of the change from
the stream. A write answers with the row (its ``version`` also as
``ETag``) and ``Event-Id``, the highest event id it produced, so the writer
can recognise its own change on the stream; ``If-Match`` makes PATCH and
DELETE conditional on the version the client saw (412 otherwise).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, TypeVar

import psycopg
from tornado.iostream import StreamClosedError

from .. import calendar_rows as rows
from ..auth import Principal
from ..availability import Rule, closed_intervals, zone
from ..context import Context
from ..errors import ApiError, forbidden, invalid_params, key_reused
from ..idempotency import KeyReused
from ..validation import (
    MAX_STAFF_IDS,
    Invalid,
    appointment_columns,
    availability_columns,
    if_match,
    parse_time,
    pop_override,
)
from ..write_checks import appointment_check, availability_check
from .base import BaseHandler

log = logging.getLogger("tornado_sse.api")

#: Without start/end a snapshot covers this window around now.
DEFAULT_BEFORE = dt.timedelta(days=7)
DEFAULT_SPAN = dt.timedelta(days=35)
#: A longer range is refused rather than answered slowly.
MAX_SPAN = dt.timedelta(days=400)
#: A snapshot up to this many bytes of JSON is read whole, its connection let
#: go, and then written; a larger one streams from its transaction.
SNAPSHOT_MEMORY = 1 << 20
#: Seconds a snapshot client may take to accept one page before it is cut:
#: a client that does not read must not hold a database connection (or a
#: growing buffer) for long.
PAGE_SEND_TIMEOUT = 10.0

_CONSTRAINT_FIELDS = {"appointments_end_after_start": "end"}

T = TypeVar("T")


class ResourceHandler(BaseHandler):
    """What the collection and item handlers of both resources share."""

    table: rows.Table
    columns: Callable[..., dict[str, Any]]

    def initialize(self, ctx: Context) -> None:
        super().initialize(ctx)
        self._write: asyncio.Future[Any] | None = None

    def admin(self) -> Principal:
        principal = self.principal()
        if not principal.is_admin:
            raise forbidden("Only admins may change the calendar.")
        return principal

    def writer(self, principal: Principal) -> rows.Writer:
        """The write's actor (SPEC §8): the token's role and subject."""
        return rows.Writer(actor=actor_json(principal), limits=self.limits)

    def expected_version(self) -> rows.Expect | None:
        """If-Match as a test of the current version (None: no header)."""
        if "If-Match" not in self.request.headers:
            return None
        versions = self.header("If-Match", if_match)
        if versions is None:  # "*": any current row
            return lambda _version: True
        return lambda version: version in versions

    def answer(self, written: rows.Written) -> None:
        """A write's answer: the row, its version as ETag, its Event-Id."""
        version = written.row.get("version")
        if isinstance(version, int):
            self.set_header("ETag", f'"{version}"')
        if written.event_id is not None:
            self.set_header("Event-Id", str(written.event_id))
        if written.replayed:
            self.set_header("Idempotent-Replayed", "true")
        self.write_json(written.row, written.status)

    def values(self, body: Any, *, partial: bool) -> tuple[dict[str, Any], bool]:
        """The columns a body sets, and whether it overrides availability."""
        errors: dict[str, str] = {}
        override = pop_override(body, errors) if self.table is rows.APPOINTMENTS else False
        values = type(self).columns(body, partial=partial, errors=errors)
        self.check(errors)
        return values, override

    def write_check(self, body: Any, values: dict[str, Any], *, creating: bool, override: bool) -> rows.Check:
        if self.table is rows.APPOINTMENTS:
            return appointment_check(
                values, creating=creating, override=override,
                max_duration=dt.timedelta(hours=self.ctx.settings.max_duration_hours),
                staff_field="staff_id" if isinstance(body, dict) and "staff_id" in body else "staff_ids")
        return availability_check(values)

    async def create(self) -> None:
        """POST: check, insert, answer (SPEC §8), idempotently with a key."""
        principal = self.admin()
        body = self.json_body()
        idem = self.idempotency(principal, body)
        values, override = self.values(body, partial=False)
        if self.table is rows.APPOINTMENTS:
            values.setdefault("status", "confirmed")
        self.answer(await self.write_through(rows.create(
            self.ctx.pool, self.table, values, self.writer(principal), idempotency=idem,
            check=self.write_check(body, values, creating=True, override=override))))

    async def write_through(self, op: Awaitable[T]) -> T:
        """Run a write; constraint violations become a 400 naming the field.

        The write is cancelled if the client goes away first: psycopg then
        cancels the statement in the server and the transaction rolls back,
        so a write nobody waits for is never committed later (issue 12).
        """
        task: asyncio.Future[T] = asyncio.ensure_future(op)
        self._write = task
        try:
            return await task
        except asyncio.CancelledError:
            if not self.gone:
                raise
            raise ApiError(499, "rest_client_closed", "The client closed the connection.") from None
        except rows.PreconditionFailed as exc:
            raise ApiError(412, "rest_precondition_failed",
                           f"The {self.table.singular} has changed since you loaded it (version "
                           f"{exc.current.get('version')} now); nothing was written.",
                           current=exc.current) from None
        except rows.Conflict as exc:
            raise ApiError(409, "rest_conflict",
                           "A staff member is already booked then: " + (
                               ", ".join(f"appointment {i}" for i in exc.conflicts) or "another appointment")
                           + ". Choose another time, or set overlap_allowed to book anyway.",
                           conflicts=exc.conflicts) from None
        except KeyReused:
            raise key_reused() from None
        except psycopg.errors.CheckViolation as exc:
            name = exc.diag.constraint_name or ""
            field = _CONSTRAINT_FIELDS.get(name, "body")
            raise invalid_params({field: f"{field} violates {name or 'a constraint'}."}) from None
        except psycopg.errors.NumericValueOutOfRange:
            raise invalid_params({"body": "a number is out of range."}) from None

    def on_connection_close(self) -> None:
        super().on_connection_close()
        if self._write is not None and not self._write.done():
            self._write.cancel()

    async def snapshot(self, principal: Principal, key: str, snapshot: rows.Snapshot) -> None:
        """Answer ``{key: [...], "last_event_id": N}`` from one MVCC snapshot.

        The rows are read as fast as the database gives them, and the pooled
        connection is let go before the client is waited for: a client that
        does not read must not hold a connection that writes need (issue 19).
        A snapshot of up to :data:`SNAPSHOT_MEMORY` bytes (a calendar's month,
        usually) is held in memory and written after the transaction ends;
        a larger one streams page by page from its transaction, on one of the
        connections :class:`~tornado_sse.snapshots.SnapshotGate` lets
        snapshots hold, and a client that does not take a page within
        ``PAGE_SEND_TIMEOUT`` is cut. Either way memory stays bounded, and a
        token may have ``--max-snapshots-per-token`` in progress (429).
        An error before the first byte is a clean JSON error; after it, the
        connection is dropped (the body is visibly incomplete).
        """
        gate = self.ctx.snapshots
        try:
            gate.admit(principal.token_key)
        except ApiError:
            self.ctx.metrics.refused.labels("snapshots_per_token").inc()
            raise
        try:
            self.set_header("Cache-Control", "no-store")
            self.set_header("Content-Type", "application/json; charset=utf-8")
            held: list[str] = []
            size = 0
            async with gate.connection(), snapshot, aclosing(snapshot.pages()) as pages:
                async for page in pages:
                    held.append(",".join(page))
                    size += len(held[-1])
                    if size > SNAPSHOT_MEMORY:
                        await self._stream(key, snapshot, held, pages)
                        return
            body = f'{{"{key}":[' + ",".join(held) + f'],"last_event_id":{snapshot.last_event_id}}}'
            del held
            await self._send(self.finish(body), key)
        finally:
            gate.leave(principal.token_key)

    async def _stream(self, key: str, snapshot: rows.Snapshot, held: list[str],
                      pages: AsyncGenerator[list[str], None]) -> None:
        """Write what is held, then the rest page by page, each page only
        once the client has taken the previous one."""
        self.write(f'{{"{key}":[' + ",".join(held))
        held.clear()
        if not await self._send(self.flush(), key):
            return
        async for page in pages:
            self.write("," + ",".join(page))
            if not await self._send(self.flush(), key):
                return
        await self._send(self.finish(f'],"last_event_id":{snapshot.last_event_id}}}'), key)

    async def _send(self, sent: Awaitable[None], key: str) -> bool:
        """Wait until the client has taken what was written; False (and the
        connection dropped) when it is gone or slower than PAGE_SEND_TIMEOUT."""
        try:
            await asyncio.wait_for(sent, PAGE_SEND_TIMEOUT)
        except (StreamClosedError, asyncio.TimeoutError):
            log.info("snapshot client too slow or gone; cut after %s", key)
            self._abort()
            return False
        return True

    def _abort(self) -> None:
        """Drop the connection mid-body; nothing more is written."""
        self.request.connection.close()  # type: ignore[union-attr]
        self._finished = True

    def not_found(self, row_id: int) -> ApiError:
        return ApiError(404, "rest_invalid_id", f"No {self.table.singular} with id {row_id}.")


class AppointmentsHandler(ResourceHandler):
    table = rows.APPOINTMENTS
    columns = staticmethod(appointment_columns)

    async def get(self) -> None:
        principal = self.principal()
        errors: dict[str, str] = {}
        start, end = requested_range(self, errors)
        staff_id = self.int_arg("staff_id", errors, minimum=1)
        product_id = self.int_arg("product_id", errors, minimum=1)
        self.check(errors)
        assert start is not None and end is not None
        rng = rows.AppointmentRange(start=start, end=end, audience_staff_id=principal.audience_staff_id,
                                    staff_id=staff_id, product_id=product_id)
        await self.snapshot(principal, "appointments", rows.appointments(self.ctx.pool, rng, self.limits))

    async def post(self) -> None:
        await self.create()


def requested_range(handler: BaseHandler, errors: dict[str, str]) -> tuple[dt.datetime | None, dt.datetime | None]:
    """A snapshot's (or an export's) ``start`` and ``end`` query parameters:
    epoch seconds or ISO 8601, by default a window around now, at most
    :data:`MAX_SPAN`; problems go to ``errors`` (SPEC §5)."""
    start, end = _time_arg(handler, "start", errors), _time_arg(handler, "end", errors)
    try:
        if start is None:
            start = (end or dt.datetime.now(dt.timezone.utc)) - (DEFAULT_SPAN if end else DEFAULT_BEFORE)
        if end is None:
            end = start + DEFAULT_SPAN
    except OverflowError:
        errors["start" if start is None else "end"] = "is out of range."
    if start is not None and end is not None and not errors:
        if end < start:
            errors["end"] = "end must not be before start."
        elif end - start > MAX_SPAN:
            errors["end"] = f"the range may span at most {MAX_SPAN.days} days."
    return start, end


def _time_arg(handler: BaseHandler, name: str, errors: dict[str, str]) -> dt.datetime | None:
    # Unstripped: str.strip() would take NBSP padding away (issue 19).
    raw = handler.get_query_argument(name, None, strip=False)
    if raw is None or raw == "":
        return None
    try:
        return parse_time(raw)
    except Invalid as exc:
        errors[name] = f"{name} {exc}."
        return None


class AvailabilitiesHandler(ResourceHandler):
    table = rows.AVAILABILITIES
    columns = staticmethod(availability_columns)

    async def get(self) -> None:
        principal = self.principal()  # every staff member sees every rule (SPEC §4)
        errors: dict[str, str] = {}
        staff_id = self.int_arg("staff_id", errors, minimum=1)
        product_id = self.int_arg("product_id", errors, minimum=1)
        self.check(errors)
        scope = rows.AvailabilityScope(staff_id=staff_id, product_id=product_id)
        await self.snapshot(principal, "availabilities",
                            rows.availabilities(self.ctx.pool, scope, self.limits))

    async def post(self) -> None:
        await self.create()


class ItemHandler(ResourceHandler):
    """GET, PATCH and DELETE of one row: ``/api/<resource>/<id>``."""

    async def get(self, row_id: str) -> None:
        principal = self.principal()
        row = await rows.fetch(self.ctx.pool, self.table, int(row_id), self.limits,
                               audience_staff_id=principal.audience_staff_id)
        if row is None:  # also another staff member's appointment: not theirs to see
            raise self.not_found(int(row_id))
        self.set_header("Cache-Control", "no-store")
        self.set_header("ETag", f'"{row["version"]}"')
        self.write_json(row)

    async def patch(self, row_id: str) -> None:
        principal = self.admin()
        expect = self.expected_version()
        body = self.json_body()
        values, override = self.values(body, partial=True)
        written = await self.write_through(rows.update(
            self.ctx.pool, self.table, int(row_id), values, self.writer(principal), expect=expect,
            check=self.write_check(body, values, creating=False, override=override)))
        if written is None:
            raise self.not_found(int(row_id))
        self.answer(written)

    async def delete(self, row_id: str) -> None:
        principal = self.admin()
        expect = self.expected_version()
        force = self.get_query_argument("force", "false").lower()
        if force not in ("true", "false", "1", "0"):
            raise invalid_params({"force": "force must be true or false."})
        written = await self.write_through(rows.delete(
            self.ctx.pool, self.table, int(row_id), self.writer(principal),
            force=force in ("true", "1"), expect=expect))
        if written is None:
            raise self.not_found(int(row_id))
        self.answer(written)


class AppointmentHandler(ItemHandler):
    table = rows.APPOINTMENTS
    columns = staticmethod(appointment_columns)


class AvailabilityHandler(ItemHandler):
    table = rows.AVAILABILITIES
    columns = staticmethod(availability_columns)


def actor_json(principal: Principal) -> str:
    """The actor an API write records on its events (SPEC §8): the token's
    role, its ``sub`` and, for staff, the staff id."""
    actor: dict[str, Any] = {"role": principal.role}
    if principal.subject is not None:
        actor["sub"] = principal.subject
    if principal.staff_id is not None:
        actor["staff_id"] = principal.staff_id
    return json.dumps(actor, separators=(",", ":"))


#: The longest range /api/unavailable answers for (a calendar shows a week
#: or a month).
MAX_UNAVAILABLE_SPAN = dt.timedelta(days=62)


class UnavailableHandler(BaseHandler):
    """``GET /api/unavailable?start=&end=[&staff_ids=1,2][&product_id=]``:
    the time the availability rules close, for a calendar to draw.

    Evaluated by the same module as the write API's 409 ``rest_unavailable``
    (tornado_sse/availability.py), so what is drawn closed is what the API
    refuses. Entries with ``staff_id`` null are closed for everyone (global
    rules, and the product's when ``product_id`` is given); entries with a
    ``staff_id`` are closed for that staff member (their own rules and the
    global ones). Times are epoch seconds.
    """

    async def get(self) -> None:
        self.principal()  # every staff member sees every rule (SPEC §4)
        errors: dict[str, str] = {}
        start, end = self._time("start", errors), self._time("end", errors)
        product_id = self.int_arg("product_id", errors, minimum=1)
        staff_ids: list[int] = []
        for part in (self.get_query_argument("staff_ids", "") or "").split(","):
            if part.strip():
                staff = self.int_arg("staff_ids", errors, minimum=1, value=part.strip())
                if staff is not None:
                    staff_ids.append(staff)
        if len(staff_ids) > MAX_STAFF_IDS:
            errors["staff_ids"] = f"staff_ids may name at most {MAX_STAFF_IDS} staff members."
        if start is not None and end is not None and not errors:
            if end <= start:
                errors["end"] = "end must be after start."
            elif end - start > MAX_UNAVAILABLE_SPAN:
                errors["end"] = f"the range may span at most {MAX_UNAVAILABLE_SPAN.days} days."
        self.check(errors)
        assert start is not None and end is not None
        settings = self.ctx.settings
        name, offset, found = await rows.read_rules(
            self.ctx.pool, rows.Limits(settings.db_lock_timeout, settings.db_statement_timeout),
            product_id=product_id, staff_ids=staff_ids)
        rules = [Rule.from_row(r) for r in found]
        tz = zone(name, offset)
        closed: list[dict[str, Any]] = []
        for staff in [None, *dict.fromkeys(staff_ids)]:
            for gap in closed_intervals(rules, start, end, tz, product_id=product_id,
                                         staff_ids=[] if staff is None else [staff]):
                closed.append({"staff_id": staff, "start": int(gap.start.timestamp()),
                               "end": int(gap.end.timestamp()), "rule": gap.rule.summary(),
                               "outside": gap.outside})
        self.set_header("Cache-Control", "no-store")
        self.write_json({"timezone": name, "start": int(start.timestamp()), "end": int(end.timestamp()),
                         "closed": closed})

    def _time(self, name: str, errors: dict[str, str]) -> dt.datetime | None:
        value = _time_arg(self, name, errors)
        if value is None and name not in errors:
            errors[name] = f"{name} is required."
        return value
