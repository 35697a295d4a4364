"""Render a bench/run.py result document as Markdown (tables, ratios, targets)."""

from __future__ import annotations

import statistics
from typing import Any

SYSTEMS = ("tornado_sse", "nchan", "starlette")


def _med(xs: list[Any]) -> float | None:
    xs = [x for x in xs if isinstance(x, (int, float))]
    return statistics.median(xs) if xs else None


def _get(r: dict, path: str) -> Any:
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


def metrics(doc: dict) -> list[tuple[str, str, str, bool, int]]:
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


def scenario_value(rounds: list[dict], path: str) -> Any:
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


def render(doc: dict) -> str:
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
             f"Linux {m['kernel']}, load average at start {', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}")
    src = m.get("source") or {}
    if src:
        L.append(f"- tornado_sse source: {src.get('path')} at commit {src.get('commit', '?')}"
                 f" + {src.get('uncommitted_files', '?')} uncommitted file(s) in run.py/tornado_sse/sql "
                 "(copied when the run started)")
    L.append("- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    db = m.get("db", {})
    L.append(f"- database: embedded PostgreSQL {db.get('version', '?')} (fsync={db.get('fsync')}, "
             f"synchronous_commit={db.get('synchronous_commit')}, shared_buffers={db.get('shared_buffers')})")
    L.append(f"- one load client process (asyncio{' + uvloop' if doc['client'].get('uvloop') else ''}, raw sockets) "
             "shared by all systems; servers, client, PostgreSQL and publisher all on the same box")
    L.append(f"- tornado_sse --processes {a['processes']}; nginx worker_processes {a['nginx_workers']}; "
             "uvicorn 1 worker; every event is the same JSON envelope "
             f"({doc.get('event_frame_bytes')} bytes as an SSE frame)")
    L.append(f"- rounds: burst {a['rounds']}, paced {a['paced_rounds']}, idle {a['idle_rounds']}, "
             f"write {a.get('write_rounds', a['rounds'])}; systems interleaved within each round; values are medians over rounds")
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
    return finish(doc, L)


def results_table(doc: dict, present: list[str], labels: dict[str, str]) -> list[str]:
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


def write_section(doc: dict) -> list[str]:
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
                    "appointments, event trigger disabled": "appointments, diagnostic: event trigger disabled (same indexes as with triggers)",
                    "triggers, no NOTIFY": "appointments, diagnostic: NOTIFY trigger disabled",
                    "triggers, no advisory lock": "appointments, diagnostic: event id without the advisory lock",
                    "triggers, neither": "appointments, diagnostic: neither NOTIFY nor the lock",
                    }.get(label, label)
            L.append(f"| {desc} | {_fmt(tps, 0)} | {rel} | {_fmt(lat, 2)} | "
                     + ", ".join(f"{r['tps']:.0f}" for r in rounds) + " |")
        L.append("")
    return L


def finish(doc: dict, L: list[str]) -> str:
    res = doc["results"]
    present = [s for s in SYSTEMS if any(s in res.get(sc, {}) for sc in ("burst", "paced", "idle"))]
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
    for scen in ("burst", "paced", "idle"):
        if not res.get(scen):
            continue
        for s in present:
            for i, r in enumerate(res[scen].get(s, []), 1):
                L.append(f"- {scen} {s} round {i}: {oneline(scen, r)}")
    L.append("")
    return "\n".join(L)


def oneline(scen: str, r: dict) -> str:
    if "error" in r and "verify" not in r:
        return "ERROR " + r["error"]
    cpu = r.get("cpu", {})
    c = ", ".join(f"{k} {v}" for k, v in cpu.items())
    err = f" **{r['error']}**" if "error" in r else ""
    if scen == "burst":
        v = r["verify"]
        return (f"{_fmt(r.get('frames_per_sec'), 0)} frames/s, {r.get('secs')} s, "
                f"{v['streams_exact']}/{v['streams']} streams exact, lost {v['lost_frames']}, "
                f"dup {v['duplicate_frames']}; CPU s: {c}{err}")
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


def targets(doc: dict) -> list[str]:
    res = doc["results"]
    rows = []

    def val(scen: str, system: str, path: str) -> float | None:
        return scenario_value(res.get(scen, {}).get(system, []), path) if res.get(scen, {}).get(system) else None

    def row(name: str, measured: str, ok: bool | None) -> None:
        rows.append(f"| {name} | {measured} | {'–' if ok is None else ('**met**' if ok else '**not met**')} |")

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
    row("≤ 20 KB per idle stream", "not measured" if kb is None else f"{kb:.1f} KB", None if kb is None else kb <= 20)
    w = res.get("write") or {}
    plain = _med([r["tps"] for r in w.get("plain", [])])
    trig = _med([r["tps"] for r in w.get("triggers", [])])
    if plain and trig:
        row("trigger tps ≥ 0.5 × plain tps", f"{trig:,.0f} vs {plain:,.0f} = {trig / plain:.2f}×",
            trig >= 0.5 * plain)
    else:
        row("trigger tps ≥ 0.5 × plain tps", "not measured", None)
    lost = 0
    for scen in ("burst", "paced"):
        for system, rounds in res.get(scen, {}).items():
            for r in rounds:
                v = r.get("verify")
                if v:
                    lost += v["lost_frames"] + v["duplicate_frames"] + v["unexpected_frames"]
    rows.append(f"| (harness) every stream got every event exactly once, in order | "
                f"{'yes' if lost == 0 and not doc.get('harness_errors') else f'NO: {lost} frames wrong'} | "
                f"{'ok' if lost == 0 and not doc.get('harness_errors') else '**FAIL**'} |")
    return rows
