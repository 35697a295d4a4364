"""The OpenAPI 3.1 description of every route (SPEC §6), served at ``GET /openapi.json``.

Built from Python rather than kept as a hand-edited JSON file so that the
shapes shared by many routes (the WordPress error of SPEC §4, the stream
parameters of SPEC §3, the rows) are written once, and so that limits come
from the constants the server enforces (``max_events`` ≤ 1,000, poll
``timeout`` ≤ 60 s). ``python -m tornado_sse.openapi`` prints it, for client
generators that want a file.

Two rules keep it true: tests/test_openapi.py fails when a route the
application serves is not described here, and Schemathesis checks every
described answer shape against the live server. Routes that SPEC promises
and another branch of the work adds (``/livez``, ``/readyz``, ``GET`` of one
row with ``ETag``, the ``If-Match``/412/409 writes of SPEC §8) are described
already; the test lists them as pending until the application serves them.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from . import __version__
from .customers import DEFAULT_LIMIT, MAX_LIMIT, MAX_QUERY, PAST, SUBSTRING_FROM, UPCOMING
from .events import TOPICS
from .export_rows import MAX_ROWS as MAX_EXPORT
from .handlers.poll import DEFAULT_MAX_EVENTS, MAX_TIMEOUT
from .validation import (
    APPOINTMENT_STATUSES,
    CUSTOMER_STATUSES,
    MAX_EMAIL,
    MAX_NAME,
    MAX_PHONE,
    MAX_STAFF_IDS,
    MAX_TEXT,
    SCOPES,
)

#: SPEC §7: the largest ``max_events`` a client may ask for.
MAX_EVENTS_LIMIT = 1000
_BIGINT = 2 ** 63 - 1

JSON = "application/json"
EVENT_STREAM = "text/event-stream"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def _error(description: str, schema: str = "Error", headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return _json(ref(schema), description, headers)


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.",
                                "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
_CHALLENGE = {"WWW-Authenticate": {
    "description": "RFC 6750 challenge: `error` (invalid_request, invalid_token) and `error_description` "
                   "say what was wrong.", "schema": {"type": "string"}}}
_EVENT_ID = {"Event-Id": {"description": "SPEC §8: the highest event id the write produced.",
                          "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
_ETAG = {"ETag": {"description": "SPEC §8: the row's version, quoted.", "schema": {"type": "string"}}}

# The errors of SPEC §4 that any authenticated route may answer.
_AUTH_ERRORS = {
    "400": _error("A bad parameter (`rest_invalid_param`; `data.params` names each).", "InvalidParams"),
    "401": _error("No token, or a malformed, badly signed or expired one (always the same body).",
                  headers=_CHALLENGE),
    "403": _error("A valid token whose role may not do this."),
    "503": _error("The database (or the identity provider's keys) cannot be reached in time; "
                  "`data.reason` says unreachable or busy.", headers=_RETRY_AFTER),
}
_WRITE_ERRORS = {
    **_AUTH_ERRORS,
    "413": _error("The body is larger than the server accepts."),
    "415": _error("The body is not `application/json`."),
}


def _param(name: str, where: str, schema: dict[str, Any], description: str,
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "description": description, "schema": schema}


def _id_param(name: str, description: str, minimum: int = 1) -> dict[str, Any]:
    return _param(name, "query", {"type": "integer", "minimum": minimum, "maximum": _BIGINT}, description)


_FILTERS = [
    _param("topics", "query", {"type": "string", "examples": ["appointment.*,availability.deleted"]},
           "Comma list of exact topics or prefix wildcards (`appointment.*`); topics: " + ", ".join(TOPICS)),
    _id_param("staff_id", "Only this staff member's appointments."),
    _id_param("product_id", "Only this product's appointments."),
]
_CURSOR = [
    _id_param("since_id", "Only events with a larger id (history replay).", minimum=0),
    _param("Last-Event-ID", "header", {"type": "string", "pattern": "^[0-9]{1,19}$"},
           "The same as since_id, and wins over it (what a browser sends when it reconnects)."),
]
_MAX_EVENTS = _param("max_events", "query", {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS_LIMIT},
                     "End the stream (or the poll's answer) after this many events.")


def _stream_operation(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": "SPEC §3. Opens with `retry:`; each event is `id:`, `event:` (its topic) and `data:` "
                       "(the Event as JSON); a `: keepalive` comment after each quiet interval; an "
                       "`event: reset` frame when the cursor is outside the history. Never compressed. "
                       "A transient database problem never refuses the stream: it answers 200 and waits.",
        "parameters": [*_CURSOR, *_FILTERS, _MAX_EVENTS,
                       _param("heartbeat", "query", {"type": "integer", "minimum": 5, "maximum": 300},
                              "After this many quiet seconds send `event: heartbeat` with "
                              "`data: {\"last_id\": N}` (no `id:`) a page can observe.")],
        "responses": {
            "200": {"description": "The event stream.",
                    "headers": {"Cache-Control": {"schema": {"type": "string", "const": "no-cache"}},
                                "X-Accel-Buffering": {"schema": {"type": "string", "const": "no"}}},
                    # As OpenAPI 3.2 describes sequential media: the stream is a
                    # sequence of frames (schema), each a StreamFrame (itemSchema,
                    # which Schemathesis and newer generators read; 3.1 tools
                    # ignore it as an extension).
                    "content": {EVENT_STREAM: {"schema": {"type": "array", "items": ref("StreamFrame")},
                                               "itemSchema": ref("StreamFrame")}}},
            **_AUTH_ERRORS,
            "429": _error("Too many open streams (or connects per second) for this token.",
                          headers=_RETRY_AFTER),
        },
    }


def _poll_operation(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": "SPEC §5. Answers as soon as there is an event, or with an empty list after "
                       "`timeout`; without a cursor at once with the newest id.",
        "parameters": [*_CURSOR, *_FILTERS,
                       _param("max_events", "query", {"type": "integer", "minimum": 1,
                                                      "maximum": MAX_EVENTS_LIMIT},
                              f"At most this many events (default {DEFAULT_MAX_EVENTS})."),
                       _param("timeout", "query", {"type": "number", "minimum": 0, "maximum": MAX_TIMEOUT},
                              "Seconds to wait for an event (default: the server's --poll-timeout).")],
        "responses": {"200": _json(ref("PollAnswer"), "Events (maybe none) and the next cursor."),
                      **_AUTH_ERRORS,
                      "429": _error("Too many waiting polls for this token.", headers=_RETRY_AFTER)},
    }


def _snapshot_operation(resource: str, key: str, row: str, extra: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "summary": f"The current {resource} rows and the cursor to stream from",
        "description": "SPEC §5: every change in the snapshot has an id <= `last_event_id`, every later "
                       "change a larger one. Rows are streamed page by page.",
        "parameters": extra,
        "responses": {"200": _json({"type": "object", "required": [key, "last_event_id"],
                                    "properties": {key: {"type": "array", "items": ref(row)},
                                                   "last_event_id": {"type": "integer", "minimum": 0}}},
                                   "The rows."),
                      **_AUTH_ERRORS},
    }


_IDEMPOTENCY_KEY = _param("Idempotency-Key", "header", {"type": "string", "maxLength": 200},
                          "SPEC §8: a repeat within 24 h answers the first answer again.")
_KEY_REUSED = _error("SPEC §8: the Idempotency-Key was used with another body.")


def _create_operation(row: str, body: str) -> dict[str, Any]:
    return {
        "summary": "Create a row (admins)",
        "parameters": [_IDEMPOTENCY_KEY],
        "requestBody": {"required": True, "content": {JSON: {"schema": ref(body)}}},
        "responses": {"201": _json(ref(row), "The new row.", _EVENT_ID),
                      **_WRITE_ERRORS,
                      "409": _error("SPEC §8: a double booking (`rest_conflict`, `data.conflicts`) or time "
                                    "the availability rules close (`rest_unavailable`)."),
                      "422": _KEY_REUSED},
    }


def _item_operations(resource: str, row: str, patch: str) -> dict[str, Any]:
    if_match = _param("If-Match", "header", {"type": "string"},
                      "SPEC §8: the version (`\"<version>\"`) the change is based on; a stale one is 412.")
    changed = {**_WRITE_ERRORS,
               "404": _error(f"No {resource} with this id."),
               "409": _error("SPEC §8: the change would double-book (`rest_conflict`) or enter closed time "
                             "(`rest_unavailable`)."),
               "412": _error("SPEC §8: If-Match is not the current version (`rest_precondition_failed`, "
                             "`data.current` holds the row).")}
    return {
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "schema": {"type": "integer", "minimum": 0, "maximum": 10 ** 18 - 1}}],
        "get": {"summary": f"One {resource}", "responses": {
            "200": _json(ref(row), "The row.", _ETAG), **_AUTH_ERRORS,
            "404": _error(f"No {resource} with this id.")}},
        "patch": {"summary": f"Change a {resource} (admins)", "parameters": [if_match],
                  "requestBody": {"required": True, "content": {JSON: {"schema": ref(patch)}}},
                  "responses": {"200": _json(ref(row), "The changed row.", _EVENT_ID), **changed}},
        "delete": {"summary": f"Delete a {resource} (admins)",
                   "description": "Appointments go to `trash` unless `force=true`.",
                   "parameters": [if_match, _param("force", "query", {"type": "string",
                                                                      "enum": ["true", "false", "1", "0"]},
                                                   "Delete the row instead of trashing it.")],
                   "responses": {"200": _json(ref(row), "The row as it was deleted.", _EVENT_ID), **changed}},
    }


def _public(operation: dict[str, Any]) -> dict[str, Any]:
    return {**operation, "security": []}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_ID = {"type": "integer", "minimum": 1, "maximum": _BIGINT}
_TIME_IN = {"anyOf": [{"type": "integer"}, {"type": "string"}],
            "description": "Epoch seconds, or ISO 8601 (naive means UTC)."}


def _appointment_input(required: list[str]) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object", "additionalProperties": False,
        "properties": {
            "start": _TIME_IN, "end": _TIME_IN,
            "product_id": _nullable(_ID), "customer_id": _nullable(_ID),
            "order_id": _nullable(_ID), "order_item_id": _nullable(_ID),
            "staff_ids": {"type": "array", "items": _ID, "maxItems": MAX_STAFF_IDS},
            "staff_id": _nullable(_ID),
            "status": {"enum": list(APPOINTMENT_STATUSES)},
            "customer_status": {"enum": list(CUSTOMER_STATUSES)},
            "cost": {"anyOf": [{"type": "string"}, {"type": "number", "minimum": 0}],
                     "description": "An amount like \"50.00\"."},
            "all_day": {"type": "boolean"},
            "overlap_allowed": {"type": "boolean", "description": "SPEC §8: may overlap (an admin's choice)."},
            "override_availability": {"type": "boolean",
                                      "description": "SPEC §8: book into time the rules close."},
        },
    }
    if required:
        schema["required"] = required
    return schema


def _availability_input() -> dict[str, Any]:
    return {
        "type": "object", "additionalProperties": False,
        "properties": {
            "scope": {"enum": list(SCOPES)}, "product_id": _nullable(_ID), "staff_id": _nullable(_ID),
            "title": {"type": "string", "maxLength": 200}, "range_type": {"type": "string", "maxLength": 40},
            "from_range": _nullable({"type": "string", "maxLength": 100}),
            "to_range": _nullable({"type": "string", "maxLength": 100}),
            "appointable": {"type": "boolean"},
            "priority": {"type": "integer", "minimum": -(2 ** 31 - 1), "maximum": 2 ** 31 - 1},
            "qty": {"type": "integer", "minimum": -(2 ** 31 - 1), "maximum": 2 ** 31 - 1},
            "ordering": {"type": "integer", "minimum": -(2 ** 31 - 1), "maximum": 2 ** 31 - 1},
            "rrule": _nullable({"type": "string", "maxLength": MAX_TEXT}),
        },
    }


_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["code", "message", "data"],
        "description": "SPEC §4: the WordPress REST error shape, for every error of every route.",
        "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                       "data": {"type": "object", "required": ["status"],
                                "properties": {"status": {"type": "integer"}}}},
    },
    "InvalidParams": {
        "allOf": [ref("Error"), {"type": "object", "properties": {
            "data": {"type": "object", "properties": {
                "params": {"type": "object", "additionalProperties": {"type": "string"}}}}}}],
    },
    "Event": {
        "type": "object", "required": ["id", "topic", "resource", "resource_id", "payload", "ts"],
        "description": "SPEC §2: the envelope every transport carries.",
        "properties": {"id": {"type": "integer"}, "topic": {"enum": list(TOPICS)},
                       "resource": {"enum": ["appointment", "availability"]},
                       "resource_id": {"type": "integer"},
                       "payload": {"anyOf": [ref("Appointment"), ref("Availability")]},
                       "ts": {"type": "integer"},
                       "actor": {"type": "object", "description": "SPEC §8: who made the change."}},
    },
    "StreamFrame": {
        "type": "object",
        "description": "One frame of the stream as an SSE parser sees it: an event (`id` its id, `event` its "
                       "topic, `data` the Event), `event: reset` (data: Reset), `event: heartbeat` "
                       "(data: {last_id}, no id), or the opening `retry:`.",
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "event": {"type": "string"},
            "retry": {"type": "integer", "minimum": 0},
            "data": {"type": "string", "contentMediaType": "application/json",
                     "contentSchema": {"anyOf": [ref("Event"), ref("Reset"), ref("Heartbeat")]}},
        },
    },
    "Heartbeat": {"type": "object", "required": ["last_id"], "properties": {"last_id": {"type": "integer"}}},
    "Reset": {"type": "object", "required": ["reason", "last_id"],
              "properties": {"reason": {"type": "string"}, "last_id": {"type": "integer"}}},
    "PollAnswer": {"type": "object", "required": ["events", "last_id"],
                   "properties": {"events": {"type": "array", "items": ref("Event")},
                                  "last_id": {"type": "integer"}, "reset": ref("Reset")}},
    "Appointment": {
        "type": "object", "required": ["id", "start", "end", "staff_ids", "status"],
        "properties": {"id": {"type": "integer"}, "start": {"type": "integer"}, "end": {"type": "integer"},
                       "product_id": _nullable({"type": "integer"}),
                       "staff_ids": {"type": "array", "items": {"type": "integer"}},
                       "staff_id": _nullable({"type": "integer"}),
                       "status": {"enum": list(APPOINTMENT_STATUSES)},
                       "customer_id": _nullable({"type": "integer"}),
                       "order_id": _nullable({"type": "integer"}),
                       "order_item_id": _nullable({"type": "integer"}),
                       "cost": _nullable({"type": "string", "pattern": r"^[0-9]+\.[0-9]{2}$"}),
                       "all_day": {"type": "boolean"},
                       "customer_status": _nullable({"enum": list(CUSTOMER_STATUSES)}),
                       "version": {"type": "integer", "description": "SPEC §8."}},
    },
    "Availability": {
        "type": "object", "required": ["id", "scope"],
        "properties": {"id": {"type": "integer"}, "scope": {"enum": list(SCOPES)},
                       "product_id": _nullable({"type": "integer"}), "staff_id": _nullable({"type": "integer"}),
                       "title": _nullable({"type": "string"}), "range_type": _nullable({"type": "string"}),
                       "from_range": _nullable({"type": "string"}), "to_range": _nullable({"type": "string"}),
                       "appointable": {"type": "boolean"}, "priority": {"type": "integer"},
                       "qty": {"type": "integer"}, "ordering": {"type": "integer"},
                       "rrule": _nullable({"type": "string"}),
                       "created": {"type": "integer"}, "updated": {"type": "integer"},
                       "version": {"type": "integer", "description": "SPEC §8."}},
    },
    "AppointmentCreate": _appointment_input(["start", "end"]),
    "AppointmentPatch": _appointment_input([]),
    "AvailabilityCreate": _availability_input(),
    "AvailabilityPatch": _availability_input(),
    "Directory": {
        "type": "object", "required": ["staff", "products", "customers"],
        "properties": {
            "staff": {"type": "array", "items": {"type": "object", "required": ["id", "name"], "properties": {
                "id": {"type": "integer"}, "name": {"type": "string"}}}},
            "products": {"type": "array", "items": {"type": "object", "required": ["id", "name"], "properties": {
                "id": {"type": "integer"}, "name": {"type": "string"},
                "duration_minutes": _nullable({"type": "integer"}), "price": _nullable({"type": "string"})}}},
            "customers": {"type": "array", "items": {"type": "object", "required": ["id", "name"],
                                                     "properties": {"id": {"type": "integer"},
                                                                    "name": {"type": "string"}}}},
        },
    },
    "Customer": {"type": "object", "required": ["id", "name", "phone", "email"],
                 "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                                "phone": _nullable({"type": "string"}), "email": _nullable({"type": "string"})}},
    "CustomerCreate": {
        "type": "object", "required": ["name"], "additionalProperties": False,
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
                       "phone": _nullable({"type": "string", "maxLength": MAX_PHONE,
                                           "description": "Digits with + ( ) . / - and spaces; \"\" is none."}),
                       "email": _nullable({"type": "string", "maxLength": MAX_EMAIL,
                                           "description": "name@example.com; \"\" is none."})}},
    "CustomerCard": {
        "allOf": [ref("Customer"), {"type": "object", "required": ["appointments"], "properties": {
            "appointments": {"type": "array", "maxItems": PAST + UPCOMING, "items": {
                "type": "object", "required": ["id", "start", "end", "status", "staff_ids", "product_id"],
                "properties": {"id": {"type": "integer"}, "start": {"type": "integer"}, "end": {"type": "integer"},
                               "status": {"enum": list(APPOINTMENT_STATUSES)},
                               "staff_ids": {"type": "array", "items": {"type": "integer"}},
                               "product_id": _nullable({"type": "integer"})}}}}}]},
    "Me": {"type": "object", "required": ["role", "staff_id", "exp"],
           "properties": {"role": {"enum": ["admin", "staff"]}, "staff_id": _nullable({"type": "integer"}),
                          "exp": _nullable({"type": "integer"})}},
    "Health": {"type": "object", "required": ["status"],
               "properties": {"status": {"type": "string"}, "listener": {"type": "string"},
                              "last_event_id": _nullable({"type": "integer"}),
                              "reason": {"type": "string"}}},
}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    health = {"200": _json(ref("Health"), "Up."),
              "503": _json(ref("Health"), "Not (yet) able to serve; `reason` says why.", _RETRY_AFTER)}
    paths: dict[str, Any] = {
        "/sse": {"get": _stream_operation("The event stream (stays open by default)")},
        "/wc-appointments/v2/sse": {"get": _stream_operation(
            "The event stream for WooCommerce Appointments clients (one-shot: 50 events or 30 s)")},
        "/wp-json/wc-appointments/v2/sse": {"get": _stream_operation(
            "The same, under the WordPress REST prefix")},
        "/poll": {"get": _poll_operation("Long-poll for events")},
        "/wc-appointments/v2/poll": {"get": _poll_operation("Long-poll, WooCommerce Appointments path")},
        "/wp-json/wc-appointments/v2/poll": {"get": _poll_operation("Long-poll, WordPress REST prefix")},
        "/api/appointments": {
            "get": _snapshot_operation("appointment", "appointments", "Appointment", [
                _param("start", "query", {"type": "string"}, "Range start: epoch seconds or ISO 8601 "
                                                             "(default: 7 days ago)."),
                _param("end", "query", {"type": "string"}, "Range end (default: start + 35 days; at most "
                                                           "400 days after start)."),
                _FILTERS[1], _FILTERS[2]]),
            "post": _create_operation("Appointment", "AppointmentCreate"),
        },
        "/api/appointments/{id}": _item_operations("appointment", "Appointment", "AppointmentPatch"),
        "/api/appointments.ics": {"get": {
            "summary": "Appointments as an iCalendar file (RFC 5545), for a staff member's range",
            "description": "One VEVENT per appointment that is not trashed (UID stable per appointment and "
                           "host, UTC times, SUMMARY \"service · customer\", STATUS and the status in words). "
                           "Staff tokens export their own appointments only (another staff_id is 403); "
                           f"at most {MAX_EXPORT} appointments (400 beyond).",
            "parameters": [
                _param("start", "query", {"type": "string"}, "Range start, as for GET /api/appointments."),
                _param("end", "query", {"type": "string"}, "Range end, as for GET /api/appointments."),
                _id_param("staff_id", "Only this staff member's (a staff token: its own by default).")],
            "responses": {"200": {"description": "The calendar.",
                                  "content": {"text/calendar": {"schema": {"type": "string"}}}},
                          **_AUTH_ERRORS}}},
        "/api/availabilities": {
            "get": _snapshot_operation("availability", "availabilities", "Availability",
                                       [_FILTERS[1], _FILTERS[2]]),
            "post": _create_operation("Availability", "AvailabilityCreate"),
        },
        "/api/availabilities/{id}": _item_operations("availability rule", "Availability", "AvailabilityPatch"),
        "/api/unavailable": {"get": {
            "summary": "Time the availability rules close, for a calendar to draw (SPEC §8)",
            "description": "Evaluated by the same rules as the write API's 409 rest_unavailable. Entries "
                           "with staff_id null are closed for everyone; others for that staff member.",
            "parameters": [
                _param("start", "query", {"type": "string"}, "Range start: epoch seconds or ISO 8601.", True),
                _param("end", "query", {"type": "string"}, "Range end (after start, a bounded span).", True),
                _param("staff_ids", "query", {"type": "string"}, "Comma list of staff ids."),
                _FILTERS[2]],
            "responses": {"200": _json({
                "type": "object", "required": ["timezone", "closed"],
                "properties": {"timezone": {"type": "string"}, "closed": {"type": "array", "items": {
                    "type": "object", "required": ["staff_id", "start", "end", "rule", "outside"],
                    "properties": {"staff_id": _nullable({"type": "integer"}), "start": {"type": "integer"},
                                   "end": {"type": "integer"}, "rule": {"type": "object"},
                                   "outside": {"type": "boolean"}}}}}}, "Closed intervals."),
                **_AUTH_ERRORS}}},
        "/api/directory": {"get": {"summary": "The names behind staff, product and customer ids",
                                   "responses": {"200": _json(ref("Directory"), "The names."),
                                                 **_AUTH_ERRORS}}},
        "/api/customers": {
            "get": {"summary": "Type-ahead customer search (a staff token: customers of its own appointments)",
                    "description": "Matches the start of any word of the name, the e-mail or the phone's "
                                   f"digits; from {SUBSTRING_FROM} characters also anywhere in them. Names "
                                   "starting with `q` first, then a word starting with it, then the rest.",
                    "parameters": [
                        _param("q", "query", {"type": "string", "minLength": 1, "maxLength": MAX_QUERY,
                                              "pattern": "\\S"}, "The text typed.", True),
                        _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                               f"At most this many (default {DEFAULT_LIMIT}).")],
                    "responses": {"200": _json({"type": "object", "required": ["customers"], "properties": {
                        "customers": {"type": "array", "maxItems": MAX_LIMIT, "items": ref("Customer")}}},
                        "The best matches."), **_AUTH_ERRORS}},
            "post": {"summary": "Add a customer (admins); the id is the next free one",
                     "parameters": [_IDEMPOTENCY_KEY],
                     "requestBody": {"required": True, "content": {JSON: {"schema": ref("CustomerCreate")}}},
                     "responses": {"201": _json(ref("Customer"), "The new customer."), **_WRITE_ERRORS,
                                   "422": _KEY_REUSED}},
        },
        "/api/customers/{id}": {
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "integer", "minimum": 0, "maximum": 10 ** 18 - 1}}],
            "get": {"summary": f"A customer with their last {PAST} and next {UPCOMING} appointments",
                    "description": "A staff token sees its own customers only, with its own appointments; "
                                   "anyone else's is 404.",
                    "responses": {"200": _json(ref("CustomerCard"), "The customer."), **_AUTH_ERRORS,
                                  "404": _error("No customer with this id (or not this staff member's).")}},
        },
        "/api/me": {"get": {"summary": "Who the request authenticates as",
                            "responses": {"200": _json(ref("Me"), "The principal."), **_AUTH_ERRORS}}},
        "/session": {
            "post": _public({
                "summary": "Trade a token for the HttpOnly session cookie (same origin only)",
                "requestBody": {"required": True, "content": {JSON: {"schema": {
                    "type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}}}}},
                "responses": {"204": {"description": "The cookie is set.",
                                      "headers": {"Set-Cookie": {"schema": {"type": "string"}}}},
                              **_WRITE_ERRORS}}),
            "delete": _public({"summary": "Clear the session cookie",
                               "responses": {"204": {"description": "Cleared."},
                                             "403": _error("A cross-site request.")}}),
        },
        "/": {"get": _public({"summary": "The calendar page", "responses": {
            "200": {"description": "HTML.", "content": {"text/html": {"schema": {"type": "string"}}}},
            "304": {"description": "Not modified."}}})},
        "/static/{path}": {"get": _public({
            "summary": "The page's scripts and styles",
            "parameters": [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The file.", "content": {"*/*": {"schema": {}}}},
                          "304": {"description": "Not modified."},
                          "404": _error("No such file.")}})},
        "/healthz": {"get": _public({"summary": "200 while the listener is connected", "responses": health})},
        "/livez": {"get": _public({"summary": "The process and its event loop answer (never the database)",
                                   "responses": {"200": _json({"type": "object"}, "Alive.")}})},
        "/readyz": {"get": _public({
            "summary": "Database reachable and writable, listener connected, not shutting down",
            "description": "With --jwks-url it also reports the identity provider's keys (`jwks`: ready "
                           "once loaded, `stale` when the last refresh failed and cached keys serve).",
            "responses": {"200": _json({"type": "object"}, "Ready."),
                          "503": _json({"type": "object"}, "Not ready; the body says why.", _RETRY_AFTER)}})},
        "/metrics": {"get": _public({"summary": "Prometheus metrics", "responses": {
            "200": {"description": "The text exposition format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}}}}})},
        "/openapi.json": {"get": _public({"summary": "This document", "responses": {
            "200": _json({"type": "object"}, "OpenAPI 3.1.")}})},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "tornado_sse", "version": __version__,
                 "description": "PostgreSQL changes as Server-Sent Events and long-poll for calendars; "
                                "snapshots and admin writes. Errors everywhere have the Error shape."},
        "security": [{"bearer": []}, {"cookie": []}, {"wpNonce": []}, {"queryToken": []}],
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "tornado_sse_token",
                           "description": "Set by POST /session."},
                "wpNonce": {"type": "apiKey", "in": "header", "name": "X-WP-Nonce"},
                "queryToken": {"type": "apiKey", "in": "query", "name": "token",
                               "description": "Also `nonce` or `_wpnonce`: for clients that can send "
                                              "neither a header nor a cookie (EventSource)."},
            },
        },
    }


#: The document as served: encoded once, at import.
DOCUMENT_BYTES = json.dumps(document(), separators=(",", ":")).encode("utf-8")


if __name__ == "__main__":  # python -m tornado_sse.openapi > openapi.json
    json.dump(document(), sys.stdout, indent=2)
    sys.stdout.write("\n")
