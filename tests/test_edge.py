"""Hostile and careless clients get bounded, clear answers (issue 16, SPEC §7).

One test per finding, each on a real server over real sockets. By hand:
``nc 127.0.0.1 8888`` and type nothing (closed after --header-timeout);
``curl -X POST -H 'Content-Length: 52428800' .../api/appointments`` (413 at
once); open 101 EventSources with one token (the 101st is 429).
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.fix_db import insert_appointment
from tests.fix_server import SECRET, admin_token, auth, staff_token
from tornado_sse.auth import issue_token
from tornado_sse.testing.processes import COMMAND, clean_env
from tornado_sse.testing.sse_client import Response, SSEConnection, open_stream, request

pytestmark = pytest.mark.pg_independent  # the HTTP edge, not PostgreSQL's version

DENIED = {"code": "rest_forbidden", "message": "Sorry, you are not allowed to do that.",
          "data": {"status": 401}}


async def raw_exchange(port: int, data: bytes, *, read_timeout: float = 5.0) -> bytes:
    """Send ``data`` and read until the server closes (or the timeout)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    chunks = []
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), read_timeout)
            if not chunk:
                break
            chunks.append(chunk)
    except (asyncio.TimeoutError, ConnectionError):
        pass
    writer.close()
    return b"".join(chunks)


async def closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed ``sock`` (fails past ``seconds``)."""
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    sock.setblocking(False)
    while True:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), seconds)
        except ConnectionError:
            data = b""
        if not data:
            return time.monotonic() - started
        assert time.monotonic() - started < seconds


# -- timeouts ------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=30)
async def test_idle_socket_is_closed_after_the_header_timeout(make_server):
    server = await make_server(header_timeout=1.0)
    sock = socket.create_connection(("127.0.0.1", server.port))
    took = await closed_within(sock, 5)
    assert 0.8 < took < 3, took
    sock.close()


@pytest.mark.gen_test(timeout=30)
async def test_slowloris_headers_are_cut_at_the_header_timeout(make_server):
    """One byte every 0.2 s never completes the headers within 1 s."""
    server = await make_server(header_timeout=1.0)
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    closed = False
    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
        try:
            await loop.sock_sendall(sock, bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        await asyncio.sleep(0.2)
        if time.monotonic() - started > 4:
            break
    if not closed:
        try:
            closed = await asyncio.wait_for(loop.sock_recv(sock, 4096), 1) == b""
        except ConnectionError:
            closed = True
    assert closed, "a slowloris client kept its socket past the header timeout"
    assert time.monotonic() - started < 4
    sock.close()


@pytest.mark.gen_test(timeout=30)
async def test_kept_alive_connection_idle_after_a_response_is_closed(make_server):
    server = await make_server(header_timeout=1.0)
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    took = await closed_within(sock, 5)  # reads the answer, then the close
    assert took < 3
    sock.close()


@pytest.mark.gen_test(timeout=30)
async def test_open_stream_outlives_the_header_timeout(make_server, db):
    server = await make_server(header_timeout=1.0, keepalive=0.5)
    conn = await open_stream(server.url + "/sse", auth())
    await asyncio.sleep(2.5)
    insert_appointment(db)
    assert (await conn.next()).event == "appointment.created"
    conn.close()


# -- bodies --------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=30)
async def test_50mb_post_is_answered_before_its_body_is_sent_401_without_token_413_with_one(server):
    """SPEC §7: "413 before the body is read; auth is checked on the headers
    first": an anonymous client learns nothing but 401 (issue 19)."""
    head = (b"POST /api/appointments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 52428800\r\n")
    for extra, status, code in ((b"", 401, "rest_forbidden"),
                                (f"Authorization: {auth()['Authorization']}\r\n".encode(), 413,
                                 "rest_body_too_large")):
        started = time.monotonic()
        answer = await raw_exchange(server.port, head + extra + b"\r\n", read_timeout=3)
        assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:200]
        assert time.monotonic() - started < 2
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert body["code"] == code and body["data"]["status"] == status


@pytest.mark.gen_test(timeout=30)
async def test_post_within_the_limit_without_token_is_401_before_its_body_is_read(server):
    head = (b"POST /api/appointments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 500000\r\n\r\n")
    answer = await raw_exchange(server.port, head, read_timeout=3)  # no body byte sent
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == DENIED
    assert b'error="invalid_request"' in answer


@pytest.mark.gen_test(timeout=60)
async def test_server_memory_stays_bounded_while_20_clients_send_5mb_bodies(server):
    rss = psutil.Process().memory_info().rss
    payload = b"x" * (5 * 1024 * 1024)

    async def send() -> bytes:
        head = (f"POST /api/appointments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Authorization: {auth()['Authorization']}\r\nContent-Length: {len(payload)}\r\n\r\n").encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(head + payload[:65536])
        # The answer comes on the headers; then the client pushes the rest.
        answer = await asyncio.wait_for(reader.read(4096), 5)
        try:
            writer.write(payload)
            await asyncio.wait_for(writer.drain(), 5)
        except (ConnectionError, asyncio.TimeoutError):
            pass  # closed by the server: it does not read what it refused
        writer.close()
        return answer

    answers = await asyncio.gather(*(send() for _ in range(20)))
    assert all(a.startswith(b"HTTP/1.1 413 ") for a in answers), answers[0][:100]
    grown = psutil.Process().memory_info().rss - rss
    assert grown < 40 * 1024 * 1024, f"RSS grew {grown / 1e6:.0f} MB"  # was ~205 MB


# -- the connection budget -------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.pg_independent
def test_at_the_open_file_limit_excess_connections_get_503_without_a_busy_loop(db, tmp_path):
    """Under ``ulimit -n 256``, 400 idle connections: the excess is refused
    with a JSON 503, the server stays under half a core with a few log lines,
    and /healthz answers once they are gone."""
    port_sock = socket.socket()
    port_sock.bind(("127.0.0.1", 0))
    port = port_sock.getsockname()[1]
    port_sock.close()

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([*COMMAND, "--dsn", db, "--jwt-secret", SECRET, "--port", str(port),
                                 "--data-dir", str(tmp_path), "--header-timeout", "30"],
                                stderr=log_file, env=clean_env(), cwd=tmp_path, preexec_fn=limit)
    try:
        deadline = time.monotonic() + 30
        while "listening on" not in log_path.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, log_path.read_text()
            time.sleep(0.1)
        sockets = []
        for _ in range(400):
            s = socket.create_connection(("127.0.0.1", port))
            sockets.append(s)
        server = psutil.Process(proc.pid)
        cpu_before = sum(server.cpu_times()[:2])
        time.sleep(3)
        cpu = sum(server.cpu_times()[:2]) - cpu_before
        assert cpu < 1.5, f"{cpu:.2f} s of CPU in 3 s: a busy loop"
        refused = 0
        for s in sockets:
            s.settimeout(0.05)
            try:
                if s.recv(64).startswith(b"HTTP/1.1 503 "):
                    refused += 1
            except (TimeoutError, ConnectionError):
                pass
        assert refused > 100, refused  # the budget is 256 - 10 - 64 = 182
        lines = log_path.read_text().splitlines()
        assert len(lines) < 20, lines[-5:]
        assert any("connection limit" in line for line in lines)
        for s in sockets:
            s.close()
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert s.recv(64).startswith(b"HTTP/1.1 200 ")
    finally:
        proc.terminate()
        proc.wait(20)


# -- streams per token -----------------------------------------------------------------

@pytest.mark.gen_test(timeout=60)
async def test_101st_stream_of_one_token_is_429_while_another_token_connects(make_server):
    server = await make_server(max_connects_per_second=0)  # 100 at once: only the count limit here
    token = admin_token()
    streams = [await open_stream(server.url + "/sse", auth(token)) for _ in range(100)]
    refused = await request(server.url + "/sse", headers=auth(token))
    assert isinstance(refused, Response) and refused.status == 429
    assert refused.json()["code"] == "rest_too_many_streams" and "retry-after" in refused.headers
    other = await open_stream(server.url + "/sse", auth(staff_token(5)))
    assert other.status == 200
    metrics = await request(server.url + "/metrics")
    assert isinstance(metrics, Response)
    assert b'tornado_sse_refused_total{limit="streams_per_token"} 1.0' in metrics.body
    streams[0].close()
    await asyncio.sleep(0.3)
    again = await open_stream(server.url + "/sse", auth(token))  # a slot came free
    assert again.status == 200
    for s in [*streams[1:], other, again]:
        s.close()


@pytest.mark.gen_test(timeout=30)
async def test_process_wide_stream_limit_is_503(make_server):
    server = await make_server(max_streams=2)
    a = await open_stream(server.url + "/sse", auth(admin_token()))
    b = await open_stream(server.url + "/sse", auth(staff_token(5)))
    resp = await request(server.url + "/poll?since_id=0&timeout=1", headers=auth(staff_token(6)))
    assert isinstance(resp, Response) and resp.status == 503 and "retry-after" in resp.headers
    a.close()
    b.close()


# -- never refuse a stream for a transient reason ---------------------------------------

@pytest.mark.gen_test(timeout=90)
async def test_stream_reconnecting_while_postgres_is_down_gets_200_and_resumes_once_in_order(
        make_server, own_pg):
    for _ in range(3):
        insert_appointment(own_pg.dsn)  # events 1..3
    await asyncio.to_thread(own_pg.stop)
    server = await make_server(dsn=own_pg.dsn, wait=False, keepalive=0.5, check_interval=1,
                               check_timeout=2)
    conn = await request(server.url + "/sse", headers={**auth(), "Last-Event-ID": "1"})
    assert isinstance(conn, SSEConnection) and conn.status == 200  # not 503: EventSource would stop
    await asyncio.sleep(1.5)
    assert conn.parser.retry == 3000 and "keepalive" in conn.parser.comments
    poll = await request(server.url + "/poll?since_id=1&timeout=1", headers=auth())
    assert isinstance(poll, Response) and poll.status == 503 and "retry-after" in poll.headers
    await asyncio.to_thread(own_pg.start)
    await server.wait_ready(30)
    insert_appointment(own_pg.dsn)  # event 4, after the database came back
    got = await conn.take(3, timeout=20)
    assert [m.json()["id"] for m in got] == [2, 3, 4]
    with pytest.raises(asyncio.TimeoutError):
        await conn.next(timeout=1)
    conn.close()


# -- 401s, inputs, logs ---------------------------------------------------------------

@pytest.mark.gen_test(timeout=20)
async def test_every_401_has_the_seed_body_and_a_challenge_that_says_why(server):
    cases = {
        None: ("invalid_request", "no token"),
        issue_token(SECRET, role="admin", ttl=-120): ("invalid_token", "expired"),
        issue_token("another-secret-another-secret-xyz!", role="admin"): ("invalid_token", "signature"),
        "not.a.jwt": ("invalid_token", "malformed"),
    }
    for token, (error, words) in cases.items():
        resp = await request(server.url + "/poll", headers=auth(token) if token else {})
        assert isinstance(resp, Response) and resp.status == 401
        assert resp.json() == DENIED
        challenge = resp.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="tornado_sse"') and f'error="{error}"' in challenge
        assert words in challenge, challenge


def odd_token(**claims: object) -> str:
    import jwt

    return jwt.encode({"role": "admin", "exp": int(time.time()) + 600, **claims}, SECRET, algorithm="HS256")


NINE = [
    # (what, method, path, headers, body, expected status)
    ("staff_id '²'", "GET", "/poll", {"Authorization": "Bearer " + odd_token(role="staff", staff_id="²")},
     b"", 401),
    ("exp = 10**400", "GET", "/poll", {"Authorization": "Bearer " + odd_token(exp=10 ** 400)}, b"", 401),
    ("lone surrogate in a title", "POST", "/api/availabilities", {"Content-Type": "application/json"},
     b'{"scope": "global", "title": "\\ud800"}', 400),
    ("cost rounding past numeric(12,2)", "POST", "/api/appointments", {"Content-Type": "application/json"},
     b'{"start": 1733044800, "end": 1733048400, "cost": "9999999999.999"}', 400),
    ("start at the end of time", "GET", "/api/appointments?start=9999-12-31T23:59:59-14:00", {}, b"", 400),
    ("start before year 1", "GET", "/api/appointments?start=-62135596801&end=-62135596800", {}, b"", 400),
    ("100,000-deep JSON", "POST", "/api/appointments", {"Content-Type": "application/json"},
     b"[" * 100_000 + b"]" * 100_000, 400),
    ("8,000-deep JSON to /session", "POST", "/session", {"Content-Type": "application/json"},
     b"[" * 8_000 + b"]" * 8_000, 400),
    ("HEAD /", "HEAD", "/", {}, b"", 200),
    ("NUL in a static path", "GET", "/static/client.js%00.html", {}, b"", 404),
]


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("what, method, path, headers, body, status", NINE, ids=[n[0] for n in NINE])
async def test_inputs_that_once_answered_500_get_a_clear_answer(server, what, method, path, headers, body,
                                                                status):
    sent = {**auth(), **headers} if "Authorization" not in headers and path != "/" else headers
    resp = await request(server.url + path, method=method, headers=sent, body=body, stream=False)
    assert isinstance(resp, Response)
    assert resp.status == status, (what, resp.status, resp.body[:300])
    if method != "HEAD" and status != 200:
        assert resp.headers["content-type"].startswith("application/json")
        assert resp.json()["data"]["status"] == status


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("value", ["١٢", "１２", "+5", "5_0", " 5", "99999999999999999999"])
async def test_integers_are_ascii_digits_only(server, value):
    from urllib.parse import quote

    resp = await request(server.url + "/poll?since_id=" + quote(value), headers=auth())
    assert isinstance(resp, Response) and resp.status == 400, (value, resp.status)
    assert "since_id" in resp.json()["data"]["params"]


@pytest.mark.gen_test(timeout=20)
async def test_repeated_parameter_is_400_everywhere(server):
    for path in ("/sse?since_id=1&since_id=2", "/poll?since_id=1&since_id=2",
                 "/api/appointments?staff_id=1&staff_id=2"):
        resp = await request(server.url + path, headers=auth(), stream=False)
        assert isinstance(resp, Response) and resp.status == 400, path
        assert resp.json()["code"] == "rest_invalid_param"


@pytest.mark.gen_test(timeout=20)
async def test_percent_encoded_token_parameter_never_reaches_the_log(server, caplog):
    token = admin_token()
    caplog.set_level(logging.INFO)
    resp = await request(server.url + "/poll?%74oken=" + token + "&since_id=0&timeout=0")
    assert isinstance(resp, Response) and resp.status == 200  # the server reads it as "token"
    resp = await request(server.url + "/poll?_wp%6Eonce=" + token + "&since_id=x")
    assert isinstance(resp, Response) and resp.status == 400
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "token=***" in text and "_wpnonce=***" in text
    assert token not in text and token[-20:] not in text


@pytest.mark.gen_test(timeout=20)
async def test_cross_site_session_posts_are_refused_without_a_cookie(server):
    token = admin_token()
    form = await request(server.url + "/session", method="POST", stream=False,
                         headers={"Content-Type": "text/plain", "Origin": "https://evil.example"},
                         body=json.dumps({"token": token}).encode())
    assert isinstance(form, Response) and form.status == 415 and "set-cookie" not in form.headers
    cross = await request(server.url + "/session", method="POST", stream=False,
                          headers={"Content-Type": "application/json", "Origin": "https://evil.example"},
                          body=json.dumps({"token": token}).encode())
    assert isinstance(cross, Response) and cross.status == 403 and "set-cookie" not in cross.headers
    fetched = await request(server.url + "/session", method="POST", stream=False,
                            headers={"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
                            body=json.dumps({"token": token}).encode())
    assert isinstance(fetched, Response) and fetched.status == 403
    same = await request(server.url + "/session", method="POST", stream=False,
                         headers={"Content-Type": "application/json", "Origin": server.url},
                         body=json.dumps({"token": token}).encode())
    assert isinstance(same, Response) and same.status == 204 and "set-cookie" in same.headers


@pytest.mark.gen_test(timeout=20)
async def test_session_token_over_4kb_is_400_naming_it(server):
    huge = odd_token(pad="x" * 5000)
    resp = await request(server.url + "/session", method="POST", stream=False,
                         headers={"Content-Type": "application/json"},
                         body=json.dumps({"token": huge}).encode())
    assert isinstance(resp, Response) and resp.status == 400
    assert "token" in resp.json()["data"]["params"] and "set-cookie" not in resp.headers


@pytest.mark.gen_test(timeout=20)
async def test_head_works_wherever_get_does(server):
    for path, headers in (("/healthz", {}), ("/", {}), ("/static/client.js", {}), ("/metrics", {}),
                          ("/api/appointments", auth()), ("/api/me", auth()), ("/sse", auth()),
                          ("/poll", auth())):
        resp = await request(server.url + path, method="HEAD", headers=headers, stream=False)
        assert isinstance(resp, Response) and resp.status == 200, (path, resp.status)
        assert resp.body == b""
    sse_head = await request(server.url + "/sse", method="HEAD", headers=auth(), stream=False)
    assert isinstance(sse_head, Response)
    assert sse_head.headers["content-type"].startswith("text/event-stream")


@pytest.mark.gen_test(timeout=20)
async def test_static_errors_are_json(server):
    resp = await request(server.url + "/static/nope.js")
    assert isinstance(resp, Response) and resp.status == 404
    assert resp.json()["data"]["status"] == 404
    resp = await request(server.url + "/static/../setup.py")
    assert isinstance(resp, Response) and resp.status in (403, 404)
    assert resp.headers["content-type"].startswith("application/json")


def test_short_hs256_secret_exits_2_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run([*COMMAND, "--jwt-secret", "a", "--dsn", "postgresql://x@127.0.0.1:1/x"],
                            capture_output=True, text=True, timeout=60, env=clean_env(), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--jwt-secret" in result.stderr and "32 bytes" in result.stderr
