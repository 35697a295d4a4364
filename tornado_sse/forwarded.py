"""Where the browser really is: the origin it reached us at, behind a proxy.

Behind the documented nginx with TLS, the server sees ``http://host`` while
the browser is on ``https://host``: ``POST /session`` from the calendar's
own origin was refused 403, and without an Origin the cookie lacked
``Secure``. The browser's origin is therefore ``--public-origin`` when set,
and otherwise what ``X-Forwarded-Proto``/``X-Forwarded-Host`` say, believed
only from a peer in ``--trusted-proxies`` (anyone can send the headers).
"""

from __future__ import annotations

import functools
import ipaddress

from tornado.httputil import HTTPServerRequest

from .settings import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)  # validated in settings


def from_trusted_proxy(request: HTTPServerRequest, settings: Settings) -> bool:
    """Whether the peer is a proxy whose forwarding headers are believed."""
    if not settings.trusted_proxies or not request.remote_ip:
        return False
    try:
        peer = ipaddress.ip_address(request.remote_ip)
    except ValueError:
        return False
    return any(peer in network for network in _networks(settings.trusted_proxies))


def _first(value: str) -> str:
    """The value the proxy nearest the client set (a chain appends)."""
    return value.split(",")[0].strip()


def request_origin(request: HTTPServerRequest, settings: Settings) -> str:
    """The origin this request reached, as the browser sees it."""
    scheme, host = request.protocol, request.host
    if from_trusted_proxy(request, settings):
        proto = _first(request.headers.get("X-Forwarded-Proto", "")).lower()
        if proto in ("http", "https"):
            scheme = proto
        host = _first(request.headers.get("X-Forwarded-Host", "")) or host
    return f"{scheme}://{host}".lower()


def own_origins(request: HTTPServerRequest, settings: Settings) -> set[str]:
    """Origins that are this server's own: the public one and the one the
    request reached."""
    origins = {request_origin(request, settings)}
    if settings.public_origin:
        origins.add(settings.public_origin.lower())
    return origins


def is_https(request: HTTPServerRequest, settings: Settings) -> bool:
    """Whether the browser talks HTTPS to us (the cookie is then ``Secure``)."""
    if request_origin(request, settings).startswith("https://"):
        return True
    return bool(settings.public_origin and settings.public_origin.lower().startswith("https://"))
