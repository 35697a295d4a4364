"""Snapshots and admin writes (SPEC §5), over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.fix_db import execute, insert_appointment
from tests.fix_directory import add_directory
from tests.fix_server import auth, staff_token
from tests.streams import poll
from tornado_sse.testing.sse_client import open_stream, request

T0 = 1733044800  # 2024-12-01T09:20:00Z


async def call(server, method: str, path: str, body=None, headers=None, token=None):
    h = {**auth(token)} if token != "" else {}
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    return await request(server.url + path, method=method, headers=h, body=data, stream=False)


# -- snapshots ------------------------------------------------------------------

@pytest.mark.gen_test(timeout=20)
async def test_snapshot_rows_in_payload_shape_with_last_event_id(server, db):
    a = insert_appointment(db, start_at="2024-12-01T09:20:00Z", end_at="2024-12-01T10:20:00Z",
                           staff_ids=[5, 6], cost="50")
    insert_appointment(db, start_at="2025-03-01T09:00:00Z", end_at="2025-03-01T10:00:00Z")
    trashed = insert_appointment(db)
    execute(db, "UPDATE appointments SET status = 'trash' WHERE id = %s", (trashed,))
    resp = await call(server, "GET", f"/api/appointments?start={T0 - 86400}&end=2024-12-02T00:00:00Z")
    assert resp.status == 200 and resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert body["last_event_id"] == 4
    assert [r["id"] for r in body["appointments"]] == [a]  # other dates and trash left out
    row = body["appointments"][0]
    assert row["start"] == T0 and row["end"] == T0 + 3600
    assert row["staff_ids"] == [5, 6] and row["staff_id"] == 5 and row["cost"] == "50.00"


@pytest.mark.gen_test(timeout=20)
async def test_snapshot_filters_and_staff_scope(server, db):
    mine = insert_appointment(db, staff_ids=[5], product_id=1)
    insert_appointment(db, staff_ids=[6], product_id=2)
    q = f"/api/appointments?start={T0 - 3600}&end={T0 + 86400}"
    ids = lambda r: [x["id"] for x in r.json()["appointments"]]  # noqa: E731
    assert len(ids(await call(server, "GET", q))) == 2
    assert ids(await call(server, "GET", q + "&product_id=1")) == [mine]
    assert ids(await call(server, "GET", q + "&staff_id=5")) == [mine]
    assert ids(await call(server, "GET", q, token=staff_token(5))) == [mine]
    assert ids(await call(server, "GET", q + "&staff_id=6", token=staff_token(5))) == []


@pytest.mark.parametrize("query, names", [
    ("start=yesterday", ["start"]), ("end=2024-13-01", ["end"]),
    (f"start={T0}&end={T0 - 1}", ["end"]), (f"start={T0}&end={T0 + 500 * 86400}", ["end"]),
    ("staff_id=-3", ["staff_id"]),
])
@pytest.mark.gen_test(timeout=10)
async def test_snapshot_bad_parameters_get_400(server, query, names):
    resp = await call(server, "GET", "/api/appointments?" + query)
    assert resp.status == 400
    assert sorted(resp.json()["data"]["params"]) == names


@pytest.mark.gen_test(timeout=60)
async def test_snapshot_then_stream_never_doubles_or_misses_a_concurrent_change(server, db):
    """Rows committed while snapshots are taken appear in a snapshot or in the
    stream from its last_event_id: never both, never neither."""
    from tests.streams import insert_many

    writer = asyncio.ensure_future(insert_many(db, 300))
    lo = int(time.time()) - 86400
    q = f"/api/appointments?start={lo}&end={lo + 3 * 86400}"
    snapshots: list[tuple[set[int], int]] = []
    while not writer.done():
        snap = (await call(server, "GET", q)).json()
        snapshots.append(({r["id"] for r in snap["appointments"]}, snap["last_event_id"]))
        await asyncio.sleep(0.01)
    await writer
    mid_write = [s for s in snapshots if 0 < len(s[0]) < 300]
    assert len(mid_write) >= 3, "no snapshot was taken while rows were being committed"
    for in_snapshot, cursor in snapshots:
        streamed: list[int] = []
        while cursor < 300:
            body = await poll(server, f"since_id={cursor}&timeout=5&max_events=500")
            streamed += [e["resource_id"] for e in body["events"]]
            cursor = body["last_id"]
        assert in_snapshot.isdisjoint(streamed), "a change was in the snapshot and the stream"
        assert in_snapshot | set(streamed) == set(range(1, 301)), "a change was missed"
        assert len(streamed) == len(set(streamed))


@pytest.mark.gen_test(timeout=20)
async def test_availability_snapshot(server, db):
    execute(db, "INSERT INTO availabilities (scope, title, appointable) VALUES ('global', 'closed', false)")
    execute(db, "INSERT INTO availabilities (scope, staff_id, title) VALUES ('staff', 5, 'five')")
    execute(db, "INSERT INTO availabilities (scope, staff_id, title) VALUES ('staff', 6, 'six')")
    body = (await call(server, "GET", "/api/availabilities?staff_id=5")).json()
    assert [r["title"] for r in body["availabilities"]] == ["closed", "five"]
    assert body["last_event_id"] == 3
    assert body["availabilities"][0]["appointable"] is False


# -- writes ----------------------------------------------------------------------

@pytest.mark.gen_test(timeout=20)
async def test_writes_flow_back_through_the_stream(server, db):
    # SPEC §8: the write API books only ids the directory knows.
    add_directory(db, staff={5: "Eva"}, products={456: ("Cut", 60, "50.00")}, customers={7: "Ida"})
    conn = await open_stream(server.url + "/sse", auth())
    created = await call(server, "POST", "/api/appointments",
                         {"start": T0, "end": "2024-12-01T10:20:00Z", "staff_ids": [5],
                          "product_id": 456, "cost": 12.5, "customer_id": 7})
    assert created.status == 201
    row = created.json()
    assert row["start"] == T0 and row["end"] == T0 + 3600 and row["cost"] == "12.50"
    assert row["status"] == "confirmed"
    moved = await call(server, "PATCH", f"/api/appointments/{row['id']}",
                       {"start": T0 + 3600, "end": T0 + 7200})
    assert moved.status == 200 and moved.json()["start"] == T0 + 3600
    trashed = await call(server, "DELETE", f"/api/appointments/{row['id']}")
    assert trashed.json()["status"] == "trash"
    gone = await call(server, "DELETE", f"/api/appointments/{row['id']}?force=true")
    assert gone.status == 200
    topics = [m.event for m in await conn.take(4)]
    assert topics == ["appointment.created", "appointment.rescheduled", "appointment.trashed",
                      "appointment.deleted"]
    assert execute(db, "SELECT count(*) FROM appointments")[0][0] == 0
    conn.close()


@pytest.mark.gen_test(timeout=20)
async def test_availability_writes(server, db):
    add_directory(db, staff={5: "Eva"}, products={}, customers={})  # SPEC §8: known ids only
    created = await call(server, "POST", "/api/availabilities",
                         {"scope": "staff", "staff_id": 5, "title": "holiday", "appointable": False,
                          "range_type": "custom", "from_range": "2024-12-24", "to_range": "2024-12-26"})
    assert created.status == 201
    rid = created.json()["id"]
    edited = await call(server, "PATCH", f"/api/availabilities/{rid}", {"title": "long holiday"})
    assert edited.json()["title"] == "long holiday"
    assert (await call(server, "DELETE", f"/api/availabilities/{rid}")).status == 200
    assert (await call(server, "DELETE", f"/api/availabilities/{rid}")).status == 404


@pytest.mark.parametrize("body, names", [
    ({"start": "soon", "end": T0}, ["start"]),
    ({"start": T0, "end": T0 - 60}, ["end"]),
    ({"start": T0, "end": T0 + 60, "status": "maybe"}, ["status"]),
    ({"start": T0, "end": T0 + 60, "stat": "paid"}, ["stat"]),
    ({"start": T0, "end": T0 + 60, "cost": "-1"}, ["cost"]),
    ({"start": T0, "end": T0 + 60, "staff_ids": [1, "x"]}, ["staff_ids"]),
    ({"end": T0}, ["start"]),
    ([1, 2], ["body"]),
])
@pytest.mark.gen_test(timeout=10)
async def test_invalid_writes_get_400_naming_each_field_and_change_nothing(server, db, body, names):
    resp = await call(server, "POST", "/api/appointments", body)
    assert resp.status == 400
    err = resp.json()
    assert err["code"] == "rest_invalid_param" and err["data"]["status"] == 400
    assert sorted(err["data"]["params"]) == names
    assert execute(db, "SELECT count(*) FROM sse_events")[0][0] == 0


@pytest.mark.gen_test(timeout=10)
async def test_patch_that_puts_end_before_the_stored_start_is_400(server, db):
    a = insert_appointment(db)
    resp = await call(server, "PATCH", f"/api/appointments/{a}", {"end": "2000-01-01T00:00:00Z"})
    assert resp.status == 400 and list(resp.json()["data"]["params"]) == ["end"]
    assert execute(db, "SELECT count(*) FROM sse_events")[0][0] == 1


@pytest.mark.gen_test(timeout=10)
async def test_write_errors_unknown_id_staff_role_and_content_type(server, db):
    assert (await call(server, "PATCH", "/api/appointments/999", {"status": "paid"})).status == 404
    assert (await call(server, "DELETE", "/api/appointments/999")).status == 404
    staff = await call(server, "POST", "/api/appointments", {"start": T0, "end": T0}, token=staff_token(5))
    assert staff.status == 403 and staff.json()["code"] == "rest_forbidden"
    form = await request(server.url + "/api/appointments", method="POST",
                         headers={**auth(), "Content-Type": "application/x-www-form-urlencoded"},
                         body=b"start=1&end=2", stream=False)
    assert form.status == 415
    nobody = await call(server, "POST", "/api/appointments", {"start": T0, "end": T0}, token="")
    assert nobody.status == 401
    assert execute(db, "SELECT count(*) FROM appointments")[0][0] == 0
