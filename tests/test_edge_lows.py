"""The low findings of issue 19 at the HTTP edge: one row each, on a real server.

Each row is a coroutine that reproduces the finding against a server started
with the settings it names and asserts the fixed behaviour; the table
(``LOWS``) is what the test runs. By hand, e.g.: ``curl -H "X-Big: $(head -c
70000 /dev/zero | tr '\\0' a)" host:8888/healthz`` (431), or ``run.py --dsn
postgresql://...`` without ``--jwt-secret`` (exit 2).
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.fix_server import SECRET, admin_token, auth, staff_token
from tornado_sse.auth import RedactTokens, issue_token
from tornado_sse.server import Server
from tornado_sse.testing.processes import COMMAND, clean_env
from tornado_sse.testing.sse_client import Response, SSEConnection, open_stream, request

pytestmark = pytest.mark.pg_independent  # HTTP edge details, not PostgreSQL's version

MakeServer = Callable[..., Awaitable[Server]]


async def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data``, read until the server closes (or the timeout)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    chunks = []
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), timeout):
            chunks.append(chunk)
    except (asyncio.TimeoutError, ConnectionError):
        pass
    writer.close()
    return b"".join(chunks)


def json_body(answer: bytes) -> Any:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


async def headers_over_64kb_get_431(make_server: MakeServer, caplog: Any) -> None:
    """Was: the connection dropped without a word."""
    server = await make_server()
    fine = await raw(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: "
                     + b"a" * 60_000 + b"\r\n\r\n")
    assert fine.startswith(b"HTTP/1.1 200 "), fine[:100]
    answer = await raw(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 70_000
                       + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    body = json_body(answer)
    assert body["code"] == "rest_headers_too_large" and body["data"]["status"] == 431


async def padded_token_counts_as_the_same_token(make_server: MakeServer, caplog: Any) -> None:
    """Was: ``token=`` (PyJWT accepts the padding) had a quota of its own."""
    server = await make_server(max_streams_per_token=2, max_connects_per_second=0)
    token = admin_token()
    streams = [await open_stream(server.url + "/sse", auth(token + "=")),  # accepted as the token
               await open_stream(server.url + "/sse", auth(token))]
    for spelling in (token, token + "="):
        refused = await request(server.url + "/sse", headers=auth(spelling))
        assert isinstance(refused, Response) and refused.status == 429, (spelling[-3:], refused.status)
    for stream in streams:
        stream.close()


async def security_headers_on_the_page_and_every_response(make_server: MakeServer, caplog: Any) -> None:
    """Was: the page could be framed (no CSP, no X-Frame-Options), no
    nosniff, and ``/?token=`` went out in ``Referer``."""
    server = await make_server()
    page = await request(server.url + "/?token=" + admin_token())
    assert isinstance(page, Response) and page.status == 200
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-eval" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    for path, headers, status in (("/", {}, 200), ("/healthz", {}, 200), ("/static/client.js", {}, 200),
                                  ("/static/nope.js", {}, 404), ("/nope", {}, 404), ("/poll", {}, 401),
                                  ("/api/me", auth(), 200), ("/sse", auth(), 200)):
        resp = await request(server.url + path, method="HEAD" if path == "/sse" else "GET", headers=headers,
                             stream=False)
        assert isinstance(resp, Response) and resp.status == status, (path, resp.status)
        assert resp.headers.get("x-content-type-options") == "nosniff", path
        assert resp.headers.get("referrer-policy") == "no-referrer", path


async def jwt_shaped_text_never_reaches_the_log(make_server: MakeServer, caplog: Any) -> None:
    """Was: ``?token%00=<jwt>`` was logged whole (its decoded name is not
    ``token``)."""
    server = await make_server()
    token = admin_token()
    caplog.set_level(logging.INFO)
    for target in (f"/poll?token%00={token}&since_id=x", f"/poll?x={token}&since_id=x", f"/nope/{token}",
                   f"/poll?%74oken%00={token}&since_id=x"):
        resp = await request(server.url + target)
        assert isinstance(resp, Response) and resp.status in (400, 401, 404), (target, resp.status)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/poll?" in text and "/nope/***" in text
    assert token not in text and token.split(".")[1] not in text
    # The filter every log handler carries: a token quoted anywhere in a line.
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "bad header %s", (f"Bearer {token}",), None)
    assert RedactTokens().filter(record) and record.getMessage() == "bad header Bearer ***"
    kept = logging.LogRecord("x", logging.INFO, __file__, 1, "GET %s", ("/static/vendor/index.global.min.js",),
                             None)
    assert RedactTokens().filter(kept) and kept.getMessage() == "GET /static/vendor/index.global.min.js"


async def dsn_without_a_secret_exits_2(make_server: MakeServer, caplog: Any) -> None:
    """Was: the development secret, silently, and a 12 h admin token printed."""
    for argv, env in (((*COMMAND, "--dsn", "postgresql://x@127.0.0.1:1/x", "--port", "0"), {}),
                      ((*COMMAND, "--port", "0"), {"DATABASE_URL": "postgresql://x@127.0.0.1:1/x"})):
        result = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=60,
                                         env=clean_env(env))
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "--jwt-secret" in result.stderr, result.stderr
        assert "token" not in result.stderr.replace("--jwt", "")  # no admin token printed


async def anonymous_oversized_post_is_401_authenticated_one_413(make_server: MakeServer, caplog: Any) -> None:
    """SPEC §7: auth is checked on the headers first (was: 413 for anyone)."""
    server = await make_server(max_body_size=2048)
    head = b"POST /api/appointments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9999\r\n"
    assert (await raw(server.port, head + b"\r\n", timeout=3)).startswith(b"HTTP/1.1 401 ")
    authed = await raw(server.port, head + f"Authorization: {auth()['Authorization']}\r\n\r\n".encode(), timeout=3)
    assert authed.startswith(b"HTTP/1.1 413 ") and json_body(authed)["code"] == "rest_body_too_large"


async def reconnect_loop_gets_429_and_the_log_stays_small(make_server: MakeServer, caplog: Any) -> None:
    """Was: 516 connects/s for one token and ~1,000 log lines a second."""
    server = await make_server(max_connects_per_second=10)
    token = admin_token()
    caplog.set_level(logging.INFO)
    caplog.clear()
    accepted = refused = 0
    for _ in range(150):
        resp = await request(server.url + "/sse", headers=auth(token))
        if isinstance(resp, SSEConnection):
            accepted += 1
            resp.close()
        else:
            assert resp.status == 429 and resp.json()["code"] == "rest_too_many_connects", resp.status
            assert int(resp.headers["retry-after"]) >= 1
            refused += 1
    assert refused >= 100 and accepted >= 10, (accepted, refused)
    other = await open_stream(server.url + "/sse", auth(staff_token(4)))  # other tokens unaffected
    other.close()
    await asyncio.sleep(0.3)
    lines = [r.getMessage() for r in caplog.records]
    assert not [line for line in lines if line.startswith("429 ")], "one access-log line per refusal"
    assert sum("refused" in line and "per-token" in line for line in lines) == 1, lines
    assert len(lines) <= 3 * (accepted + 1) + 5, len(lines)
    for _ in range(20):  # a poller following a busy log asks again at once: not a reconnect loop
        resp = await request(server.url + "/poll?since_id=0&timeout=0", headers=auth(token))
        assert isinstance(resp, Response) and resp.status == 200, resp.status


async def https_origin_behind_a_trusted_proxy_gets_a_secure_cookie(make_server: MakeServer, caplog: Any) -> None:
    """Was: behind nginx with TLS, POST /session from the page's own https
    origin was 403, and the cookie lacked Secure."""
    body = json.dumps({"token": admin_token()}).encode()
    proxied = {"Content-Type": "application/json", "X-Forwarded-Proto": "https",
               "X-Forwarded-Host": "cal.example.com"}
    trusting = await make_server(trusted_proxies=("127.0.0.1",))
    ok = await request(trusting.url + "/session", method="POST", body=body, stream=False,
                       headers={**proxied, "Origin": "https://cal.example.com"})
    assert isinstance(ok, Response) and ok.status == 204, ok.body
    assert "secure" in ok.headers["set-cookie"].lower().split("; ")
    evil = await request(trusting.url + "/session", method="POST", body=body, stream=False,
                         headers={**proxied, "Origin": "https://evil.example"})
    assert isinstance(evil, Response) and evil.status == 403 and "set-cookie" not in evil.headers
    # The same headers from a peer not listed are not believed.
    untrusting = await make_server(trusted_proxies=("10.0.0.0/8",))
    spoofed = await request(untrusting.url + "/session", method="POST", body=body, stream=False,
                            headers={**proxied, "Origin": "https://cal.example.com"})
    assert isinstance(spoofed, Response) and spoofed.status == 403
    # --public-origin alone does the same without trusting any header.
    public = await make_server(public_origin="https://cal.example.com")
    named = await request(public.url + "/session", method="POST", body=body, stream=False,
                          headers={"Content-Type": "application/json", "Origin": "https://cal.example.com"})
    assert isinstance(named, Response) and named.status == 204
    assert "secure" in named.headers["set-cookie"].lower().split("; ")


async def a_link_does_not_replace_another_identitys_session_silently(make_server: MakeServer,
                                                                     caplog: Any) -> None:
    """Was: ``/?token=<someone else's>`` swapped the session (login CSRF)."""
    server = await make_server()
    admin = admin_token()
    cookie = {"Cookie": f"tornado_sse_token={admin}", "Content-Type": "application/json"}

    async def post(token: str, **extra: Any) -> Response:
        resp = await request(server.url + "/session", method="POST", headers=cookie, stream=False,
                             body=json.dumps({"token": token, **extra}).encode())
        assert isinstance(resp, Response)
        return resp

    asked = await post(staff_token(5))
    assert asked.status == 409 and "set-cookie" not in asked.headers
    assert asked.json()["code"] == "rest_session_exists"
    assert "an admin" in asked.json()["message"] and "staff member #5" in asked.json()["message"]
    fresher = await post(issue_token(SECRET, role="admin", ttl=7200))  # the same identity: no question
    assert fresher.status == 204
    replaced = await post(staff_token(5), replace=True)
    assert replaced.status == 204 and "set-cookie" in replaced.headers


LOWS: list[tuple[str, Callable[[MakeServer, Any], Awaitable[None]]]] = [
    ("431 for headers over 64 KB", headers_over_64kb_get_431),
    ("quota key from the verified claims", padded_token_counts_as_the_same_token),
    ("security headers", security_headers_on_the_page_and_every_response),
    ("tokens masked in logs however spelt", jwt_shaped_text_never_reaches_the_log),
    ("--dsn without a secret exits 2", dsn_without_a_secret_exits_2),
    ("401 before 413", anonymous_oversized_post_is_401_authenticated_one_413),
    ("connect rate per token, sampled log", reconnect_loop_gets_429_and_the_log_stays_small),
    ("--public-origin / --trusted-proxies", https_origin_behind_a_trusted_proxy_gets_a_secure_cookie),
    ("ask before replacing a session", a_link_does_not_replace_another_identitys_session_silently),
]


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("finding, check", LOWS, ids=[name for name, _ in LOWS])
async def test_issue_19_low_finding_is_fixed(make_server, caplog, finding, check):
    await check(make_server, caplog)
