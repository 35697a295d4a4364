"""Customers for the front desk (issue 23): type-ahead search, create, one
customer's card with their appointments, and staff scoping of all three and
of the directory. Real HTTP against a real database (sql/006)."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import pytest

from tests.fix_db import execute, insert_appointment
from tests.fix_directory import add_directory
from tests.fix_server import admin_token, auth, staff_token
from tornado_sse.testing.sse_client import Response, request

#: id -> (name, phone, email)
PEOPLE = {
    1000: ("Anna Berg", "+49 30 555 0101", "anna.berg@example.com"),
    1001: ("Ben Nowak", "+49 30 555 0202", "ben@nowak.example"),
    1002: ("Clara Schulz", None, "clara.s@example.com"),
    1003: ("Jonas Bergmann", "0171 2345678", None),
    1004: ("Annabel Ruiz", None, None),
    1005: ("Marta Anders", "+49 30 555 0303", "marta@example.com"),
}


def add_people(db: str) -> None:
    add_directory(db, customers={})
    for cid, (name, phone, email) in PEOPLE.items():
        execute(db, "INSERT INTO customers (id, name, phone, email) VALUES (%s, %s, %s, %s)",
                (cid, name, phone, email))


async def get(server, path: str, token: str | None = None) -> Response:
    resp = await request(server.url + path, headers=auth(token), stream=False)
    assert isinstance(resp, Response)
    return resp


async def post(server, body: Any, token: str | None = None, raw: bytes | None = None,
               key: str | None = None) -> Response:
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {**auth(token), "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    resp = await request(server.url + "/api/customers", method="POST", body=data, stream=False, headers=headers)
    assert isinstance(resp, Response)
    return resp


async def names(server, q: str, token: str | None = None, limit: int | None = None) -> list[str]:
    path = "/api/customers?q=" + quote(q) + ("" if limit is None else f"&limit={limit}")
    resp = await get(server, path, token)
    assert resp.status == 200, resp.body
    return [c["name"] for c in resp.json()["customers"]]


# -- search ------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_search_ranks_name_prefix_then_word_prefix_then_anywhere(server, db):
    add_people(db)
    # "ann": Anna/Annabel start with it, "Bergmann" has it inside (last);
    # "Marta Anders" does not contain "ann" at all.
    assert await names(server, "ann") == ["Anna Berg", "Annabel Ruiz", "Jonas Bergmann"]
    # "an": short, so only word starts: names starting with it first, then
    # "Marta Anders" (a later word), never "Jonas" (an inside a word).
    assert await names(server, "An") == ["Anna Berg", "Annabel Ruiz", "Marta Anders"]
    # "berg": Anna Berg (a word) and Jonas Bergmann (a word), and the
    # address anna.berg@ (anywhere): names by rank then name.
    assert await names(server, "berg") == ["Anna Berg", "Jonas Bergmann"]
    # Three letters or more match inside words too.
    assert await names(server, "ergm") == ["Jonas Bergmann"]


@pytest.mark.gen_test(timeout=20)
async def test_search_finds_by_email_and_by_phone_in_any_spelling(server, db):
    add_people(db)
    assert await names(server, "nowak.example") == ["Ben Nowak"]
    assert await names(server, "clara.s@") == ["Clara Schulz"]
    # The phone is matched on its digits, whatever separators either side uses.
    assert await names(server, "+49 30 555-0303") == ["Marta Anders"]
    assert await names(server, "01712345") == ["Jonas Bergmann"]
    assert await names(server, "555") == ["Anna Berg", "Ben Nowak", "Marta Anders"]
    resp = await get(server, "/api/customers?q=ben")
    assert resp.json() == {"customers": [
        {"id": 1001, "name": "Ben Nowak", "phone": "+49 30 555 0202", "email": "ben@nowak.example"}]}
    assert resp.headers["cache-control"] == "no-store"


@pytest.mark.gen_test(timeout=20)
async def test_like_wildcards_in_the_query_are_plain_characters(server, db):
    add_people(db)
    assert await names(server, "%") == []
    assert await names(server, "a_n") == []
    assert await names(server, "\\") == []


@pytest.mark.gen_test(timeout=20)
async def test_search_is_bounded_by_limit_default_20_at_most_50(server, db):
    add_directory(db, customers={2000 + i: f"Smith {i:03d}" for i in range(60)})
    assert len(await names(server, "smith")) == 20
    found = await names(server, "smith", limit=50)
    assert found == [f"Smith {i:03d}" for i in range(50)]
    assert await names(server, "smith", limit=3) == ["Smith 000", "Smith 001", "Smith 002"]
    for bad in ("0", "51", "x", "-1"):
        resp = await get(server, f"/api/customers?q=smith&limit={bad}")
        assert resp.status == 400 and resp.json()["code"] == "rest_invalid_param"
        assert set(resp.json()["data"]["params"]) == {"limit"}


@pytest.mark.gen_test(timeout=20)
async def test_bad_search_text_is_400_naming_q(server, db):
    for query in ("", "?q=", "?q=%20%20", "?q=" + "a" * 101, "?q=an%00na", "?q=a%0Ab"):
        resp = await get(server, "/api/customers" + query)
        assert resp.status == 400, query
        body = resp.json()
        assert body["code"] == "rest_invalid_param" and body["data"]["status"] == 400
        assert set(body["data"]["params"]) == {"q"}, (query, body)
    assert (await get(server, "/api/customers?q=" + "a" * 100)).status == 200
    anonymous = await request(server.url + "/api/customers?q=ann", stream=False)
    assert isinstance(anonymous, Response) and anonymous.status == 401


@pytest.mark.gen_test(timeout=20)
async def test_staff_find_only_customers_of_their_own_appointments(server, db):
    add_people(db)
    insert_appointment(db, staff_ids=[1], customer_id=1000)
    insert_appointment(db, staff_ids=[1, 2], customer_id=1004)
    insert_appointment(db, staff_ids=[2], customer_id=1003)
    insert_appointment(db, staff_ids=[1], customer_id=1005, status="trash")  # not on their calendar
    assert await names(server, "an", staff_token(1)) == ["Anna Berg", "Annabel Ruiz"]
    assert await names(server, "an", staff_token(2)) == ["Annabel Ruiz"]
    assert await names(server, "berg", staff_token(2)) == ["Jonas Bergmann"]
    assert await names(server, "an", staff_token(3)) == []
    assert await names(server, "an", admin_token()) == ["Anna Berg", "Annabel Ruiz", "Marta Anders"]


# -- create -------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_admin_creates_a_customer_with_the_next_id(server, db):
    add_people(db)
    resp = await post(server, {"name": "  Zoe Quinn ", "phone": "+44 20 7946 0958", "email": "zoe@example.org"})
    assert resp.status == 201, resp.body
    assert resp.json() == {"id": 1006, "name": "Zoe Quinn", "phone": "+44 20 7946 0958",
                           "email": "zoe@example.org"}
    resp = await post(server, {"name": "Yuki", "phone": "", "email": None})
    assert resp.status == 201 and resp.json() == {"id": 1007, "name": "Yuki", "phone": None, "email": None}
    assert await names(server, "zoe") == ["Zoe Quinn"]
    assert await names(server, "7946") == ["Zoe Quinn"]
    assert execute(db, "SELECT name, email FROM customers WHERE id = 1006") == [("Zoe Quinn", "zoe@example.org")]


@pytest.mark.gen_test(timeout=20)
async def test_a_double_click_with_one_idempotency_key_adds_one_customer(server, db):
    """The booking form's "Add customer" clicked twice, or retried after a
    timeout: with the same Idempotency-Key, one customer and the same answer."""
    body = {"name": "Zoe Quinn", "phone": "+44 20 7946 0958"}
    first, second = await asyncio.gather(post(server, body, key="desk-1-zoe"), post(server, body, key="desk-1-zoe"))
    assert first.status == second.status == 201, (first.body, second.body)
    assert first.json() == second.json() == {"id": 1, "name": "Zoe Quinn", "phone": "+44 20 7946 0958", "email": None}
    assert sorted([first.headers.get("idempotent-replayed"), second.headers.get("idempotent-replayed")],
                  key=str) == [None, "true"]
    later = await post(server, body, key="desk-1-zoe")
    assert later.status == 201 and later.json()["id"] == 1 and later.headers["idempotent-replayed"] == "true"
    # Another body with the same key: refused, nothing added.
    reused = await post(server, {"name": "Someone Else"}, key="desk-1-zoe")
    assert reused.status == 422 and reused.json()["code"] == "rest_idempotency_key_reused"
    # Without a key (or with another), two clicks are two customers, as asked.
    assert (await post(server, body, key="desk-2-zoe")).json()["id"] == 2
    assert (await post(server, body)).json()["id"] == 3
    assert execute(db, "SELECT id, name FROM customers ORDER BY id") == [
        (1, "Zoe Quinn"), (2, "Zoe Quinn"), (3, "Zoe Quinn")]
    # A bad key is a 400 naming it, and adds nothing.
    bad = await post(server, body, key="x" * 201)
    assert bad.status == 400 and "Idempotency-Key" in bad.json()["data"]["params"]
    assert execute(db, "SELECT count(*) FROM customers") == [(3,)]


@pytest.mark.gen_test(timeout=20)
async def test_the_first_customer_gets_id_1(server, db):
    resp = await post(server, {"name": "First"})
    assert resp.status == 201 and resp.json()["id"] == 1


@pytest.mark.gen_test(timeout=20)
async def test_staff_may_not_create_customers(server, db):
    resp = await post(server, {"name": "Zoe"}, staff_token(1))
    assert resp.status == 403
    body = resp.json()
    assert body["code"] == "rest_forbidden" and body["data"]["status"] == 403
    assert execute(db, "SELECT count(*) FROM customers") == [(0,)]


@pytest.mark.gen_test(timeout=20)
async def test_bad_customer_bodies_are_400_naming_the_field(server, db):
    cases: list[tuple[Any, set[str]]] = [
        ({}, {"name"}), ({"name": ""}, {"name"}), ({"name": "   "}, {"name"}), ({"name": "x" * 201}, {"name"}),
        ({"name": 5}, {"name"}), ({"name": "A\nB"}, {"name"}), ({"name": "A", "phone": "call me"}, {"phone"}),
        ({"name": "A", "phone": "1" * 41}, {"phone"}), ({"name": "A", "email": "nobody"}, {"email"}),
        ({"name": "A", "email": "a b@example.com"}, {"email"}),
        ({"name": "A", "email": "a@" + "b" * 250 + ".de"}, {"email"}),
        ({"name": "A", "id": 7}, {"id"}), ([], {"body"}), ("Anna", {"body"}),
    ]
    for body, fields in cases:
        resp = await post(server, body)
        assert resp.status == 400, body
        assert resp.json()["code"] == "rest_invalid_param"
        assert set(resp.json()["data"]["params"]) == fields, (body, resp.json())
    assert (await post(server, None, raw=b"{not json")).status == 400
    assert (await post(server, None, raw=b'{"name": "A", "name": "B"}')).json()["data"]["params"] == {
        "name": "name appears more than once in the body."}
    plain = await request(server.url + "/api/customers", method="POST", body=b'{"name": "A"}',
                          headers={**auth(), "Content-Type": "text/plain"}, stream=False)
    assert isinstance(plain, Response) and plain.status == 415
    assert execute(db, "SELECT count(*) FROM customers") == [(0,)]


# -- one customer -------------------------------------------------------------------


def book_at(db: str, customer: int, staff: list[int], days: float, status: str = "confirmed") -> int:
    rows = execute(db, "INSERT INTO appointments (product_id, staff_ids, customer_id, start_at, end_at, status,"
                       " overlap_allowed) VALUES (101, %s, %s, now() + make_interval(secs => %s),"
                       " now() + make_interval(secs => %s) + interval '1 hour', %s, true) RETURNING id",
                   (staff, customer, days * 86400, days * 86400, status))
    return int(rows[0][0])


@pytest.mark.gen_test(timeout=20)
async def test_a_customer_card_has_contact_and_bounded_past_and_upcoming_appointments(server, db):
    add_people(db)
    past = [book_at(db, 1000, [1], -d) for d in range(1, 14)]  # 13 past: the last 10 are shown
    upcoming = [book_at(db, 1000, [2], d) for d in range(1, 13)]  # 12 upcoming: the next 10
    book_at(db, 1000, [1], 2.5, status="trash")
    book_at(db, 1001, [1], 1)  # someone else's
    resp = await get(server, "/api/customers/1000")
    assert resp.status == 200 and resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert {k: body[k] for k in ("id", "name", "phone", "email")} == {
        "id": 1000, "name": "Anna Berg", "phone": "+49 30 555 0101", "email": "anna.berg@example.com"}
    ids = [a["id"] for a in body["appointments"]]
    assert ids == list(reversed(past[:10])) + upcoming[:10]  # oldest first
    first = body["appointments"][0]
    assert set(first) == {"id", "start", "end", "status", "staff_ids", "product_id"}
    assert first["end"] - first["start"] == 3600 and first["staff_ids"] == [1] and first["product_id"] == 101


@pytest.mark.gen_test(timeout=20)
async def test_staff_see_their_own_customers_card_with_their_own_appointments_only(server, db):
    add_people(db)
    mine = book_at(db, 1000, [1], 1)
    shared = book_at(db, 1000, [1, 2], -1)
    book_at(db, 1000, [2], 2)
    resp = await get(server, "/api/customers/1000", staff_token(1))
    assert resp.status == 200
    assert [a["id"] for a in resp.json()["appointments"]] == [shared, mine]
    for path, token in (("/api/customers/1001", staff_token(1)), ("/api/customers/1000", staff_token(3))):
        resp = await get(server, path, token)
        assert resp.status == 404 and resp.json()["code"] == "rest_invalid_id"
    resp = await get(server, "/api/customers/999999")
    assert resp.status == 404 and resp.json()["data"]["status"] == 404
    assert (await get(server, "/api/customers/1001")).json()["appointments"] == []


# -- the directory ------------------------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_staff_directory_lists_only_customers_of_their_appointments(server, db):
    add_people(db)
    insert_appointment(db, staff_ids=[1], customer_id=1002)
    insert_appointment(db, staff_ids=[1, 2], customer_id=1000)
    insert_appointment(db, staff_ids=[2], customer_id=1003, status="trash")
    directory = (await get(server, "/api/directory", staff_token(1))).json()
    assert directory["customers"] == [{"id": 1000, "name": "Anna Berg"}, {"id": 1002, "name": "Clara Schulz"}]
    assert [s["name"] for s in directory["staff"]] == ["Jonas", "Lena", "Mia"]  # staff and services: all
    assert len(directory["products"]) == 2
    assert (await get(server, "/api/directory", staff_token(2))).json()["customers"] == [
        {"id": 1000, "name": "Anna Berg"}]
    assert (await get(server, "/api/directory", staff_token(3))).json()["customers"] == []
    assert len((await get(server, "/api/directory")).json()["customers"]) == len(PEOPLE)
