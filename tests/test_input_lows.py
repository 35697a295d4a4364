"""The low findings on input (issue 19), one table: each request answers
400 naming what was wrong, never a 500, and changes nothing.

- duplicate JSON keys: Python kept the last, a proxy or WAF may keep the first;
- C0 control characters and DEL in text fields;
- ``%00`` in a query parameter's name or value (it used to mean "absent");
- a time padded with NBSP or another non-ASCII space (``str.strip`` took it).
"""

from __future__ import annotations

import json

import pytest

from tests.fix_db import execute
from tests.fix_directory import add_directory
from tests.fix_server import auth
from tornado_sse.testing.sse_client import Response, request

T0 = 1733044800
APPOINTMENT = f'{{"start": {T0}, "end": {T0 + 3600}, "staff_ids": [5]'


def rule(title: str, **more: object) -> bytes:
    return json.dumps({"scope": "global", "title": title, "range_type": "custom", **more}).encode()


CASES = [
    # (method, path, body, the parameter the 400 names)
    ("POST", "/api/appointments", (APPOINTMENT + ', "status": "paid", "status": "trash"}').encode(), "status"),
    ("POST", "/api/availabilities", b'{"scope": "global", "title": "a", "title": "b"}', "title"),
    ("POST", "/api/availabilities", rule("Closed\u0000"), "title"),
    ("POST", "/api/availabilities", rule("Closed\u001b[31m"), "title"),
    ("POST", "/api/availabilities", rule("Closed\u007f"), "title"),
    ("POST", "/api/availabilities", rule("Closed\tday"), "title"),
    ("POST", "/api/availabilities", rule("Closed", rrule="FREQ=WEEKLY\nCOUNT=2"), "rrule"),
    ("POST", "/api/appointments", json.dumps({"start": f"\u00a0{T0}", "end": T0 + 3600}).encode(), "start"),
    ("POST", "/api/appointments",
     json.dumps({"start": T0, "end": "2024-12-01T10:20:00Z\u2003"}).encode(), "end"),
    ("GET", "/poll?since_id%00=0", b"", "since_id\\x00"),
    ("GET", "/poll?since_id=0%00", b"", "since_id"),
    ("GET", "/api/appointments?staff_id=5%00", b"", "staff_id"),
    ("GET", "/sse?topics=appointment.*%01", b"", "topics"),
    ("GET", f"/api/appointments?start=%C2%A0{T0}", b"", "start"),
    ("GET", f"/api/appointments?start={T0}%C2%A0", b"", "start"),
    ("GET", "/api/appointments?start=2024-12-01T09:00:00Z%E2%80%83", b"", "start"),
]


@pytest.mark.parametrize("method, path, body, param", CASES)
@pytest.mark.gen_test(timeout=20)
async def test_bad_input_is_400_naming_the_parameter(server, db, method, path, body, param):
    headers = {**auth(), "Content-Type": "application/json"} if body else auth()
    resp = await request(server.url + path, method=method, headers=headers, body=body, stream=False)
    assert isinstance(resp, Response)
    assert resp.status == 400, (resp.status, resp.body)
    assert resp.json()["code"] == "rest_invalid_param"
    assert param in resp.json()["data"]["params"], resp.json()
    assert execute(db, "SELECT count(*) FROM sse_events") == [(0,)]  # nothing written


@pytest.mark.gen_test(timeout=20)
async def test_the_same_requests_done_right_still_work(server, db):
    """The controls of the table: ASCII padding, unique keys, plain text."""
    add_directory(db, staff={5: "Eva"}, products={}, customers={})  # SPEC §8: known ids only
    for path, body in (("/api/appointments", (APPOINTMENT + ', "status": "paid"}').encode()),
                       ("/api/availabilities", rule("Closed day", rrule="FREQ=WEEKLY;COUNT=2",
                                                   from_range="2024-12-25", to_range="2024-12-25", appointable=False)),
                       ("/api/appointments", json.dumps({"start": f" {T0} ", "end": T0 + 3600}).encode())):
        resp = await request(server.url + path, method="POST", body=body, stream=False,
                             headers={**auth(), "Content-Type": "application/json"})
        assert isinstance(resp, Response) and resp.status == 201, (path, resp.body)
    for path in ("/poll?since_id=0&timeout=0", f"/api/appointments?start={T0}&end={T0 + 86400}"):
        resp = await request(server.url + path, headers=auth(), stream=False)
        assert isinstance(resp, Response) and resp.status == 200, (path, resp.body)
