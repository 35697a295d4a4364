"""Who may listen: JWT checks, token sources and the development secret.

The server fixes the algorithm list (a token's ``alg`` header never chooses
it, which defeats ``alg: none`` and HS256-signed-with-the-public-key
attacks), requires ``exp``, honours ``nbf``, and checks ``aud``/``iss`` when
configured. With ``--jwks-url`` the keys come from the identity provider's
key set (:mod:`tornado_sse.jwks`), chosen by the token's ``kid``. Tokens
are never logged: :func:`redact_uri` masks them wherever
a request target reaches a log line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import jwt
from tornado.httputil import HTTPServerRequest

from .errors import forbidden, unauthorized, unavailable
from .jwks import KeySet
from .settings import MIN_HMAC_SECRET, Settings, SettingsError

COOKIE = "tornado_sse_token"
QUERY_SOURCES = ("token", "nonce", "_wpnonce")
ROLES = ("admin", "staff")
SECRET_FILE = "jwt_secret"

#: The largest staff id a claim may carry (a PostgreSQL bigint).
MAX_ID = 2 ** 63 - 1
#: The latest ``exp`` accepted: 9999-12-31, past which dates cannot be held.
MAX_EXP = 253402300799

#: Anything shaped like a JWT: three base64url segments (padding allowed:
#: PyJWT accepts it), the first two long enough that file names and host
#: names ("index.global.min") stay readable.
_JWT = re.compile(r"[A-Za-z0-9_=-]{10,}\.[A-Za-z0-9_=-]{4,}\.[A-Za-z0-9_=-]*")
MASK = "***"


def mask_tokens(text: str) -> str:
    """``text`` with everything that looks like a JWT masked."""
    return _JWT.sub(MASK, text)


def redact_uri(uri: str) -> str:
    """A request target safe to log: every query parameter whose *decoded*
    name is a token source is masked, however the name was spelt on the wire
    (``%74oken`` is ``token`` to the server, so it is to the log too), and so
    is anything that looks like a JWT wherever it is (``?token%00=<jwt>``
    was logged whole: its name is not ``token`` once decoded)."""
    path, sep, query = uri.partition("?")
    path = quote(mask_tokens(unquote(path, errors="replace")), safe="/*")
    if not sep:
        return path
    pairs = parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="replace")
    shown = [f"{quote(mask_tokens(k), safe='*')}="
             f"{MASK if k.strip().lower() in QUERY_SOURCES else quote(mask_tokens(v), safe='*')}"
             for k, v in pairs]
    return path + "?" + "&".join(shown)


class RedactTokens(logging.Filter):
    """Masks JWT-shaped text in every record a handler emits: a token that
    reaches a message by a path nobody thought of (a header quoted in an
    error) still never reaches the log (SPEC §7)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_tokens(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


@dataclass(frozen=True)
class Principal:
    """An authenticated listener."""

    role: str
    staff_id: int | None
    expires_at: float | None  # epoch seconds
    #: Stands for the token in per-token limits without keeping the token.
    token_key: str = ""
    #: The token's ``sub`` claim (who, for the actor of a write), if any.
    subject: str | None = None

    @property
    def audience_staff_id(self) -> int | None:
        """The staff scope the hub applies: None for admins (everything)."""
        return self.staff_id if self.role == "staff" else None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def development_secret(data_dir: Path) -> str:
    """The secret kept in the data folder, made on first use (0600)."""
    path = data_dir / SECRET_FILE
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret + "\n")
    return secret


def signing_secret(settings: Settings) -> str:
    """The HMAC secret tokens are signed and checked with.

    The development secret is for the embedded database only: a server given
    a real database (``--dsn``) and no key would otherwise run in production
    on a secret nobody chose and print a 12 h admin token (SPEC §7: exit 2).
    """
    if settings.jwt_secret:
        return settings.jwt_secret
    if settings.dsn is not None:
        raise SettingsError("--jwt-secret: a server on --dsn/DATABASE_URL needs --jwt-secret (at least "
                            f"{MIN_HMAC_SECRET} bytes) or --jwt-public-key; the development secret is only "
                            "for the embedded database")
    return development_secret(settings.data_dir)


class Authenticator:
    """Checks tokens against the server's key and algorithms."""

    def __init__(self, settings: Settings) -> None:
        self._algorithms = list(settings.jwt_algorithms)
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._leeway = settings.jwt_leeway
        #: The identity provider's keys (--jwks-url), or None.
        self.jwks: KeySet | None = None
        self._key: Any = None
        if settings.jwks_url is not None:
            self.jwks = KeySet(settings.jwks_url, issuer=self._issuer, algorithms=settings.jwt_algorithms,
                               refresh_every=settings.jwks_refresh, min_interval=settings.jwks_min_interval)
        elif settings.jwt_public_key is not None:
            self._key = _load_public_key(settings.jwt_public_key, self._algorithms)
        else:
            self._key = signing_secret(settings)

    def authenticate(self, request: HTTPServerRequest) -> Principal:
        """The request's principal, or ApiError 401/403 (SPEC §4)."""
        token = find_token(request)
        if token is None:
            raise unauthorized("no token was sent", error="invalid_request")
        return self.check(token)

    def key_status(self) -> dict[str, Any] | None:
        """The JWKS cache's state for readiness (None without --jwks-url)."""
        return None if self.jwks is None else self.jwks.status()

    def _verification_key(self, token: str) -> tuple[Any, list[str]]:
        """The key and algorithms to check ``token`` with: the configured
        ones, or the JWKS key its ``kid`` names, with the algorithms that
        key fixes (never the token's ``alg``)."""
        if self.jwks is None:
            return self._key, self._algorithms
        if not self.jwks.loaded:
            # Transient, not the token's fault: readiness says not ready meanwhile.
            raise unavailable("The identity provider's keys are not loaded yet; retry shortly.")
        kid = jwt.get_unverified_header(token).get("kid")
        if not isinstance(kid, str) or not kid:
            raise unauthorized("the token has no kid header naming its key")
        issuer = self._issuer
        if issuer is not None and jwt.decode(token, options={"verify_signature": False}).get("iss") != issuer:
            raise unauthorized("the token is not for this server (issuer)")
        published = self.jwks.find(issuer, kid)
        if published is None:
            # The background task refreshes (rate-bounded); a rotated-in key
            # verifies on a later request, this one is not kept waiting.
            raise unauthorized("the token's key (kid) is not in the identity provider's key set")
        return published.key, list(published.algorithms)

    def check(self, token: str) -> Principal:
        try:
            key, algorithms = self._verification_key(token)
            claims = jwt.decode(
                token, key, algorithms=algorithms,
                audience=self._audience, issuer=self._issuer, leeway=self._leeway,
                options={"require": ["exp"], "verify_aud": self._audience is not None})
        except jwt.ExpiredSignatureError:
            raise unauthorized("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise unauthorized("the token is not valid yet") from None
        except jwt.InvalidSignatureError:
            raise unauthorized("the token signature does not verify") from None
        except jwt.InvalidAlgorithmError:
            raise unauthorized("the token is signed with an algorithm this server does not accept") from None
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError) as exc:
            raise unauthorized(f"the token is not for this server ({exc})") from None
        except jwt.MissingRequiredClaimError as exc:
            raise unauthorized(f"the token lacks a claim ({exc})") from None
        except (jwt.PyJWTError, OverflowError, ValueError, TypeError, RecursionError):
            # PyJWT lets a few hostile claims through as plain errors
            # (exp = 10**400 overflows a float comparison).
            raise unauthorized("the token is malformed") from None
        role = _role(claims)
        if role is None:
            raise forbidden("Only admins and staff may listen.")
        staff_id = _staff_id(claims.get("staff_id")) if role == "staff" else None
        if role == "staff" and staff_id is None:
            raise unauthorized("a staff token must carry a staff_id of ASCII digits")
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool) or exp > MAX_EXP \
                or (isinstance(exp, float) and not math.isfinite(exp)):
            raise unauthorized("the token's exp is out of range")
        sub = claims.get("sub")
        return Principal(role=role, staff_id=staff_id, expires_at=float(exp) + self._leeway,
                         token_key=_token_key(claims),
                         subject=_subject(sub))


def _subject(sub: object) -> str | None:
    """The ``sub`` claim as the actor of a write names it, bounded; an
    integer subject counts too (some identity providers issue numbers)."""
    if isinstance(sub, bool):
        return None
    if isinstance(sub, str) and sub:
        return sub[:200]
    return str(sub) if isinstance(sub, int) else None


def _token_key(claims: dict[str, Any]) -> str:
    """Per-token limits key on the verified claims, not the token's text:
    PyJWT decodes ``sig`` and ``sig=`` (and other spellings of the same
    bytes) alike, so keying on the text let one token count as two."""
    canonical = json.dumps(claims, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8", "replace")).hexdigest()[:24]


def _staff_id(value: Any) -> int | None:
    """A claim's staff id: a positive bigint, as a number or ASCII digits
    (``isdigit()`` alone accepts "²" and "١٢", which ``int()`` then rejects
    or reads differently)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        return None
    return value


def _role(claims: dict[str, Any]) -> str | None:
    """``role``, or the strongest of a ``roles`` list."""
    candidates: list[Any] = []
    if "role" in claims:
        candidates.append(claims["role"])
    if isinstance(claims.get("roles"), list):
        candidates.extend(claims["roles"])
    for role in ROLES:  # admin first: the stronger role wins
        if role in candidates:
            return role
    return None


def find_token(request: HTTPServerRequest) -> str | None:
    """The first token in SPEC §4 order: Bearer, X-WP-Nonce, query, cookie."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer " and header[7:].strip():
        return header[7:].strip()
    nonce = request.headers.get("X-WP-Nonce", "").strip()
    if nonce:
        return nonce
    for name in QUERY_SOURCES:
        values = request.query_arguments.get(name)
        if values and values[0].strip():
            return values[0].decode("utf-8", "replace").strip()
    morsel = request.cookies.get(COOKIE)
    if morsel is not None and morsel.value:
        return morsel.value
    return None


def _load_public_key(path: Path, algorithms: list[str]) -> Any:
    """Load the PEM key and prove it fits the algorithms, at start-up."""
    pem = path.read_bytes()
    for alg in algorithms:
        try:
            key = jwt.get_algorithm_by_name(alg).prepare_key(pem)
        except (jwt.InvalidKeyError, ValueError, TypeError) as exc:
            raise SettingsError(f"--jwt-public-key: does not fit {alg}: {exc}") from None
        if hasattr(key, "private_bytes"):
            raise SettingsError("--jwt-public-key: is a private key; give the server only the public key")
    return pem


def issue_token(secret: str, *, role: str, staff_id: int | None = None, ttl: int = 3600,
                algorithm: str = "HS256", **claims: Any) -> str:
    """A signed token, as ``run.py token`` prints it."""
    now = int(time.time())
    body: dict[str, Any] = {"role": role, "iat": now, "exp": now + ttl, **claims}
    if staff_id is not None:
        body["staff_id"] = staff_id
    return jwt.encode(body, secret, algorithm=algorithm)
