"""``GET /api/directory``: the names behind the ids (issue 15), over real HTTP."""

from __future__ import annotations

import pytest

from tests.fix_db import execute
from tests.fix_directory import add_directory
from tests.fix_server import admin_token, auth, staff_token
from tornado_sse.testing.sse_client import Response, request


async def get_directory(server, headers: dict[str, str]) -> Response:
    resp = await request(server.url + "/api/directory", headers=headers, stream=False)
    assert isinstance(resp, Response)
    return resp


@pytest.mark.gen_test(timeout=20)
async def test_directory_lists_staff_products_and_customers_sorted_by_name(server, db):
    add_directory(db, staff={2: "Mia", 1: "Jonas"},
                  products={102: ("Massage", 60, "65"), 101: ("Haircut", 45, "35.5")},
                  customers={1001: "Ben Nowak", 1000: "Anna Berg"})
    resp = await get_directory(server, auth(admin_token()))
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    assert resp.headers["cache-control"] == "no-store"
    assert resp.json() == {
        "staff": [{"id": 1, "name": "Jonas"}, {"id": 2, "name": "Mia"}],
        "products": [{"id": 101, "name": "Haircut", "duration_minutes": 45, "price": "35.50"},
                     {"id": 102, "name": "Massage", "duration_minutes": 60, "price": "65.00"}],
        "customers": [{"id": 1000, "name": "Anna Berg"}, {"id": 1001, "name": "Ben Nowak"}],
    }


@pytest.mark.gen_test(timeout=20)
async def test_an_empty_directory_is_three_empty_lists(server, db):
    resp = await get_directory(server, auth())
    assert resp.status == 200
    assert resp.json() == {"staff": [], "products": [], "customers": []}


@pytest.mark.gen_test(timeout=20)
async def test_staff_may_read_the_directory(server, db):
    add_directory(db)
    resp = await get_directory(server, auth(staff_token(3)))
    assert resp.status == 200
    names = {s["name"] for s in resp.json()["staff"]}
    assert names == set(execute(db, "SELECT array_agg(name) FROM staff")[0][0])


@pytest.mark.gen_test(timeout=20)
async def test_directory_without_a_token_is_401_in_the_rest_shape(server, db):
    resp = await get_directory(server, {})
    assert resp.status == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
    body = resp.json()
    # The message is auth.py's (SPEC §4 wants one fixed text; see the report).
    assert body["code"] == "rest_forbidden" and body["data"] == {"status": 401}
    assert "staff" not in body and "customers" not in body


@pytest.mark.gen_test(timeout=20)
async def test_appointments_may_name_ids_the_directory_does_not_know(server, db):
    """No foreign keys: a shop or psql may write ids the directory lacks."""
    add_directory(db, staff={}, products={}, customers={})
    execute(db, "INSERT INTO appointments (product_id, staff_ids, customer_id, start_at, end_at)"
                " VALUES (999, '{77}', 4242, now(), now() + interval '1 hour')")
    assert execute(db, "SELECT count(*) FROM appointments")[0][0] == 1
