"""Everything a handler may use, built once at start-up and passed to
handlers through ``initialize`` (no module-level state)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .auth import Authenticator
from .hub import Hub
from .listener import Listener
from .metrics import Metrics
from .pool import CheckedPool
from .quota import StreamQuota
from .readiness import Readiness
from .settings import Settings
from .snapshots import SnapshotGate
from .stream import Ticker
from .tracing import Tracing


@dataclass
class Context:
    """Shared by every handler of one server process."""

    settings: Settings
    hub: Hub
    pool: CheckedPool
    listener: Listener
    ticker: Ticker
    auth: Authenticator
    metrics: Metrics
    quota: StreamQuota
    readiness: Readiness
    snapshots: SnapshotGate
    #: Requests being handled now; shutdown lets them finish (bounded).
    inflight: int = 0
    #: OpenTelemetry spans, when the packages are installed.
    tracing: Tracing = field(default_factory=Tracing)
