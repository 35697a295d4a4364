"""Render a bench/run.py result document as Markdown (tables, ratios, targets).

Values are medians over rounds; every figure comes from the result document
(bench/results/latest.json), so a report can be rendered again from it.
"""

from __future__ import annotations

import statistics
from typing import Any

SYSTEMS = ("tornado_sse", "nchan", "starlette", "pyfloor")
Doc = dict[str, Any]


def _med(xs: list[Any]) -> float | None:
    xs = [x for x in xs if isinstance(x, (int, float))]
    return statistics.median(xs) if xs else None


def _get(r: Doc, path: str) -> Any:
    """The value at a dotted path of a round's result, or None."""
    cur: Any = r
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _fmt(x: Any, nd: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        return f"{x:.{nd}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _ratio(a: float | None, b: float | None, higher_better: bool) -> str:
    if a is None or b is None or a <= 0 or b <= 0:
        return "–"
    r = a / b if higher_better else b / a
    return f"{r:.2f}×"


def metrics(doc: Doc) -> list[tuple[str, str, str, bool, int]]:
    """(scenario, label, path in a round's result, higher is better, decimals)."""
    return [
        ("burst", "frames/s (median)", "frames_per_sec", True, 0),
        ("burst", "first publish → last frame, s", "secs", False, 3),
        ("burst", "publish loop, s", "publish_secs", False, 3),
        ("burst", "lost + duplicate frames (all rounds)", "@lost", False, 0),
        ("burst", "server CPU, s", "cpu.server", False, 2),
        ("burst", "load client CPU, s", "cpu.client", False, 2),
        ("burst", "PostgreSQL CPU, s", "cpu.postgres", False, 2),
        ("burst", "driver (publisher) CPU, s", "cpu.driver", False, 2),
        ("burst", "other processes' CPU (noise), s", "cpu.other", False, 2),
        ("paced", "publish → client p50, ms", "latency_publish_ms.p50", False, 1),
        ("paced", "publish → client p99, ms", "latency_publish_ms.p99", False, 1),
        ("paced", "publish → client max, ms", "latency_publish_ms.max", False, 1),
        ("paced", "commit (POST) returned → client p50, ms", "latency_commit_ms.p50", False, 1),
        ("paced", "commit (POST) returned → client p99, ms", "latency_commit_ms.p99", False, 1),
        ("paced", "commit (POST) returned → client max, ms", "latency_commit_ms.max", False, 1),
        ("paced", "lost + duplicate frames", "@lost", False, 0),
        ("paced", "server CPU, s", "cpu.server", False, 2),
        ("paced", "load client CPU, s", "cpu.client", False, 2),
        ("paced", "PostgreSQL CPU, s", "cpu.postgres", False, 2),
        ("paced", "driver (publisher) CPU, s", "cpu.driver", False, 2),
        ("paced", "other processes' CPU (noise), s", "cpu.other", False, 2),
        ("idle", "KB per idle stream", "kb_per_stream", False, 1),
        ("idle", "server RSS, 0 streams → N, MB", "@rss", False, 0),
        ("idle", "server CPU while idle, %", "server_cpu_pct", False, 2),
        ("idle", "load client CPU while idle, s", "cpu.client", False, 2),
        ("idle", "other processes' CPU (noise), s", "cpu.other", False, 2),
        ("idle", "time to open N streams, s", "open_secs", False, 1),
    ]


def scenario_value(rounds: list[Doc], path: str) -> Any:
    ok = [r for r in rounds if "error" not in r or "verify" in r]
    if path == "@lost":
        tot = 0
        seen = False
        for r in rounds:
            v = r.get("verify")
            if v:
                seen = True
                tot += v["lost_frames"] + v["duplicate_frames"] + v["unexpected_frames"]
        return tot if seen else None
    if path == "@rss":
        a = _med([r.get("rss0_mb") for r in ok])
        b = _med([r.get("rss_mb") for r in ok])
        return None if a is None else f"{a:.0f} → {b:.0f}"
    return _med([_get(r, path) for r in ok])


def render(doc: Doc) -> str:
    res = doc["results"]
    m = doc["machine"]
    a = doc["args"]
    present = [s for s in SYSTEMS if any(s in res.get(sc, {}) for sc in ("burst", "paced", "idle"))]
    L: list[str] = []
    L.append("# tornado_sse fan-out benchmark")
    L.append("")
    L.append(f"- command: `{doc['command']}` (cwd: repository root)")
    L.append(f"- started {doc['started']}, took {doc['duration_secs']} s")
    L.append(f"- machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['mem_gb']} GB RAM, "
             f"Linux {m['kernel']}, load average at start "
             f"{', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}")
    src = m.get("source") or {}
    if src:
        L.append(f"- tornado_sse source: {src.get('path')} at commit {src.get('commit', '?')}"
                 f" + {src.get('uncommitted_files', '?')} uncommitted file(s) in run.py/tornado_sse/sql "
                 "(copied when the run started)")
    L.append("- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    db = m.get("db", {})
    L.append(f"- database: embedded PostgreSQL {db.get('version', '?')} (fsync={db.get('fsync')}, "
             f"synchronous_commit={db.get('synchronous_commit')}, shared_buffers={db.get('shared_buffers')})")
    uvloop = " + uvloop" if doc["client"].get("uvloop") else ""
    L.append(f"- one load client process (asyncio{uvloop}, raw sockets) "
             "shared by all systems; servers, client, PostgreSQL and publisher all on the same box"
             + ("; --pin: the server under test on CPU 0, everything else on CPU 1" if a.get("pin") else
                "; not pinned: every process may run on either core"))
    L.append(f"- tornado_sse --processes {a['processes']}; nginx worker_processes {a['nginx_workers']}; "
             "uvicorn 1 worker; every event is the same JSON envelope "
             f"({doc.get('event_frame_bytes')} bytes as an SSE frame)")
    L.append(f"- rounds: burst {a['rounds']}, paced {a['paced_rounds']}, idle {a['idle_rounds']}, "
             f"scoped {a.get('scoped_rounds', '–')}, servers {a.get('servers_rounds', '–')}, "
             f"write {a.get('write_rounds', a['rounds'])}; systems interleaved within each round; "
             "values are medians over rounds")
    for n in doc.get("notes", []):
        L.append(f"- note: {n}")
    if doc.get("fatal"):
        L.append(f"- **harness failure: {doc['fatal']}**")
    for e in doc.get("harness_errors", []):
        L.append(f"- **harness/delivery error: {e}**")
    L.append("")

    labels = {"burst": f"1. burst: {a['burst_streams']:,} streams × {a['burst_events']} events back to back",
              "paced": f"2. paced: {a['paced_streams']:,} streams, {a['paced_rate']:g} events/s for "
                       f"{a['paced_secs']:g} s (commit/publish → client)",
              "idle": f"3. idle: {a['idle_streams']:,} open streams, CPU over {a['idle_secs']:g} s"}
    if present:
        L.extend(results_table(doc, present, labels))
    L.extend(write_section(doc))
    L.extend(scoped_section(doc))
    L.extend(servers_section(doc))
    return finish(doc, L)


def results_table(doc: Doc, present: list[str], labels: dict[str, str]) -> list[str]:
    res = doc["results"]
    L: list[str] = []
    head = "| scenario / metric | " + " | ".join(present)
    ratio_cols = []
    if "tornado_sse" in present:
        for other in ("nchan", "starlette"):
            if other in present:
                ratio_cols.append(other)
    head += "".join(f" | tornado_sse vs {o}" for o in ratio_cols) + " |"
    L.append("## Results")
    L.append("")
    L.append(head)
    L.append("|" + "---|" * (1 + len(present) + len(ratio_cols)))
    current = None
    for scen, label, path, hib, nd in metrics(doc):
        if scen not in res or not res[scen]:
            continue
        if scen != current:
            current = scen
            L.append(f"| **{labels[scen]}** |" + " |" * (len(present) + len(ratio_cols)))
        vals = {s: scenario_value(res[scen].get(s, []), path) if s in res[scen] else None
                for s in present}
        if all(v is None for v in vals.values()):
            continue
        row = f"| {label} | " + " | ".join(_fmt(vals[s], nd) for s in present)
        for o in ratio_cols:
            if path.startswith("@") or path.startswith("cpu.") or path == "open_secs":
                row += " | "
            else:
                row += " | " + _ratio(vals["tornado_sse"], vals[o], hib)
        L.append(row + " |")
    L.append("")
    L.append("Ratios are tornado_sse relative to the other system, oriented so that > 1× means "
             "tornado_sse is better (faster, lower latency, less memory).")
    L.append("")
    return L


def write_section(doc: Doc) -> list[str]:
    res = doc["results"]
    a = doc["args"]
    L: list[str] = []
    w = res.get("write") or {}
    if w:
        L.append(f"## 4. Write side (tornado_sse's database): pgbench, {a['write_clients']} clients, "
                 f"-j 2, {a['write_secs']:g} s per run, one INSERT per transaction")
        L.append("")
        L.append("| table | tps (median) | × plain | latency avg, ms | runs (tps) |")
        L.append("|---|---|---|---|---|")
        plain = _med([r["tps"] for r in w.get("plain", [])])
        for label, rounds in w.items():
            tps = _med([r["tps"] for r in rounds])
            lat = _med([r.get("latency_ms") for r in rounds])
            rel = f"{tps / plain:.2f}" if plain and tps else "–"
            desc = {"plain": "appointments_plain (no triggers), nothing listening",
                    "triggers": "appointments (event triggers + NOTIFY), nothing listening",
                    "plain+server": "appointments_plain, tornado_sse running",
                    "triggers+server": "appointments, tornado_sse listening and reading every event",
                    "appointments, event trigger disabled":
                        "appointments, diagnostic: event trigger disabled (same indexes as with triggers)",
                    "triggers, no NOTIFY": "appointments, diagnostic: NOTIFY trigger disabled",
                    "triggers, no advisory lock":
                        "appointments, diagnostic: event id without the advisory lock",
                    "triggers, neither": "appointments, diagnostic: neither NOTIFY nor the lock",
                    }.get(label, label)
            L.append(f"| {desc} | {_fmt(tps, 0)} | {rel} | {_fmt(lat, 2)} | "
                     + ", ".join(f"{r['tps']:.0f}" for r in rounds) + " |")
        L.append("")
    return L


def finish(doc: Doc, L: list[str]) -> str:
    res = doc["results"]
    # targets
    L.append("## Targets")
    L.append("")
    L.append("| target | measured | met? |")
    L.append("|---|---|---|")
    L.extend(targets(doc))
    L.append("")

    # raw rounds
    L.append("## Every round")
    L.append("")
    for scen in ("burst", "paced", "idle", "scoped", "servers"):
        if not res.get(scen):
            continue
        for s in SYSTEMS:
            for i, r in enumerate(res[scen].get(s, []), 1):
                # scoped/servers: one entry per size and round; the line names the size
                what = f"#{i}" if scen in ("scoped", "servers") else f"round {i}"
                L.append(f"- {scen} {s} {what}: {oneline(scen, r)}")
    L.append("")
    return "\n".join(L)


def oneline(scen: str, r: Doc) -> str:
    if "error" in r and "verify" not in r:
        return "ERROR " + str(r["error"])
    cpu = r.get("cpu", {})
    c = ", ".join(f"{k} {v}" for k, v in cpu.items())
    err = f" **{r['error']}**" if "error" in r else ""
    if scen == "burst":
        v = r["verify"]
        return (f"{_fmt(r.get('frames_per_sec'), 0)} frames/s, {r.get('secs')} s, "
                f"{v['streams_exact']}/{v['streams']} streams exact, lost {v['lost_frames']}, "
                f"dup {v['duplicate_frames']}; CPU s: {c}{err}")
    if scen == "scoped":
        v = r["verify"]
        lat = r.get("latency_publish_ms") or {}
        return (f"{r['streams']:,} streams, {r['events']:,} events: "
                f"server {r['server_us_per_event']} µs/event, "
                f"PostgreSQL {r['postgres_us_per_event']} µs/event, publish→client p50 {lat.get('p50')} ms, "
                f"p99 {lat.get('p99')}, max {lat.get('max')}; "
                f"frames {v['frames']:,}/{v['expected_frames']:,}, "
                f"{v['streams_exact']}/{v['streams']} streams exact, lost {v['lost_frames']}, "
                f"dup {v['duplicate_frames']}; CPU s: {c}{err}")
    if scen == "servers":
        v = r["verify"]
        return (f"{r['servers']} server(s), {v['streams']} streams, {r['events']:,} commits in "
                f"{r['publish_secs']} s ({r['commits_per_sec']}/s): PostgreSQL {r['postgres_us_per_event']} "
                f"µs/event, servers {r['server_us_per_event']} µs/event; {v['streams_exact']}/{v['streams']} "
                f"streams exact, lost {v['lost_frames']}, dup {v['duplicate_frames']}; CPU s: {c}{err}")
    if scen == "paced":
        v = r["verify"]
        parts = []
        for ref in ("publish", "commit"):
            lat = r.get(f"latency_{ref}_ms")
            if lat:
                parts.append(f"{ref}→client p50 {lat['p50']} ms, p90 {lat['p90']}, p99 {lat['p99']}, "
                             f"max {lat['max']}")
        n = (r.get("latency_publish_ms") or {}).get("n")
        return "; ".join(parts) + (f" over {n:,} deliveries; lost {v['lost_frames']}; CPU s: {c}{err}")
    return (f"{r['kb_per_stream']} KB/stream, RSS {r['rss0_mb']} → {r['rss_mb']} MB "
            f"(end {r['rss_end_mb']}), idle CPU {r['server_cpu_pct']}%, opened in {r['open_secs']} s; "
            f"CPU s: {c}")


def targets(doc: Doc) -> list[str]:
    res = doc["results"]
    rows = []

    def val(scen: str, system: str, path: str) -> float | None:
        rounds = res.get(scen, {}).get(system)
        return scenario_value(rounds, path) if rounds else None

    def row(name: str, measured: str, ok: bool | None) -> None:
        rows.append(f"| {name} | {measured} | {verdict(ok)} |")

    ts = val("burst", "tornado_sse", "frames_per_sec")
    nc = val("burst", "nchan", "frames_per_sec")
    st = val("burst", "starlette", "frames_per_sec")
    if ts is not None and nc is not None:
        row("burst frames/s ≥ Nchan's", f"{ts:,.0f} vs {nc:,.0f} = {ts / nc:.2f}×", ts >= nc)
    else:
        row("burst frames/s ≥ Nchan's", "not measured", None)
    if ts is not None and st is not None:
        row("burst frames/s ≥ 5 × sse-starlette's", f"{ts:,.0f} vs {st:,.0f} = {ts / st:.2f}×", ts >= 5 * st)
    else:
        row("burst frames/s ≥ 5 × sse-starlette's", "not measured", None)
    p99 = val("paced", "tornado_sse", "latency_commit_ms.p99")
    row("paced p99 ≤ 30 ms (commit returned → client)", "not measured" if p99 is None else f"{p99:.1f} ms",
        None if p99 is None else p99 <= 30)
    kb = val("idle", "tornado_sse", "kb_per_stream")
    row("≤ 20 KB per idle stream", "not measured" if kb is None else f"{kb:.1f} KB",
        None if kb is None else kb <= 20)
    w = res.get("write") or {}
    plain = _med([r["tps"] for r in w.get("plain", [])])
    trig = _med([r["tps"] for r in w.get("triggers", [])])
    if plain and trig:
        row("trigger tps ≥ 0.5 × plain tps", f"{trig:,.0f} vs {plain:,.0f} = {trig / plain:.2f}×",
            trig >= 0.5 * plain)
    else:
        row("trigger tps ≥ 0.5 × plain tps", "not measured", None)
    rows.extend(scale_targets(doc))
    lost = 0
    for scen in ("burst", "paced", "scoped", "servers"):
        for rounds in res.get(scen, {}).values():
            for r in rounds:
                v = r.get("verify")
                if v:
                    lost += v["lost_frames"] + v["duplicate_frames"] + v["unexpected_frames"]
    rows.append(f"| (harness) every stream got every event exactly once, in order | "
                f"{'yes' if lost == 0 and not doc.get('harness_errors') else f'NO: {lost} frames wrong'} | "
                f"{'ok' if lost == 0 and not doc.get('harness_errors') else '**FAIL**'} |")
    return rows


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("**met**" if ok else "**not met**")


def by_key(rounds: list[Doc], key: str) -> dict[int, list[Doc]]:
    """Rounds grouped by a size (streams, servers), sizes ascending."""
    out: dict[int, list[Doc]] = {}
    for r in rounds:
        if key in r:
            out.setdefault(int(r[key]), []).append(r)
    return dict(sorted(out.items()))


def scoped_section(doc: Doc) -> list[str]:
    res = doc["results"].get("scoped") or {}
    if not res:
        return []
    present = [s for s in SYSTEMS if s in res]
    L = ["## 5. Scoped: every stream one staff member's calendar, events round-robin over the staff",
         "",
         "tornado_sse: one staff token per stream (`GET /sse`, the token's `staff_id` scopes it); Nchan: "
         "one channel per staff member (`POST /pub/<staff>`, `GET /sub/<staff>`). Each event concerns "
         "one staff member and reaches exactly one stream. CPU per event = CPU seconds from the first "
         "publish to the last frame ÷ events (µs); latency over every delivery, from just before the "
         "INSERT/POST." + (" pyfloor: bench/pyfloor.py, the least a Python asyncio server does per "
                           "event (wake, read the notification, format, one write), a yardstick for "
                           "tornado_sse's own share." if "pyfloor" in present else ""), "",
         "| streams | events | system | server CPU µs/event | PostgreSQL CPU µs/event | load client "
         "CPU µs/event | publish → client p50 / p99 / max, ms | frames received / expected | "
         "lost + dup + unexpected |",
         "|---|---|---|---|---|---|---|---|---|"]
    sizes = sorted({int(r["streams"]) for rounds in res.values() for r in rounds if "streams" in r})
    for size in sizes:
        for system in present:
            rounds = by_key(res[system], "streams").get(size, [])
            if not rounds:
                continue
            ok = [r for r in rounds if "verify" in r]
            lat = [_fmt(_med([_get(r, f"latency_publish_ms.{q}") for r in ok]), 1)
                   for q in ("p50", "p99", "max")]
            frames = sum(r["verify"]["frames"] for r in ok)
            expected = sum(r["verify"]["expected_frames"] for r in ok)
            wrong = sum(r["verify"]["lost_frames"] + r["verify"]["duplicate_frames"]
                        + r["verify"]["unexpected_frames"] for r in ok)
            L.append(f"| {size:,} | {_fmt(_med([r.get('events') for r in ok]), 0)} | {system} | "
                     f"{_fmt(_med([r.get('server_us_per_event') for r in ok]), 1)} | "
                     f"{_fmt(_med([r.get('postgres_us_per_event') for r in ok]), 1)} | "
                     f"{_fmt(_med([r.get('client_us_per_event') for r in ok]), 1)} | "
                     f"{' / '.join(lat)} | {frames:,} / {expected:,} | {wrong} |")
    L.append("")
    return L


def scoped_cpu(doc: Doc, system: str) -> dict[int, float]:
    """Median server CPU µs per event by stream count."""
    rounds = (doc["results"].get("scoped") or {}).get(system, [])
    out: dict[int, float] = {}
    for size, rs in by_key(rounds, "streams").items():
        v = _med([r.get("server_us_per_event") for r in rs if "verify" in r])
        if v is not None:
            out[size] = v
    return out


def servers_section(doc: Doc) -> list[str]:
    rounds = (doc["results"].get("servers") or {}).get("tornado_sse", [])
    if not rounds:
        return []
    a = doc["args"]
    L = [f"## 6. Servers: K tornado_sse processes on one database, {a.get('servers_streams')} admin "
         f"streams each, {a.get('servers_events'):,} one-row commits back to back", "",
         "PostgreSQL CPU = all its processes (postmaster, backends, WAL writer …) from /proc, from the "
         "first commit to the last frame; server CPU summed over the K processes; commit rate = "
         "commits ÷ the writer's loop time.", "",
         "| servers | streams | commits/s | PostgreSQL CPU µs/event | × one server | server CPU µs/event "
         "(all) | lost + dup + unexpected |",
         "|---|---|---|---|---|---|---|"]
    groups = by_key(rounds, "servers")
    base = _med([r.get("postgres_us_per_event") for r in groups.get(1, []) if "verify" in r])
    for count, rs in groups.items():
        ok = [r for r in rs if "verify" in r]
        pg = _med([r.get("postgres_us_per_event") for r in ok])
        rel = f"{pg / base:.2f}" if pg is not None and base else "–"
        wrong = sum(r["verify"]["lost_frames"] + r["verify"]["duplicate_frames"]
                    + r["verify"]["unexpected_frames"] for r in ok)
        L.append(f"| {count} | {_fmt(_med([r['verify']['streams'] for r in ok]), 0)} | "
                 f"{_fmt(_med([r.get('commits_per_sec') for r in ok]), 0)} | {_fmt(pg, 1)} | {rel} | "
                 f"{_fmt(_med([r.get('server_us_per_event') for r in ok]), 1)} | {wrong} |")
    L.append("")
    return L


def scale_targets(doc: Doc) -> list[str]:
    """Issue 14's goals, from this run's medians."""
    rows: list[str] = []

    def row(name: str, measured: str, ok: bool | None) -> None:
        rows.append(f"| {name} | {measured} | {verdict(ok)} |")

    ts, nc = scoped_cpu(doc, "tornado_sse"), scoped_cpu(doc, "nchan")
    common = [n for n in ts if n in nc]
    at = 5000 if 5000 in common else (max(common) if common else None)
    name = f"scoped CPU/event ≤ 4 × Nchan's at {at or 5000:,} streams"
    if at is not None:
        row(name, f"{ts[at]:,.1f} vs {nc[at]:,.1f} µs = {ts[at] / nc[at]:.2f}×" if nc[at] else "Nchan 0 µs",
            ts[at] <= 4 * nc[at] if nc[at] else None)
    else:
        row(name, "not measured", None)
    if len(ts) >= 2:
        lo, hi = min(ts), max(ts)
        spread = max(ts.values()) / min(ts.values()) if min(ts.values()) else None
        row(f"scoped CPU/event flat (≤ 1.3×) from {lo:,} to {hi:,} streams",
            "–" if spread is None else f"max/min {spread:.2f}×", None if spread is None else spread <= 1.3)
    else:
        row("scoped CPU/event flat (≤ 1.3×) over the sizes", "one size only", None)
    groups = by_key((doc["results"].get("servers") or {}).get("tornado_sse", []), "servers")
    pg = {k: _med([r.get("postgres_us_per_event") for r in rs if "verify" in r]) for k, rs in groups.items()}
    most = max(pg) if pg else None
    if most is not None and most > 1 and pg.get(1) and pg[most] is not None:
        one, many = pg[1], pg[most]
        assert one is not None and many is not None
        row(f"PostgreSQL CPU/event with {most} servers ≤ 2 × with 1", f"{many:,.1f} vs {one:,.1f} µs = "
            f"{many / one:.2f}×", many <= 2 * one)
    else:
        row("PostgreSQL CPU/event with 8 servers ≤ 2 × with 1", "not measured", None)
    res = doc["results"]
    p_ts = scenario_value(res.get("paced", {}).get("tornado_sse", []), "latency_publish_ms.p99")
    p_nc = scenario_value(res.get("paced", {}).get("nchan", []), "latency_publish_ms.p99")
    if p_ts is not None and p_nc is not None:
        row("paced p99 (publish → client) ≤ Nchan's", f"{p_ts:.1f} vs {p_nc:.1f} ms", p_ts <= p_nc)
    kb = scenario_value(res.get("idle", {}).get("tornado_sse", []), "kb_per_stream")
    if kb is not None:
        row("≤ 5 KB per idle stream (issue 14)", f"{kb:.1f} KB", kb <= 5)
    return rows
