"""The printed table: every figure beside its baseline and its target (targets from bench/targets.json)."""

from __future__ import annotations

import json
from pathlib import Path

from .fairness import fairness_rows

TARGETS = json.loads(Path(__file__).with_name("targets.json").read_text())


def target(name: str) -> str:
    """The target as printed: "≤ 25" or "≥ 100"."""
    bound = TARGETS[name]
    return f"≤ {bound['max']:g}" if "max" in bound else f"≥ {bound['min']:g}"


def meets(name: str, value) -> bool:
    bound = TARGETS[name]
    if value is None:
        return False
    return value <= bound["max"] if "max" in bound else value >= bound["min"]


def fmt(value, unit="", digits=1):
    if value is None:
        return "–"
    return f"{value:.{digits}f}{unit}"


def table(results: dict) -> str:
    rows = [("Figure", "Switchboard", "Baseline (SDK direct)", "Target", "Met")]

    def add(name, value, floor, target, ok):
        rows.append((name, value, floor, target, "–" if ok is None else ("yes" if ok else "NO")))

    for level, entry in results["latency"].items():
        lat, base = entry["added_latency_ms"], entry["baseline_latency_ms"]
        last = level == str(max(int(k) for k in results["latency"]))
        add(
            f"latency p50/p95/p99 ms, {level} chats",
            f"{fmt(lat['p50'])} / {fmt(lat['p95'])} / {fmt(lat['p99'])}",
            f"{fmt(base['p50'])} / {fmt(base['p95'])} / {fmt(base['p99'])}",
            f"p50 {target('latency_p50_ms')}, p99 {target('latency_p99_ms')}" if last else "",
            (meets("latency_p50_ms", lat["p50"]) and meets("latency_p99_ms", lat["p99"])) if last else None,
        )
        failures = entry["incomplete_count"] + entry["error_count"]
        add(
            f"  failed turns / incomplete replies, {level} chats",
            f"{entry['error_count']} / {entry['incomplete_count']}",
            "",
            f"{target('failed_turns')} / {target('failed_turns')}",
            meets("failed_turns", failures),
        )
    cap = results["capacity"]
    add(
        "streaming generations in flight in one worker",
        f"{cap['peak_in_flight']} ({cap['succeeded']} ok)",
        str(cap["baseline_peak_in_flight"]),
        target("in_flight_generations"),
        meets("in_flight_generations", cap["peak_in_flight"]) and cap["succeeded"] == cap["jobs"],
    )
    for level, entry in results.get("latency_polling", {}).items():
        lat, base = entry["added_latency_ms"], entry["baseline_latency_ms"]
        add(
            f"latency p50/p95/p99 ms, {level} chats, polling fallback",
            f"{fmt(lat['p50'])} / {fmt(lat['p95'])} / {fmt(lat['p99'])}",
            f"{fmt(base['p50'])} / {fmt(base['p95'])} / {fmt(base['p99'])}",
            f"p50 {target('latency_p50_ms')}, p99 {target('latency_p99_ms')}",
            meets("latency_p50_ms", lat["p50"]) and meets("latency_p99_ms", lat["p99"]),
        )
        if entry["incomplete_count"] or entry["error_count"]:
            add(
                f"  failed turns / incomplete replies, {level} chats, polling",
                f"{entry['error_count']} / {entry['incomplete_count']}",
                "",
                f"{target('failed_turns')} / {target('failed_turns')}",
                False,
            )
    thr = results["throughput"]
    add(
        "complete chat turns/s (zero delay)",
        fmt(thr["turns_per_second"]),
        f"{fmt(thr['baseline_calls_per_second'])} calls/s",
        target("turns_per_second"),
        meets("turns_per_second", thr["turns_per_second"]),
    )
    add(
        "  failed turns / incomplete replies (zero delay)",
        f"{thr['error_count']} / {thr['incomplete_count']}",
        "",
        f"{target('failed_turns')} / {target('failed_turns')}",
        meets("failed_turns", thr["incomplete_count"] + thr["error_count"]),
    )
    if thr.get("cpu_ms_per_turn"):
        add(
            "  CPU ms per turn: " + ", ".join(f"{k} {v:.0f}" for k, v in thr["cpu_ms_per_turn"].items()),
            "",
            "",
            "",
            None,
        )
        per_turn = results["cpu_ms_per_turn"]
        for role in ("web", "worker"):
            key = f"cpu_ms_per_turn_{role}"
            add(f"CPU ms per complete turn, {role}", fmt(per_turn[role]), "", target(key), meets(key, per_turn[role]))
        if per_turn["web"] is not None and per_turn["worker"] is not None:
            both = per_turn["web"] + per_turn["worker"]
            key = f"cpu_ms_per_turn_before_attachments_{results['config']['database']}"
            add("CPU ms per text-only turn, web + worker (issue 25)", fmt(both), "", target(key), meets(key, both))
    work = results.get("work_per_turn")
    if work:
        add("Redis commands per text-only turn (counted)", fmt(work["redis_commands_per_turn"]), "", "", None)
        add(
            "SQL statements per text-only turn (counted, PostgreSQL)",
            fmt(work["sql_statements_per_turn"]),
            "",
            "",
            None,
        )
    if results.get("fairness"):
        for row in fairness_rows(results["fairness"]):
            add(*row)
    api = results.get("api")
    if api:
        added = api["single_added_latency_ms_p50"]
        add(
            "/v1 one client, non-streaming: added latency p50 ms",
            fmt(added, digits=2),
            f"{fmt(api['baseline_single_call_ms']['p50'], digits=2)} ms a call",
            target("v1_single_added_p50_ms"),
            meets("v1_single_added_p50_ms", added),
        )
        add(
            "/v1 50 clients, non-streaming: calls/s",
            fmt(api["calls_per_second"]),
            fmt(api["baseline_calls_per_second"]),
            target("v1_calls_per_second"),
            meets("v1_calls_per_second", api["calls_per_second"]),
        )
        delay, floor_delay = api["stream_chunk_delay_ms"], api["baseline_stream_chunk_delay_ms"]
        add(
            "/v1 50 streams: chunk delay p50 ms",
            fmt(delay["p50"]),
            fmt(floor_delay["p50"]),
            target("v1_stream_chunk_delay_p50_ms"),
            meets("v1_stream_chunk_delay_p50_ms", delay["p50"]),
        )
        if api["error_count"]:
            add("  /v1 failed calls", str(api["error_count"]), "", target("v1_failed_calls"), False)
    sse = results.get("sse")
    if sse:
        add(
            "open event streams on one web process",
            f"{sse['open_streams']} ({sse['complete_at_end']} complete)",
            "",
            target("open_event_streams"),
            meets("open_event_streams", sse["open_streams"]) and sse["complete_at_end"] == sse["requested"],
        )
        add(
            "  its RSS: before → open at rest → streaming",
            f"{sse['rss_kib_before'] / 1024:.0f} → {sse['rss_kib'] / 1024:.0f} → "
            f"{sse['rss_kib_streaming'] / 1024:.0f} MiB",
            "",
            "",
            None,
        )
        add(
            "  its CPU: at rest / streaming (% of a core)",
            f"{sse['cpu_at_rest'] * 100:.1f} / {sse['cpu_streaming'] * 100:.0f} % "
            f"({sse['tokens_per_second']:.0f} tokens/s)",
            "",
            "",
            None,
        )
        add(
            "  token delay through it, p50 / p99 ms",
            f"{fmt(sse['token_delay_ms_p50'])} / {fmt(sse['token_delay_ms_p99'])}",
            "",
            "",
            None,
        )
    jobs = results["jobs"]
    add(
        "jobs/s, worker alone (zero delay)",
        fmt(jobs["jobs_per_second"]),
        f"{fmt(jobs['baseline_calls_per_second'])} calls/s",
        "",
        None,
    )
    mem = results.get("memory")
    if mem:
        per = mem["worker_kib_per_generation"] / 1024
        add(
            "worker RSS per in-flight generation",
            f"{per:.2f} MiB",
            f"{mem['baseline_kib_per_stream'] / 1024:.2f} MiB/stream",
            target("worker_mib_per_generation") + " MiB",
            meets("worker_mib_per_generation", per),
        )
        for role in ("web", "worker", "valkey"):
            add(
                f"RSS {role}: rest → {mem['in_flight']} in flight",
                f"{mem['rss_rest_kib'][role] / 1024:.0f} → {mem['rss_at_peak_kib'][role] / 1024:.0f} MiB",
                "",
                "",
                None,
            )
    rest = results["at_rest"]
    floor = rest["baseline_http_round_trip_ms"]["p50"]
    add(
        "status endpoint at rest, client p50/p95 ms",
        f"{fmt(rest['status_client_ms']['p50'], digits=2)} / {fmt(rest['status_client_ms']['p95'], digits=2)}",
        f"{fmt(floor, digits=2)} (HTTP round trip)",
        target("status_client_p50_ms"),
        meets("status_client_p50_ms", rest["status_client_ms"]["p50"]),
    )
    add(
        "status endpoint at rest, server p50 ms",
        fmt(rest["status_server_ms"]["p50"], digits=2),
        "",
        target("status_server_p50_ms"),
        meets("status_server_p50_ms", rest["status_server_ms"]["p50"]),
    )
    add(
        "chat page first byte at rest, p50 ms",
        fmt(rest["page_ttfb_ms"]["p50"], digits=2),
        f"{fmt(floor, digits=2)} (HTTP round trip)",
        target("page_ttfb_p50_ms"),
        meets("page_ttfb_p50_ms", rest["page_ttfb_ms"]["p50"]),
    )
    add("chat page server time at rest, p50 ms", fmt(rest["page_server_ms"]["p50"], digits=2), "", "", None)
    counts = results.get("counts") or {}
    if counts:
        add(
            "5xx answers / duplicate jobs, by phase:",
            "",
            "",
            f"{target('http_5xx')} / {target('duplicate_jobs')}",
            None,
        )
    for phase, found in counts.items():
        add(
            f"  {phase}",
            f"{found['http_5xx']} / {found['duplicate_jobs']}",
            "",
            "",
            meets("http_5xx", found["http_5xx"]) and meets("duplicate_jobs", found["duplicate_jobs"]),
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
