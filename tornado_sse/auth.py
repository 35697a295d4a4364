"""Who may listen: JWT checks, token sources and the development secret.

The server fixes the algorithm list (a token's ``alg`` header never chooses
it, which defeats ``alg: none`` and HS256-signed-with-the-public-key
attacks), requires ``exp``, honours ``nbf``, and checks ``aud``/``iss`` when
configured. Tokens are never logged: :func:`redact_uri` masks them wherever
a request target reaches a log line.
"""

from __future__ import annotations

import hashlib
import math
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import jwt
from tornado.httputil import HTTPServerRequest

from .errors import forbidden, unauthorized
from .settings import Settings, SettingsError

COOKIE = "tornado_sse_token"
QUERY_SOURCES = ("token", "nonce", "_wpnonce")
ROLES = ("admin", "staff")
SECRET_FILE = "jwt_secret"

#: The largest staff id a claim may carry (a PostgreSQL bigint).
MAX_ID = 2 ** 63 - 1
#: The latest ``exp`` accepted: 9999-12-31, past which dates cannot be held.
MAX_EXP = 253402300799

def redact_uri(uri: str) -> str:
    """A request target safe to log: every query parameter whose *decoded*
    name is a token source is masked, however the name was spelt on the wire
    (``%74oken`` is ``token`` to the server, so it is to the log too)."""
    path, sep, query = uri.partition("?")
    if not sep:
        return uri
    pairs = parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="replace")
    shown = [f"{quote(k, safe='')}={'***' if k.strip().lower() in QUERY_SOURCES else quote(v, safe='')}"
             for k, v in pairs]
    return path + "?" + "&".join(shown)


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
    """The HMAC secret tokens are signed and checked with."""
    return settings.jwt_secret or development_secret(settings.data_dir)


class Authenticator:
    """Checks tokens against the server's key and algorithms."""

    def __init__(self, settings: Settings) -> None:
        self._algorithms = list(settings.jwt_algorithms)
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._leeway = settings.jwt_leeway
        if settings.jwt_public_key is not None:
            self._key: Any = _load_public_key(settings.jwt_public_key, self._algorithms)
        else:
            self._key = signing_secret(settings)

    def authenticate(self, request: HTTPServerRequest) -> Principal:
        """The request's principal, or ApiError 401/403 (SPEC §4)."""
        token = find_token(request)
        if token is None:
            raise unauthorized("no token was sent", error="invalid_request")
        return self.check(token)

    def check(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token, self._key, algorithms=self._algorithms,
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
                         token_key=hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:24],
                         subject=sub[:200] if isinstance(sub, str) and sub else None)


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
