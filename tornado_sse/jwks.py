"""Keys from an identity provider's JWKS (SPEC §4), never fetched on the request path.

Auth0, Keycloak, Cognito and every other identity provider publish their
signing keys as a JSON Web Key Set and rotate them: for a while both the old
and the new key are published, then the old one goes. :class:`KeySet` keeps
a copy of the published keys, cached by ``(issuer, kid)``, and refreshes it
in a background task:

- every ``--jwks-refresh`` seconds, and sooner when a token names a ``kid``
  the cache does not hold (a rotation has started), but never more than one
  fetch per ``--jwks-min-interval``: a flood of tokens with invented kids
  costs the identity provider one request per interval, not one per token;
- a request never waits for a fetch (PyJWT's ``PyJWKClient`` fetches with a
  blocking ``urlopen`` on a cache miss, which would stall every stream of
  the process behind the identity provider; it is not used). A token whose
  key is unknown gets 401 ``invalid_token`` at once; the same token works
  once the refresh has landed;
- a failed fetch keeps the cached keys (an identity-provider outage must not
  log out every calendar) and says so in :meth:`KeySet.status`, which
  readiness reports.

The algorithm is fixed by the key, not by the token: a key's ``alg`` (or,
without one, its ``kty``/``crv``) names the algorithms it verifies, and only
those in the server's ``--jwt-algorithms`` list. That defeats a token that
claims ``HS256`` and is "signed" with the RSA public key as an HMAC secret.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.httputil import HTTPInputError
from tornado.iostream import StreamClosedError

log = logging.getLogger("tornado_sse.jwks")

#: Largest key set accepted, bytes: real ones are a few KB.
MAX_JWKS_BYTES = 1 << 20
#: Seconds a fetch may take before it counts as failed.
FETCH_TIMEOUT = 10.0
#: Hosts an ``http://`` key set may live on: the bytes never leave the machine.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
#: The algorithms an EC key verifies, by curve (RFC 7518 §3.4).
_EC_CURVES = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


class KeySetError(Exception):
    """The key set could not be fetched or holds no usable key."""


@dataclass(frozen=True)
class PublishedKey:
    """One verification key and the algorithms it may verify."""

    key: Any
    algorithms: tuple[str, ...]


def key_algorithms(jwk: dict[str, Any], allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The algorithms ``jwk`` may verify: its ``alg``, or those its type
    implies, and only those the server allows. Empty: the key is unusable."""
    alg = jwk.get("alg")
    if alg is not None:
        return (alg,) if alg in allowed else ()
    kty = jwk.get("kty")
    if kty == "RSA":
        return tuple(a for a in allowed if a.startswith("RS"))
    if kty == "EC":
        implied = _EC_CURVES.get(jwk.get("crv", ""))
        return (implied,) if implied in allowed else ()
    return ()  # "oct" (a shared secret has no place in a public set), OKP, unknown


def parse_key_set(document: Any, issuer: str | None,
                  allowed: tuple[str, ...]) -> dict[tuple[str | None, str], PublishedKey]:
    """The usable signing keys of a JWKS document, by ``(issuer, kid)``.

    Skipped: keys without a ``kid`` (a token could not choose them), keys for
    encryption (``use: enc``), private keys (a set that publishes ``d`` is a
    leak; verifying with it would hide that), symmetric keys, and keys whose
    algorithm the server does not allow. Raises :class:`KeySetError` when
    none is left, so a broken publication never replaces working keys.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeySetError("the document is not a JWKS (no 'keys' list)")
    keys: dict[tuple[str | None, str], PublishedKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict):
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid or jwk.get("use", "sig") != "sig" or "d" in jwk:
            continue
        algorithms = key_algorithms(jwk, allowed)
        if not algorithms:
            continue
        try:
            key = jwt.PyJWK(jwk, algorithm=algorithms[0]).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            log.warning("JWKS key %r skipped: %s", kid[:64], exc)
            continue
        keys[(issuer, kid)] = PublishedKey(key, algorithms)
    if not keys:
        raise KeySetError(f"no usable key (allowed algorithms: {', '.join(allowed)})")
    return keys


def check_url(url: str) -> str | None:
    """Why ``url`` cannot serve as ``--jwks-url``, or None when it can.

    ``https://`` or ``file://``; ``http://`` only to a loopback address (a
    sidecar or a test), since a key set read over a network in clear text
    lets whoever sits on the path mint tokens.
    """
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "file" and parts.path:
        return None
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return None
    return "must be an https:// or file:// URL (http:// only to 127.0.0.1, ::1 or localhost)"


class KeySet:
    """The cached keys of one JWKS URL and the task that keeps them fresh."""

    def __init__(self, url: str, *, issuer: str | None, algorithms: tuple[str, ...],
                 refresh_every: float = 300.0, min_interval: float = 30.0,
                 timeout: float = FETCH_TIMEOUT) -> None:
        self.url = url
        self.issuer = issuer
        self._allowed = algorithms
        self._refresh_every = refresh_every
        self._min_interval = min_interval
        self._timeout = timeout
        self._keys: dict[tuple[str | None, str], PublishedKey] = {}
        #: Wall-clock time of the last successful fetch (None: never).
        self.loaded_at: float | None = None
        #: Why the last fetch failed (None after a success).
        self.last_error: str | None = None
        #: Fetches attempted, successful or not (the rate bound is tested on it).
        self.fetches = 0
        self._last_attempt = -float("inf")  # monotonic
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: AsyncHTTPClient | None = None

    # -- the request path: lookups only --------------------------------------
    def find(self, issuer: str | None, kid: str) -> PublishedKey | None:
        """The key for ``(issuer, kid)``; on a miss, ask the background task
        for a refresh (rate-bounded) and answer None at once."""
        key = self._keys.get((issuer, kid))
        if key is None and self._wake is not None:
            self._wake.set()
        return key

    @property
    def loaded(self) -> bool:
        return self.loaded_at is not None

    def status(self) -> dict[str, Any]:
        """What readiness reports: ``ready`` once keys are loaded (a failing
        refresh keeps them, marked ``stale``, and stays ready: taking every
        server out of rotation because the identity provider is down would
        turn its outage into ours)."""
        return {
            "ready": self.loaded,
            "stale": self.last_error is not None,
            "keys": len(self._keys),
            "age": None if self.loaded_at is None else round(time.time() - self.loaded_at, 1),
            "error": self.last_error,
        }

    # -- the background task ---------------------------------------------------
    def start(self) -> None:
        """Fetch now and then keep refreshing, on the running loop."""
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="tornado_sse.jwks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            try:
                ok = await self.refresh()
            except Exception:  # a bug must not stop the refreshes for good
                log.exception("JWKS %s: refresh crashed", self.url)
                ok = False
            # A failure is retried sooner than the routine refresh.
            try:
                await asyncio.wait_for(self._wake.wait(), self._refresh_every if ok else self._min_interval)
            except asyncio.TimeoutError:
                pass
            # The rate bound: every kid miss in the meantime shares one fetch.
            since = time.monotonic() - self._last_attempt
            if since < self._min_interval:
                await asyncio.sleep(self._min_interval - since)
            self._wake.clear()

    async def refresh(self) -> bool:
        """Fetch and swap in the published keys; on failure keep the old ones."""
        self._last_attempt = time.monotonic()
        self.fetches += 1
        try:
            body = await self._fetch()
            try:
                document = json.loads(body)
            except (ValueError, RecursionError):
                raise KeySetError("the answer is not JSON") from None
            keys = parse_key_set(document, self.issuer, self._allowed)
        except KeySetError as exc:
            if self.last_error != str(exc):
                log.warning("JWKS %s: refresh failed, %s cached keys kept: %s",
                            self.url, len(self._keys), exc)
            self.last_error = str(exc)
            return False
        added = keys.keys() - self._keys.keys()
        removed = self._keys.keys() - keys.keys()
        if added or removed or self.last_error is not None:
            log.info("JWKS %s: %d keys (added %s, removed %s)", self.url, len(keys),
                     sorted(k for _, k in added), sorted(k for _, k in removed))
        self._keys = keys
        self.loaded_at = time.time()
        self.last_error = None
        return True

    async def _fetch(self) -> bytes:
        parts = urlsplit(self.url)
        if parts.scheme == "file":
            try:
                data = await asyncio.to_thread(_read_file, Path(parts.path))
            except OSError as exc:
                raise KeySetError(f"cannot read {parts.path}: {exc.strerror}") from None
        else:
            if self._client is None:
                # Its own client: the size cap must not apply to anyone else's.
                self._client = AsyncHTTPClient(force_instance=True, max_body_size=MAX_JWKS_BYTES)
            try:
                response = await self._client.fetch(
                    self.url, request_timeout=self._timeout, connect_timeout=self._timeout,
                    follow_redirects=False, headers={"Accept": "application/json"})
            except HTTPClientError as exc:
                raise KeySetError(f"HTTP {exc.code}") from None
            except (OSError, asyncio.TimeoutError, HTTPInputError, StreamClosedError) as exc:
                raise KeySetError(f"unreachable: {exc}") from None
            data = response.body
        if len(data) > MAX_JWKS_BYTES:
            raise KeySetError(f"larger than {MAX_JWKS_BYTES} bytes")
        return data


def _read_file(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(MAX_JWKS_BYTES + 1)
