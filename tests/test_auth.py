"""Who may listen (SPEC §4), over real HTTP against a running server."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fix_db import execute, insert_appointment
from tests.fix_server import SECRET, admin_token, auth, staff_token
from tornado_sse.auth import Authenticator, issue_token
from tornado_sse.settings import Settings, SettingsError
from tornado_sse.testing.sse_client import Response, SSEConnection, open_stream, request

STREAM_PATHS = ["/sse", "/wc-appointments/v2/sse", "/wp-json/wc-appointments/v2/sse"]


def token_with(claims: dict, key: str = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


def now() -> int:
    return int(time.time())


async def status_of(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    resp = await request(url, headers=headers or {})
    if isinstance(resp, SSEConnection):
        resp.close()
        return resp.status, {}
    return resp.status, resp.json() if resp.body else {}


def assert_wp_error(body: dict, status: int, code: str = "rest_forbidden") -> None:
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert body["data"]["status"] == status
    if status == 401:  # SPEC §4: every 401 has exactly the seed's body
        assert body == {"code": "rest_forbidden", "message": "Sorry, you are not allowed to do that.",
                        "data": {"status": 401}}


# -- rejected tokens -----------------------------------------------------------

def alg_none_token() -> str:
    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return b64({"alg": "none", "typ": "JWT"}) + "." + b64({"role": "admin", "exp": now() + 600}) + "."


@pytest.mark.parametrize("name, token", [
    ("missing", None),
    ("alg-none", alg_none_token()),
    ("no-exp", token_with({"role": "admin"})),
    ("expired-beyond-leeway", token_with({"role": "admin", "exp": now() - 120})),
    ("nbf-in-future", token_with({"role": "admin", "exp": now() + 600, "nbf": now() + 300})),
    ("wrong-secret", token_with({"role": "admin", "exp": now() + 600}, key="other-secret-other-secret-123456")),
    ("garbage", "not.a.token"),
    ("staff-without-staff-id", token_with({"role": "staff", "exp": now() + 600})),
])
@pytest.mark.gen_test(timeout=10)
async def test_bad_tokens_get_401_in_wordpress_shape(server, name, token):
    headers = {} if token is None else {"Authorization": "Bearer " + token}
    status, body = await status_of(server.url + "/sse", headers)
    assert status == 401, name
    assert_wp_error(body, 401)


@pytest.mark.gen_test(timeout=10)
async def test_tampered_signature_gets_401(server):
    good = admin_token()
    head, payload, sig = good.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged["role"] = "admin"
    forged["staff_id"] = 1
    fake_payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    status, _body = await status_of(server.url + "/sse", auth(f"{head}.{fake_payload}.{sig}"))
    assert status == 401
    flipped = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
    status, _ = await status_of(server.url + "/sse", auth(f"{head}.{payload}.{flipped}"))
    assert status == 401


@pytest.mark.gen_test(timeout=10)
async def test_expired_within_leeway_is_still_accepted(server):
    token = token_with({"role": "admin", "exp": now() - 10})  # leeway is 30 s
    status, _ = await status_of(server.url + "/sse?max_events=1", auth(token))
    assert status == 200


@pytest.mark.gen_test(timeout=10)
async def test_valid_token_with_a_role_that_may_not_listen_gets_403(server):
    for claims in ({"role": "customer"}, {"roles": ["subscriber"]}, {}):
        status, body = await status_of(server.url + "/sse", auth(token_with({**claims, "exp": now() + 600})))
        assert status == 403, claims
        assert_wp_error(body, 403)


@pytest.mark.gen_test(timeout=10)
async def test_roles_list_is_accepted(server):
    status, _ = await status_of(server.url + "/sse?max_events=1",
                                auth(token_with({"roles": ["editor", "admin"], "exp": now() + 600})))
    assert status == 200


@pytest.mark.gen_test(timeout=10)
async def test_audience_and_issuer_are_checked_when_configured(make_server):
    server = await make_server(jwt_audience="calendar", jwt_issuer="https://shop.example")
    ok = {"role": "admin", "exp": now() + 600, "aud": "calendar", "iss": "https://shop.example"}
    assert (await status_of(server.url + "/sse?max_events=1", auth(token_with(ok))))[0] == 200
    for bad in ({**ok, "aud": "other"}, {**ok, "iss": "https://evil.example"},
                {k: v for k, v in ok.items() if k != "aud"}):
        assert (await status_of(server.url + "/sse", auth(token_with(bad))))[0] == 401, bad


# -- public keys -------------------------------------------------------------------

@pytest.fixture
def rsa_keys(tmp_path):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path = tmp_path / "public.pem"
    path.write_bytes(public_pem)
    return private, public_pem, path


@pytest.mark.gen_test(timeout=10)
async def test_rs256_server_rejects_hs256_token_signed_with_its_public_key(make_server, rsa_keys):
    private, public_pem, path = rsa_keys
    server = await make_server(jwt_secret=None, jwt_algorithms=("RS256",), jwt_public_key=path)
    good = jwt.encode({"role": "admin", "exp": now() + 600}, private, algorithm="RS256")
    assert (await status_of(server.url + "/sse?max_events=1", auth(good)))[0] == 200
    # The classic confusion attack: HMAC keyed with the public key's bytes.
    import hashlib
    import hmac

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + \
        b64(json.dumps({"role": "admin", "exp": now() + 600}).encode())
    sig = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    status, body = await status_of(server.url + "/sse", auth(signing_input + "." + b64(sig)))
    assert status == 401
    assert_wp_error(body, 401)


def test_key_that_does_not_fit_the_algorithms_fails_at_startup(tmp_path, rsa_keys):
    _, _, rsa_path = rsa_keys
    with pytest.raises(SettingsError, match="ES256"):
        Authenticator(Settings(jwt_algorithms=("ES256",), jwt_public_key=rsa_path))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(SettingsError):
        Authenticator(Settings(jwt_algorithms=("RS256",), jwt_public_key=garbage))


# -- token sources -----------------------------------------------------------------

@pytest.mark.parametrize("source", ["bearer", "x-wp-nonce", "token", "nonce", "_wpnonce", "cookie"])
@pytest.mark.gen_test(timeout=10)
async def test_each_token_source_is_accepted(server, source):
    token = admin_token()
    url, headers = server.url + "/sse?max_events=1", {}
    if source == "bearer":
        headers["Authorization"] = "Bearer " + token
    elif source == "x-wp-nonce":
        headers["X-WP-Nonce"] = token
    elif source == "cookie":
        headers["Cookie"] = "tornado_sse_token=" + token
    else:
        url += f"&{source}={token}"
    assert (await status_of(url, headers))[0] == 200


@pytest.mark.gen_test(timeout=10)
async def test_bearer_header_wins_over_a_query_token(server):
    bad = token_with({"role": "customer", "exp": now() + 600})
    status, _ = await status_of(server.url + f"/sse?max_events=1&token={bad}", auth())
    assert status == 200
    status, _ = await status_of(server.url + f"/sse?token={admin_token()}", auth(bad))
    assert status == 403


# -- staff scoping -----------------------------------------------------------------

@pytest.mark.gen_test(timeout=20)
async def test_staff_sees_own_appointments_and_the_move_away_but_nothing_else(server, db):
    s5 = await open_stream(server.url + "/sse", auth(staff_token(5)))
    s7 = await open_stream(server.url + "/sse", auth(staff_token(7)))
    s8_narrow = await open_stream(server.url + "/sse?staff_id=5", auth(staff_token(8)))
    a = insert_appointment(db, staff_ids=[5])  # 1: created, staff 5
    insert_appointment(db, staff_ids=[9])  # 2: someone else's
    execute(db, "UPDATE appointments SET staff_ids = '{7}' WHERE id = %s", (a,))  # 3: 5 -> 7
    execute(db, "UPDATE appointments SET status = 'paid' WHERE id = %s", (a,))  # 4: now 7's only
    execute(db, "INSERT INTO availabilities (scope, staff_id, title) VALUES ('staff', 9, 'off')")  # 5
    execute(db, "INSERT INTO availabilities (scope, title) VALUES ('global', 'open')")  # 6
    ids5 = [m.json()["id"] for m in await s5.take(4)]
    ids7 = [m.json()["id"] for m in await s7.take(4)]
    assert ids5 == [1, 3, 5, 6]  # every availability rule reaches every staff member
    assert ids7 == [3, 4, 5, 6]
    # A query filter narrows a staff member's scope, never widens it: staff 8
    # asking for staff 5's calendar gets none of 5's appointments.
    assert [m.json()["id"] for m in await s8_narrow.take(1)] == [6]
    await asyncio.sleep(0.3)
    assert s5.drain_now() == [] and s7.drain_now() == [] and s8_narrow.drain_now() == []
    for c in (s5, s7, s8_narrow):
        c.close()


# -- expiry --------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=30)
async def test_stream_ends_at_token_expiry_and_a_fresh_token_resumes_without_loss(make_server, db):
    server = await make_server(jwt_leeway=0)
    short = issue_token(SECRET, role="admin", ttl=2)
    conn = await open_stream(server.url + "/sse", auth(short))
    insert_appointment(db)
    first = await conn.next()
    started = time.monotonic()
    assert await conn.wait_end(6) == "finished"
    assert time.monotonic() - started < 4
    insert_appointment(db)  # committed while the client is away
    resp = await request(server.url + "/sse", headers={**auth(short), "Last-Event-ID": first.id})
    assert isinstance(resp, Response) and resp.status == 401
    challenge = resp.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge and "expired" in challenge, challenge
    conn = await open_stream(server.url + "/sse", {**auth(), "Last-Event-ID": first.id})
    assert (await conn.next()).json()["id"] == int(first.id) + 1
    conn.close()


# -- logs ----------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=10)
async def test_tokens_never_reach_the_logs(server, caplog):
    caplog.set_level(logging.DEBUG)
    token = admin_token()
    bad = token_with({"role": "customer", "exp": now() + 600})
    for query in (f"token={token}&max_events=1", f"nonce={bad}", f"_wpnonce={token}&since_id=abc"):
        await status_of(server.url + "/sse?" + query)
    await status_of(server.url + "/nowhere?token=" + token)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "token=***" in text and "nonce=***" in text
    assert token not in text and bad not in text
    assert token.split(".")[2] not in text


# -- CORS ------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=10)
async def test_cors_only_listed_origins_never_star(make_server):
    server = await make_server(cors_origins=("https://admin.example",))
    ok = await request(server.url + "/api/me", headers={**auth(), "Origin": "https://admin.example"})
    assert ok.headers["access-control-allow-origin"] == "https://admin.example"
    assert ok.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in ok.headers["vary"]
    denied = await request(server.url + "/api/me", headers={**auth(), "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in denied.headers
    preflight = await request(server.url + "/session", method="OPTIONS",
                              headers={"Origin": "https://admin.example",
                                       "Access-Control-Request-Method": "POST"})
    assert preflight.status == 204
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-origin"] != "*"


# -- bad parameters ------------------------------------------------------------------------

@pytest.mark.parametrize("path", STREAM_PATHS)
@pytest.mark.parametrize("query, headers, names", [
    ("since_id=abc", {}, ["since_id"]),
    ("since_id=-1", {}, ["since_id"]),
    ("max_events=-1", {}, ["max_events"]),
    ("topics=appointment.exploded", {}, ["topics"]),
    ("staff_id=x&product_id=0", {}, ["product_id", "staff_id"]),
    ("", {"Last-Event-ID": "abc"}, ["Last-Event-ID"]),
])
@pytest.mark.gen_test(timeout=10)
async def test_bad_parameters_get_400_naming_each(server, path, query, headers, names):
    status, body = await status_of(server.url + path + "?" + query, {**auth(), **headers})
    assert status == 400
    assert_wp_error(body, 400, "rest_invalid_param")
    assert sorted(body["data"]["params"]) == names
    for name in names:
        assert name in body["message"]


# -- browser session -----------------------------------------------------------------------

@pytest.mark.gen_test(timeout=10)
async def test_session_trades_a_token_for_an_httponly_strict_cookie(server):
    token = admin_token()
    resp = await request(server.url + "/session", method="POST",
                         headers={"Content-Type": "application/json"},
                         body=json.dumps({"token": token}).encode())
    assert resp.status == 204
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith("tornado_sse_token=" + token)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    me = await request(server.url + "/api/me", headers={"Cookie": "tornado_sse_token=" + token})
    assert me.json()["role"] == "admin"
    bad = await request(server.url + "/session", method="POST",
                        headers={"Content-Type": "application/json"},
                        body=json.dumps({"token": "nope"}).encode())
    assert bad.status == 401
    assert "set-cookie" not in bad.headers
