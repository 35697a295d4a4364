#!/usr/bin/env python3
"""Bytes on the wire for the calendar's first load, without and with gzip.

What a browser fetches to show the calendar: the page, every stylesheet and
script it names (read from calendar.html, so a new file is counted without
editing this), and the JSON it loads at start (directory, this week's
appointments, availabilities, /api/me). Each is fetched twice from a running
server, once plain and once with ``Accept-Encoding: gzip``, and the body
bytes are summed (headers are left out: they are the same either way).

    python run.py --data-dir /tmp/firstload &      # seeded demo data
    python bench/firstload.py http://127.0.0.1:8888 "$ADMIN_TOKEN"
"""

from __future__ import annotations

import re
import sys
import time
import urllib.request
from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent / "tornado_sse" / "static" / "calendar.html"
WEEK = 7 * 86400
FIRST_MONDAY = 4 * 86400  # 1970-01-05: the epoch began on a Thursday


def assets() -> list[str]:
    """The page and the files it names, in its order."""
    html = PAGE.read_text(encoding="utf-8")
    return ["/", *re.findall(r'(?:src|href)="(/static/[^"]+)"', html)]


def api_paths(now: float) -> list[str]:
    """The JSON the page loads at start (the current week's snapshot)."""
    monday = int((now - FIRST_MONDAY) // WEEK * WEEK + FIRST_MONDAY)
    return ["/api/me", "/api/directory", f"/api/appointments?start={monday}&end={monday + WEEK}",
            "/api/availabilities"]


def body_bytes(url: str, token: str, gzip: bool) -> tuple[int, str]:
    """Bytes of the body as sent, and its Content-Encoding."""
    headers = {"Authorization": "Bearer " + token}
    if gzip:
        headers["Accept-Encoding"] = "gzip"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as resp:
        return len(resp.read()), resp.headers.get("Content-Encoding", "-")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    base, token = argv[0].rstrip("/"), argv[1]
    totals = {"static": [0, 0], "json": [0, 0]}
    print(f"{'path':60} {'plain':>9} {'gzip':>9}")
    for kind, paths in (("static", assets()), ("json", api_paths(time.time()))):
        for path in paths:
            plain, _ = body_bytes(base + path, token, gzip=False)
            packed, encoding = body_bytes(base + path, token, gzip=True)
            totals[kind][0] += plain
            totals[kind][1] += packed
            print(f"{path[:60]:60} {plain:9d} {packed:9d} {encoding}")
    for kind, (plain, packed) in totals.items():
        print(f"total {kind:54} {plain:9d} {packed:9d} ({100 * packed / max(plain, 1):.0f}%)")
    plain = sum(t[0] for t in totals.values())
    packed = sum(t[1] for t in totals.values())
    print(f"{'total first load':60} {plain:9d} {packed:9d} ({100 * packed / max(plain, 1):.0f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
