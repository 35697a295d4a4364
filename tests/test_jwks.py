"""Keys from an identity provider's JWKS (SPEC §4), against a real key-set server.

The identity provider is a small Tornado app on 127.0.0.1 whose published
key set each test changes as a provider does during a rotation (old only,
old and new, new only) and which a test can take down. The tornado_sse
server fetches it over real HTTP in its background task.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from tests.fix_db import insert_appointment
from tornado_sse.jwks import KeySet, parse_key_set
from tornado_sse.settings import Settings, SettingsError
from tornado_sse.testing.sse_client import Response, SSEConnection, open_stream, request

pytestmark = pytest.mark.pg_independent  # key sets and tokens, not PostgreSQL's version

ISSUER = "https://idp.example/"
AUDIENCE = "tornado-sse"


class Signer:
    """A private key the identity provider signs with, and its public JWK."""

    def __init__(self, kid: str, kind: str = "RSA") -> None:
        self.kid = kid
        if kind == "RSA":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.alg = "RS256"
            self.jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.alg = "ES256"
            self.jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key()))
        self.jwk.update({"kid": kid, "use": "sig", "alg": self.alg})

    def token(self, ttl: float = 600, alg: str | None = None, **claims: Any) -> str:
        body = {"role": "admin", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time() + ttl), **claims}
        return jwt.encode(body, self.private, algorithm=alg or self.alg, headers={"kid": self.kid})

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)


class IdentityProvider:
    """Publishes ``keys`` at ``url`` until :meth:`down`; counts fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        provider = self

        class JwksHandler(RequestHandler):
            def get(self) -> None:
                provider.fetches += 1
                self.set_header("Content-Type", "application/json")
                self.finish(json.dumps({"keys": provider.keys}))

        sockets = bind_sockets(0, "127.0.0.1")
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/.well-known/jwks.json"
        self._http = HTTPServer(Application([(r"/.well-known/jwks.json", JwksHandler)]))
        self._http.add_sockets(sockets)

    def publish(self, *signers: Signer) -> None:
        self.keys = [s.jwk for s in signers]

    async def down(self) -> None:
        self._http.stop()
        await self._http.close_all_connections()


@pytest.fixture(scope="module")
def old() -> Signer:
    return Signer("old-" + uuid.uuid4().hex[:6])


@pytest.fixture(scope="module")
def new() -> Signer:
    return Signer("new-" + uuid.uuid4().hex[:6], kind="EC")


@pytest.fixture
def idp(io_loop: Any) -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    yield provider
    io_loop.run_sync(provider.down)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token}


async def answer(url: str, token: str) -> tuple[int, str]:
    """The status of a /poll with ``token`` and its WWW-Authenticate challenge."""
    resp = await request(url + "/poll", headers=bearer(token))
    assert isinstance(resp, Response)
    return resp.status, resp.headers.get("www-authenticate", "")


async def until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def jwks_server(make_server: Any, idp: IdentityProvider, **overrides: Any) -> Any:
    values: dict[str, Any] = {"jwt_secret": None, "jwks_url": idp.url, "jwt_algorithms": ("RS256", "ES256"),
                              "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE, "jwt_leeway": 0,
                              "jwks_min_interval": 0.3, "jwks_refresh": 60}
    values.update(overrides)
    server = await make_server(**values)
    jwks = server.ctx.auth.jwks
    await until(lambda: _true(jwks.loaded))
    return server


async def _true(value: bool) -> bool:
    return value


# -- rotation ------------------------------------------------------------------

@pytest.mark.gen_test(timeout=40)
async def test_rotation_old_stream_lives_until_exp_while_new_tokens_verify(make_server, idp, old, new, db):
    idp.publish(old)
    server = await jwks_server(make_server, idp)
    short = old.token(ttl=4)
    stream = await open_stream(server.url + "/sse", bearer(short))
    opened = time.time()

    # The provider starts the rotation: both keys published. The first token
    # with the new kid is refused at once (no fetch on the request path) and
    # makes the background task refresh; then both keys verify.
    idp.publish(old, new)
    status, challenge = await answer(server.url, new.token())
    assert status == 401 and 'error="invalid_token"' in challenge and "kid" in challenge
    await until(lambda: _status_is(server.url, new.token(), 200))
    assert (await answer(server.url, old.token()))[0] == 200

    # The old key is withdrawn: new requests with it fail once the cache
    # has refreshed, but the stream opened with it lives on until its exp.
    idp.publish(new)
    await server.ctx.auth.jwks.refresh()
    assert (await answer(server.url, old.token()))[0] == 401
    assert (await answer(server.url, new.token()))[0] == 200
    insert_appointment(db)
    event = await stream.next(timeout=3)
    assert event.event == "appointment.created"
    assert await stream.wait_end(8) == "finished"
    assert time.time() >= opened + 2.5  # ended by the token's exp, not by the rotation


async def _status_is(url: str, token: str, status: int) -> bool:
    return (await answer(url, token))[0] == status


@pytest.mark.gen_test(timeout=20)
async def test_unknown_kids_are_401_and_share_one_refresh_per_interval(make_server, idp, old):
    idp.publish(old)
    server = await jwks_server(make_server, idp, jwks_min_interval=2.0, jwks_refresh=60)
    before = idp.fetches
    started = time.monotonic()
    for _ in range(30):
        stranger = Signer("kid-" + uuid.uuid4().hex[:8], kind="EC")
        status, challenge = await answer(server.url, stranger.token())
        assert status == 401 and 'error="invalid_token"' in challenge
    await asyncio.sleep(max(0.0, 2.5 - (time.monotonic() - started)))
    # 30 unknown kids in about 2.5 s: at most one fetch per 2 s interval.
    assert idp.fetches - before <= 2, idp.fetches - before
    assert idp.fetches - before >= 1  # the misses did ask for a refresh
    assert (await answer(server.url, old.token()))[0] == 200


@pytest.mark.gen_test(timeout=20)
async def test_jwks_server_down_cached_keys_keep_working_and_status_says_so(make_server, idp, old):
    idp.publish(old)
    server = await jwks_server(make_server, idp)
    assert server.ctx.auth.key_status()["stale"] is False
    await idp.down()
    assert await server.ctx.auth.jwks.refresh() is False
    status = server.ctx.auth.key_status()
    assert status["ready"] is True and status["stale"] is True and status["keys"] == 1
    assert "unreachable" in status["error"]
    assert (await answer(server.url, old.token()))[0] == 200
    conn = await open_stream(server.url + "/sse", bearer(old.token()))
    conn.close()


@pytest.mark.gen_test(timeout=20)
async def test_before_the_first_fetch_requests_get_503_not_401(make_server, idp, old):
    await idp.down()  # the provider is down when the server starts
    server = await make_server(jwt_secret=None, jwks_url=idp.url, jwt_algorithms=("RS256",),
                               jwks_min_interval=0.3, jwks_refresh=60)
    await until(lambda: _true(server.ctx.auth.jwks.fetches >= 1))
    resp = await request(server.url + "/poll", headers=bearer(old.token()))
    assert isinstance(resp, Response) and resp.status == 503 and resp.headers["retry-after"]
    assert server.ctx.auth.key_status()["ready"] is False


# -- the key fixes the algorithm; iss and aud ------------------------------------

@pytest.mark.gen_test(timeout=20)
async def test_the_key_fixes_the_algorithm_and_iss_aud_are_checked(make_server, idp, old):
    idp.publish(old)
    server = await jwks_server(make_server, idp)
    # The key says RS256: a token of the same key under RS384 is refused.
    assert (await answer(server.url, old.token(alg="RS384")))[0] == 401
    assert (await answer(server.url, old.token(iss="https://other.example/")))[0] == 401
    assert (await answer(server.url, old.token(aud="another-service")))[0] == 401
    unsigned = jwt.encode({"role": "admin", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 600},
                          old.private, algorithm="RS256")  # no kid header
    status, challenge = await answer(server.url, unsigned)
    assert status == 401 and "kid" in challenge
    assert (await answer(server.url, old.token()))[0] == 200


@pytest.mark.gen_test(timeout=20)
async def test_hs256_token_keyed_with_the_public_key_is_refused(make_server, idp, old):
    """The classic confusion: alg HS256, HMAC keyed with the RSA public key."""
    import base64
    import hashlib
    import hmac

    idp.publish(old)
    server = await jwks_server(make_server, idp)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": old.kid}).encode())
    body = b64(json.dumps({"role": "admin", "iss": ISSUER, "aud": AUDIENCE,
                           "exp": int(time.time()) + 600}).encode())
    for secret in (old.public_pem(), json.dumps(old.jwk).encode()):
        sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
        status, challenge = await answer(server.url, f"{head}.{body}.{sig}")
        assert status == 401 and "algorithm" in challenge, challenge


# -- file://, settings, parsing -----------------------------------------------------

@pytest.mark.gen_test(timeout=20)
async def test_file_url_serves_keys(make_server, old, tmp_path: Path):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [old.jwk]}))
    server = await make_server(jwt_secret=None, jwks_url=path.as_uri(), jwt_algorithms=("RS256",),
                               jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    await until(lambda: _true(server.ctx.auth.jwks.loaded))
    conn = await request(server.url + "/sse", headers=bearer(old.token()))
    assert isinstance(conn, SSEConnection) and conn.status == 200
    conn.close()


@pytest.mark.parametrize("overrides, message", [
    ({"jwks_url": "http://idp.example/jwks.json"}, "https://"),
    ({"jwks_url": "ftp://idp.example/jwks.json"}, "https://"),
    ({"jwks_url": "https://idp.example/jwks", "jwt_algorithms": ("HS256",)}, "RS256"),
    ({"jwks_url": "https://idp.example/jwks", "jwt_secret": "x" * 40}, "not both"),
    ({"jwks_url": "https://idp.example/jwks", "jwks_min_interval": 0}, "min-interval"),
])
def test_bad_jwks_settings_name_the_option(overrides, message):
    values: dict[str, Any] = {"jwt_algorithms": ("RS256",), **overrides}
    with pytest.raises(SettingsError, match=message):
        Settings(**values)


def test_key_set_parsing_skips_unusable_keys(old, new):
    private = dict(old.jwk, kid="leaked", d="AAAA")
    enc = dict(old.jwk, kid="enc", use="enc")
    hmac_key = {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"}
    no_kid = {k: v for k, v in old.jwk.items() if k != "kid"}
    wrong_alg = dict(new.jwk, kid="es", alg="ES256")
    keys = parse_key_set({"keys": [private, enc, hmac_key, no_kid, wrong_alg, old.jwk, "junk"]},
                         ISSUER, ("RS256",))
    assert list(keys) == [(ISSUER, old.kid)]
    assert keys[(ISSUER, old.kid)].algorithms == ("RS256",)
    with pytest.raises(Exception, match="no usable key"):
        parse_key_set({"keys": [private]}, ISSUER, ("RS256",))


@pytest.mark.gen_test(timeout=10)
async def test_a_broken_publication_keeps_the_working_keys(idp, old):
    idp.publish(old)
    keys = KeySet(idp.url, issuer=None, algorithms=("RS256",), min_interval=0.1)
    assert await keys.refresh() is True
    idp.keys = [{"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"}]
    assert await keys.refresh() is False
    assert keys.find(None, old.kid) is not None and keys.status()["stale"] is True
    await keys.stop()
