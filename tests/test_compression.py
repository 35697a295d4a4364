"""gzip for files and JSON answers, never for event streams (SPEC §3, issue 22).

By hand: ``curl -sI -H 'Accept-Encoding: gzip' http://127.0.0.1:8888/static/client.js``
shows ``Content-Encoding: gzip``; the same header on ``/sse`` does not.
"""

from __future__ import annotations

import gzip

import pytest

from tests.fix_db import insert_appointment
from tests.fix_directory import add_directory
from tests.fix_server import auth
from tornado_sse.app import STATIC
from tornado_sse.compress import accepts_gzip
from tornado_sse.testing.sse_client import Response, SSEConnection, request

pytestmark = pytest.mark.pg_independent  # HTTP compression, not PostgreSQL's version

GZIP = {"Accept-Encoding": "gzip, deflate, br"}
STREAM_PATHS = ["/sse", "/wc-appointments/v2/sse", "/wp-json/wc-appointments/v2/sse"]


async def get(url: str, headers: dict[str, str]) -> Response:
    resp = await request(url, headers=headers, stream=False)
    assert isinstance(resp, Response)
    return resp


@pytest.mark.parametrize("path", ["/static/client.js", "/static/calendar.css",
                                  "/static/vendor/fullcalendar/all/global.js", "/"])
@pytest.mark.gen_test(timeout=20)
async def test_static_files_are_gzipped_only_for_clients_that_accept_it(server, path):
    raw = (STATIC / ("calendar.html" if path == "/" else path.removeprefix("/static/"))).read_bytes()
    plain = await get(server.url + path, {})
    assert plain.status == 200 and "content-encoding" not in plain.headers and plain.body == raw
    packed = await get(server.url + path, GZIP)
    assert packed.status == 200 and packed.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["vary"]
    assert gzip.decompress(packed.body) == raw
    assert len(packed.body) < len(raw) / 2


@pytest.mark.gen_test(timeout=20)
async def test_json_snapshot_and_directory_are_gzipped(server, db):
    for _ in range(20):
        insert_appointment(db)
    add_directory(db, staff={i: f"Staff member {i}" for i in range(1, 40)})
    for path in ("/api/appointments?start=2024-11-01T00:00:00Z&end=2024-12-31T00:00:00Z", "/api/directory"):
        plain = await get(server.url + path, auth())
        packed = await get(server.url + path, {**auth(), **GZIP})
        assert plain.status == packed.status == 200, path
        assert "content-encoding" not in plain.headers
        assert packed.headers["content-encoding"] == "gzip", path
        assert gzip.decompress(packed.body) == plain.body, path  # nothing changed in between
        assert len(packed.body) < len(plain.body), path


@pytest.mark.parametrize("path", STREAM_PATHS)
@pytest.mark.gen_test(timeout=20)
async def test_event_streams_are_never_compressed(server, db, path):
    conn = await request(server.url + path, headers={**auth(), **GZIP, "Accept": "text/event-stream"})
    assert isinstance(conn, SSEConnection) and conn.status == 200
    assert "content-encoding" not in conn.response.headers
    assert conn.response.headers["content-type"].startswith("text/event-stream")
    insert_appointment(db)
    event = await conn.next(timeout=5)  # plain frames, parsed as they arrive
    assert event.event == "appointment.created"
    assert bytes(conn.raw).startswith(b"retry:")
    conn.close()


@pytest.mark.gen_test(timeout=20)
async def test_refused_gzip_and_byte_ranges_stay_plain(server):
    raw = (STATIC / "client.js").read_bytes()
    refused = await get(server.url + "/static/client.js", {"Accept-Encoding": "gzip;q=0, identity"})
    assert "content-encoding" not in refused.headers and refused.body == raw
    ranged = await get(server.url + "/static/client.js", {**GZIP, "Range": "bytes=0-99"})
    assert ranged.status == 206 and "content-encoding" not in ranged.headers
    assert ranged.body == raw[:100]


@pytest.mark.parametrize("header, accepted", [
    ("gzip", True), ("GZIP;q=0.5", True), ("deflate, gzip;q=1.0", True), ("*", True),
    ("gzip;q=0", False), ("identity", False), ("", False), ("br, *;q=0", False), ("gzip;q=abc", False),
])
def test_accept_encoding_is_read_by_the_rfc(header, accepted):
    assert accepts_gzip(header) is accepted
