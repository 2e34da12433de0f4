"""``make bench``: end-to-end figures for Switchboard against a fake provider, each beside its floor.

Starts its own Valkey, database, fake OpenAI-format provider, gunicorn and ONE
worker process, signs simulated users up through the real forms and has them
chat as the page script does. Prints a table and writes bench/results.json.
Runs on a temp SQLite file, then again on a throwaway PostgreSQL cluster when Debian's
postgresql is installed and this runs as root (BENCH_POSTGRES=0 skips that pass).
Environment: BENCH_DATABASE_URL (one run on that database instead), BENCH_TPS,
BENCH_TTFT, BENCH_TOKENS (latency phases), BENCH_QUICK=1 (a short run),
BENCH_SSE_STREAMS (open event streams on one web process, default 1000).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from webapp.paths import PROJECT_ROOT

from .postgres import Unavailable, throwaway_cluster
from .sse import sse_phase
from .stack import Stack
from .users import SimUser, Stats

RESULTS = Path(__file__).with_name("results.json")


def pct(values, p):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def summary(values) -> dict:
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "p99": pct(values, 99),
        "max": max(values) if values else None,
    }


def baseline(
    stack: Stack,
    streams: int,
    calls: int,
    prompt: str,
    timeout: float = 90.0,
    seconds: float | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    no_stream: bool = False,
) -> dict:
    """The same fake provider read directly by the openai SDK, in its own process (or, with ``base_url``
    and ``api_key``, Switchboard's /v1 read by the same code)."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.baseline",
            "--base-url",
            base_url or f"{stack.provider_url}/v1",
            "--streams",
            str(streams),
            "--calls",
            str(calls),
            "--prompt",
            prompt,
            "--timeout",
            str(timeout),
        ]
        + (["--seconds", str(seconds)] if seconds else [])
        + (["--api-key", api_key] if api_key else [])
        + (["--no-stream"] if no_stream else []),
        cwd=PROJECT_ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=timeout + 30,
    )
    if out.returncode != 0:
        raise RuntimeError(f"baseline failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class Sampler(threading.Thread):
    """Samples RSS and in-flight jobs every 0.1 s; keeps the sample with the most jobs in flight."""

    def __init__(self, stack: Stack):
        super().__init__(daemon=True)
        self.stack, self.stopped = stack, threading.Event()
        self.best: dict = {"in_flight": -1}

    def run(self):
        while not self.stopped.wait(0.1):
            flying = self.stack.in_flight()
            if flying >= self.best["in_flight"]:
                rss = self.stack.rss_kib()
                if flying > self.best["in_flight"] or rss["worker"] > self.best["rss"]["worker"]:
                    self.best = {"in_flight": flying, "rss": rss}

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.join(2)


async def gather_bounded(coros, limit: int):
    semaphore = asyncio.Semaphore(limit)

    async def run(coro):
        async with semaphore:
            return await coro

    return await asyncio.gather(*(run(c) for c in coros))


async def chat_round(users: list[SimUser], turns: int, prompt: str, tokens: int, timeout: float) -> tuple[Stats, float]:
    """Every user runs ``turns`` turns one after another, all users at once."""
    stats = Stats()

    async def one(user):
        for _ in range(turns):
            await user.turn(prompt, stats, expect_tokens=tokens)

    started = time.perf_counter()
    try:
        await asyncio.wait_for(asyncio.gather(*(one(u) for u in users)), timeout)
    except TimeoutError:
        stats.errors.append(f"the round did not finish in {timeout:.0f}s")
    return stats, time.perf_counter() - started


async def chat_for(users: list[SimUser], seconds: float, prompt: str, tokens: int) -> tuple[Stats, float]:
    """Every user chats turn after turn until ``seconds`` pass (turns in progress then finish)."""
    stats = Stats()
    stop_at = time.monotonic() + seconds

    async def one(user):
        while time.monotonic() < stop_at:
            await user.turn(prompt, stats, expect_tokens=tokens)

    started = time.perf_counter()
    try:
        await asyncio.wait_for(asyncio.gather(*(one(u) for u in users)), seconds + 45)
    except TimeoutError:
        stats.errors.append("turns in progress did not finish 45 s after the end")
    return stats, time.perf_counter() - started


async def timed_gets(client: httpx.AsyncClient, url: str, count: int, **kwargs) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        async with client.stream("GET", url, **kwargs) as response:
            times.append((time.perf_counter() - started) * 1000)
            await response.aread()
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: HTTP {response.status_code}")
    return times


def jobs_direct(stack: Stack, count: int, prompt: str, timeout: float = 60.0) -> dict:
    """The worker alone: ``count`` generations created and queued straight from Python, timed to the last one."""
    os.environ.update(stack.env)
    from rq import Queue
    from sqlalchemy import func, select

    from webapp import create_app
    from webapp.conversations import start_conversation
    from webapp.extensions import db
    from webapp.generations import JOB_FUNCTION, create_generation
    from webapp.models import Generation, GenerationStatus, Message, User, utcnow
    from webapp.queue import get_queue

    app = create_app()
    with app.app_context():
        user = db.session.scalar(select(User).order_by(User.id))
        generations = []
        for index in range(count):
            if index % 10 == 0:
                conversation = start_conversation(user)
            message = Message(conversation=conversation, role="user", content=prompt)
            db.session.add(message)
            generations.append(create_generation(message))
        db.session.commit()
        ids = [g.id for g in generations]
        # What generations.enqueue() does for each, in one commit and one pipeline, so that the
        # figure is the worker's pace rather than this process's.
        for generation in generations:
            generation.enqueued_at = utcnow()
        db.session.commit()
        queue = get_queue()
        started = time.perf_counter()
        queue.enqueue_many(
            [
                Queue.prepare_data(
                    JOB_FUNCTION,
                    (g.id,),
                    job_id=g.job_id,
                    timeout=app.config["JOB_TIMEOUT"],
                    result_ttl=3600,
                    failure_ttl=7 * 24 * 3600,
                    description=f"generation {g.id} ({g.model_id})",
                )
                for g in generations
            ]
        )
        enqueued = time.perf_counter() - started
        deadline = time.monotonic() + timeout
        done = 0
        while time.monotonic() < deadline:
            db.session.rollback()
            done = db.session.scalar(
                select(func.count())
                .select_from(Generation)
                .where(Generation.id.in_(ids), Generation.status.in_(GenerationStatus.FINISHED))
            )
            if done >= count:
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        succeeded = db.session.scalar(
            select(func.count())
            .select_from(Generation)
            .where(Generation.id.in_(ids), Generation.status == GenerationStatus.SUCCEEDED)
        )
        db.session.remove()
        db.engine.dispose()
    return {
        "jobs": count,
        "finished": done,
        "succeeded": succeeded,
        "seconds": elapsed,
        "enqueue_seconds": enqueued,
        "jobs_per_second": done / elapsed if elapsed else 0.0,
    }


def api_key_for(stack: Stack, username: str) -> str:
    """A personal API key (sb-...) for one of the bench users, made as the API keys page makes one."""
    os.environ.update(stack.env)
    from sqlalchemy import select

    from webapp import create_app
    from webapp.api_keys import create_key
    from webapp.extensions import db
    from webapp.models import User

    app = create_app()
    with app.app_context():
        _key, raw = create_key(db.session.scalar(select(User).where(User.username == username)), "bench")
        db.session.commit()
        db.session.remove()
    return raw


def api_phase(stack: Stack, api_key: str, quick: bool) -> dict:
    """/v1 through Switchboard (every call an RQ job) beside the same SDK calling the provider directly."""
    switchboard = f"{stack.web_url}/v1"
    zero = "bench ttft=0 tps=0 tokens=20"
    calls = 30 if quick else 100
    one = baseline(stack, 1, calls, zero, base_url=switchboard, api_key=api_key, no_stream=True)
    one_direct = baseline(stack, 1, calls, zero, no_stream=True)
    seconds = 5.0 if quick else 10.0
    many = baseline(stack, 50, 100_000, zero, seconds=seconds, base_url=switchboard, api_key=api_key, no_stream=True)
    many_direct = baseline(stack, 50, 100_000, zero, seconds=seconds, no_stream=True)
    paced = "bench ttft=0.2 tps=20 tokens=20"
    streams = baseline(stack, 50, 50 if quick else 100, paced, base_url=switchboard, api_key=api_key)
    streams_direct = baseline(stack, 50, 50 if quick else 100, paced)
    p50 = lambda values: pct(values, 50)  # noqa: E731
    return {
        "single_call_ms": summary(one["call_ms"]),
        "baseline_single_call_ms": summary(one_direct["call_ms"]),
        "single_added_latency_ms_p50": (p50(one["call_ms"]) - p50(one_direct["call_ms"]))
        if one["call_ms"] and one_direct["call_ms"]
        else None,
        "concurrent_clients": 50,
        "calls_per_second": many["calls_per_second"],
        "baseline_calls_per_second": many_direct["calls_per_second"],
        "stream_chunk_delay_ms": summary(streams["latencies_ms"]),
        "baseline_stream_chunk_delay_ms": summary(streams_direct["latencies_ms"]),
        "errors": (one["errors"] + many["errors"] + streams["errors"])[:5],
        "error_count": one["error_count"] + many["error_count"] + streams["error_count"],
    }


def round_entry(stats: Stats, elapsed: float, level: int, floor: dict, sampler: Sampler | None = None) -> dict:
    entry = {
        "chats": level,
        "turns": stats.turns,
        "seconds": elapsed,
        "polls": stats.polls,
        "polls_per_turn": stats.polls / stats.turns if stats.turns else None,
        "added_latency_ms": summary(stats.latencies_ms),
        "page_ttfb_ms": summary(stats.page_ttfb_ms),
        "incomplete": stats.incomplete[:10],
        "incomplete_count": len(stats.incomplete),
        "errors": stats.errors[:10],
        "error_count": len(stats.errors),
        "baseline_latency_ms": summary(floor["latencies_ms"]),
        "baseline_errors": floor["error_count"],
        "baseline_rss_rest_kib": floor["rss_rest_kib"],
        "baseline_rss_peak_kib": floor["rss_peak_kib"],
        "baseline_peak_in_flight": floor["peak_in_flight"],
    }
    if sampler is not None:
        entry.update(peak_in_flight=sampler.best["in_flight"], rss_at_peak_kib=sampler.best.get("rss"))
    return entry


async def run(stack: Stack, args) -> dict:
    results: dict = {
        "config": {
            "levels": args.levels,
            "ttft_s": args.ttft,
            "tokens_per_second": args.tps,
            "tokens_per_reply": args.tokens,
            "turns_per_user_per_level": args.turns,
            "throughput_seconds": args.throughput_seconds,
            "web_workers": stack.web_workers,
            "worker_concurrency": stack.worker_concurrency,
            "database": stack.env["DATABASE_URL"].split(":")[0],
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        }
    }
    max_users = max(args.levels)
    users = [SimUser(stack.web_url, f"bench{i}") for i in range(max_users)]
    try:
        print(f"signing up {max_users} users…", flush=True)
        await gather_bounded([u.signup() for u in users], 8)

        # Warm up: imports, pools, the first provider connections.
        warm = Stats()
        await asyncio.gather(*(u.turn("tokens=3 ttft=0 tps=0", warm) for u in users[:10]))
        await users[0].turn("tokens=3 ttft=0 tps=0", warm)  # a finished generation to poll at rest
        time.sleep(1.0)

        # -- at rest ------------------------------------------------------------------------
        print("at rest: memory, status endpoint, page first byte…", flush=True)
        rest_rss = stack.rss_kib()
        user = users[0]
        status_url = f"/chat/generations/{user.last_generation_id}/status"
        offset = stack.access_log_offset()
        status_rtt = await timed_gets(
            user.client,
            status_url,
            args.rest_requests,
            params={"cursor": 0, "wait": 5},
            headers={"Accept": "application/json"},
        )
        status_server = stack.server_times_ms(offset, "/status")
        offset = stack.access_log_offset()
        page_ttfb = await timed_gets(
            user.client, user.conversation_url, args.rest_requests // 4, headers={"Accept": "text/html"}
        )
        page_server = stack.server_times_ms(offset, user.conversation_url)
        async with httpx.AsyncClient() as raw:
            floor_rtt = await timed_gets(raw, f"{stack.provider_url}/health", args.rest_requests)
        results["at_rest"] = {
            "rss_kib": rest_rss,
            "status_client_ms": summary(status_rtt),
            "status_server_ms": summary(status_server),
            "page_ttfb_ms": summary(page_ttfb),
            "page_server_ms": summary(page_server),
            "baseline_http_round_trip_ms": summary(floor_rtt),
        }

        # -- latency at N concurrent chats ------------------------------------------------------
        prompt = f"bench ttft={args.ttft} tps={args.tps} tokens={args.tokens}"
        results["latency"] = {}
        for level in args.levels:
            print(f"latency: {level} concurrent chats…", flush=True)
            floor = baseline(stack, level, level * args.turns, prompt)
            with Sampler(stack) as sampler:
                stats, elapsed = await chat_round(users[:level], args.turns, prompt, args.tokens, timeout=90)
            results["latency"][str(level)] = round_entry(stats, elapsed, level, floor, sampler)
        # The fallback (no EventSource): the same highest level, following by long polling.
        level = max(args.levels)
        print(f"latency, polling fallback: {level} concurrent chats…", flush=True)
        for user in users:
            user.transport = "polling"
        floor = baseline(stack, level, level * args.turns, prompt)
        stats, elapsed = await chat_round(users[:level], args.turns, prompt, args.tokens, timeout=90)
        results["latency_polling"] = {str(level): round_entry(stats, elapsed, level, floor)}
        for user in users:
            user.transport = "events"

        # -- capacity: slow generations queued straight to the worker, all in flight at once ---------
        print(f"capacity: {args.worker_concurrency} slow generations in one worker…", flush=True)
        slow = f"bench ttft=0.5 tps=2 tokens={args.capacity_tokens}"
        floor = baseline(stack, args.worker_concurrency, args.worker_concurrency, slow)
        with Sampler(stack) as sampler:
            capacity = jobs_direct(stack, args.worker_concurrency, slow)
        peak = sampler.best["in_flight"]
        results["capacity"] = {**capacity, "peak_in_flight": peak, "baseline_peak_in_flight": floor["peak_in_flight"]}
        if peak > 0:
            results["memory"] = {
                "in_flight": peak,
                "rss_rest_kib": rest_rss,
                "rss_at_peak_kib": sampler.best["rss"],
                "worker_kib_per_generation": (sampler.best["rss"]["worker"] - rest_rss["worker"]) / peak,
                "baseline_kib_per_stream": (floor["rss_peak_kib"] - floor["rss_rest_kib"])
                / max(1, floor["peak_in_flight"]),
            }

        # -- throughput with a zero-delay provider --------------------------------------------
        print(f"throughput: {max_users} chats, zero-delay provider, {args.throughput_seconds:.0f} s…", flush=True)
        zero = f"bench ttft=0 tps=0 tokens={args.zero_tokens}"
        floor = baseline(stack, max_users, 100_000, zero, seconds=min(5.0, args.throughput_seconds))
        cpu_before = stack.cpu_seconds()
        stats, elapsed = await chat_for(users, args.throughput_seconds, zero, args.zero_tokens)
        cpu = {k: v - cpu_before[k] for k, v in stack.cpu_seconds().items()}
        results["throughput"] = {
            "chats": max_users,
            "turns": stats.turns,
            "seconds": elapsed,
            "turns_per_second": stats.turns / elapsed,
            "polls_per_turn": stats.polls / stats.turns if stats.turns else None,
            "page_ttfb_ms": summary(stats.page_ttfb_ms),
            "incomplete_count": len(stats.incomplete),
            "incomplete": stats.incomplete[:10],
            "errors": stats.errors[:10],
            "error_count": len(stats.errors),
            "baseline_calls_per_second": floor["calls_per_second"],
            "baseline_errors": floor["error_count"],
            "cpu_seconds": cpu,
            "cpu_ms_per_turn": {k: v * 1000 / stats.turns for k, v in cpu.items()} if stats.turns else None,
        }
        per_turn = results["throughput"]["cpu_ms_per_turn"] or {}
        results["cpu_ms_per_turn"] = {"web": per_turn.get("web"), "worker": per_turn.get("worker")}

        # -- the /v1 API: every call an RQ job ---------------------------------------------------
        print("api: one client, 50 clients, 50 streams through /v1 and direct…", flush=True)
        results["api"] = api_phase(stack, api_key_for(stack, users[0].name), args.quick)

        # -- open event streams on one web process ----------------------------------------------
        print(f"events: {args.sse_streams} open streams on one web process…", flush=True)
        results["sse"] = await sse_phase(
            stack,
            users[0].client.cookies,
            users[0].name,
            args.sse_streams,
            rest_seconds=16.0,  # one heartbeat (15 s) of every stream falls in it
            streaming_seconds=5.0 if args.quick else 10.0,
        )
    finally:
        await asyncio.gather(*(u.close() for u in users), return_exceptions=True)

    print(f"jobs: {args.jobs} generations queued straight to the worker…", flush=True)
    jobs = jobs_direct(stack, args.jobs, f"bench ttft=0 tps=0 tokens={args.zero_tokens}")
    jobs["baseline_calls_per_second"] = results["throughput"]["baseline_calls_per_second"]
    results["jobs"] = jobs
    return results


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
            "p50 ≤ 25, p99 ≤ 100" if last else "",
            (lat["p50"] is not None and lat["p50"] <= 25 and lat["p99"] <= 100) if last else None,
        )
        failures = entry["incomplete_count"] + entry["error_count"]
        add(
            f"  failed turns / incomplete replies, {level} chats",
            f"{entry['error_count']} / {entry['incomplete_count']}",
            "",
            "0 / 0",
            failures == 0,
        )
    cap = results["capacity"]
    add(
        "streaming generations in flight in one worker",
        f"{cap['peak_in_flight']} ({cap['succeeded']} ok)",
        str(cap["baseline_peak_in_flight"]),
        "≥ 100",
        cap["peak_in_flight"] >= 100 and cap["succeeded"] == cap["jobs"],
    )
    for level, entry in results.get("latency_polling", {}).items():
        lat, base = entry["added_latency_ms"], entry["baseline_latency_ms"]
        add(
            f"latency p50/p95/p99 ms, {level} chats, polling fallback",
            f"{fmt(lat['p50'])} / {fmt(lat['p95'])} / {fmt(lat['p99'])}",
            f"{fmt(base['p50'])} / {fmt(base['p95'])} / {fmt(base['p99'])}",
            "p50 ≤ 25, p99 ≤ 100",
            lat["p50"] is not None and lat["p50"] <= 25 and lat["p99"] <= 100,
        )
        if entry["incomplete_count"] or entry["error_count"]:
            add(
                f"  failed turns / incomplete replies, {level} chats, polling",
                f"{entry['error_count']} / {entry['incomplete_count']}",
                "",
                "0 / 0",
                False,
            )
    thr = results["throughput"]
    add(
        "complete chat turns/s (zero delay)",
        fmt(thr["turns_per_second"]),
        f"{fmt(thr['baseline_calls_per_second'])} calls/s",
        "≥ 200",
        thr["turns_per_second"] >= 200,
    )
    add(
        "  failed turns / incomplete replies (zero delay)",
        f"{thr['error_count']} / {thr['incomplete_count']}",
        "",
        "0 / 0",
        thr["incomplete_count"] + thr["error_count"] == 0,
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
        add("CPU ms per complete turn, web", fmt(per_turn["web"]), "", "≤ 12", per_turn["web"] <= 12)
        add("CPU ms per complete turn, worker", fmt(per_turn["worker"]), "", "≤ 6", per_turn["worker"] <= 6)
    api = results.get("api")
    if api:
        added = api["single_added_latency_ms_p50"]
        add(
            "/v1 one client, non-streaming: added latency p50 ms",
            fmt(added, digits=2),
            f"{fmt(api['baseline_single_call_ms']['p50'], digits=2)} ms a call",
            "≤ 8",
            added is not None and added <= 8,
        )
        add(
            "/v1 50 clients, non-streaming: calls/s",
            fmt(api["calls_per_second"]),
            fmt(api["baseline_calls_per_second"]),
            "≥ 150",
            api["calls_per_second"] >= 150,
        )
        delay, floor_delay = api["stream_chunk_delay_ms"], api["baseline_stream_chunk_delay_ms"]
        add(
            "/v1 50 streams: chunk delay p50 ms",
            fmt(delay["p50"]),
            fmt(floor_delay["p50"]),
            "≤ 25",
            delay["p50"] is not None and delay["p50"] <= 25,
        )
        if api["error_count"]:
            add("  /v1 failed calls", str(api["error_count"]), "", "0", False)
    sse = results.get("sse")
    if sse:
        add(
            "open event streams on one web process",
            f"{sse['open_streams']} ({sse['complete_at_end']} complete)",
            "",
            "≥ 1000",
            sse["open_streams"] >= 1000 and sse["complete_at_end"] == sse["requested"],
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
            "≤ 2 MiB",
            per <= 2,
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
        "low single-digit",
        rest["status_client_ms"]["p50"] < 5,
    )
    add(
        "status endpoint at rest, server p50 ms",
        fmt(rest["status_server_ms"]["p50"], digits=2),
        "",
        "low single-digit",
        (rest["status_server_ms"]["p50"] or 99) < 5,
    )
    add(
        "chat page first byte at rest, p50 ms",
        fmt(rest["page_ttfb_ms"]["p50"], digits=2),
        f"{fmt(floor, digits=2)} (HTTP round trip)",
        "low single-digit",
        rest["page_ttfb_ms"]["p50"] < 5,
    )
    add("chat page server time at rest, p50 ms", fmt(rest["page_server_ms"]["p50"], digits=2), "", "", None)
    widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None) -> int:
    quick = os.environ.get("BENCH_QUICK") == "1"
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,10,50,100" if not quick else "1,10")
    parser.add_argument("--turns", type=int, default=2, help="turns per user at each latency level")
    parser.add_argument("--ttft", type=float, default=float(os.environ.get("BENCH_TTFT", "0.2")))
    parser.add_argument("--tps", type=float, default=float(os.environ.get("BENCH_TPS", "20")))
    parser.add_argument("--tokens", type=int, default=int(os.environ.get("BENCH_TOKENS", "30")))
    parser.add_argument("--zero-tokens", type=int, default=20, help="tokens per reply in the zero-delay phases")
    parser.add_argument("--throughput-seconds", type=float, default=15.0 if not quick else 5.0)
    parser.add_argument("--jobs", type=int, default=500 if not quick else 100)
    parser.add_argument("--rest-requests", type=int, default=200)
    parser.add_argument("--capacity-tokens", type=int, default=10, help="tokens (2 a second) per capacity-phase reply")
    parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2")))
    parser.add_argument("--worker-concurrency", type=int, default=100)
    parser.add_argument(
        "--sse-streams",
        type=int,
        default=int(os.environ.get("BENCH_SSE_STREAMS", "1000")),
        help="event streams held open on one web process",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs) afterwards")
    args = parser.parse_args(argv)
    args.quick = quick
    args.levels = [int(x) for x in args.levels.split(",")]

    logging.basicConfig(level=logging.WARNING)  # before create_app() (jobs phase) would set INFO
    started = time.monotonic()
    # SQLite (the default a team starts with; or BENCH_DATABASE_URL), then PostgreSQL when one can be had.
    results = bench_on(os.environ.get("BENCH_DATABASE_URL"), args)
    if not os.environ.get("BENCH_DATABASE_URL") and os.environ.get("BENCH_POSTGRES", "1") == "1":
        try:
            with throwaway_cluster() as postgres_url:
                results["per_database"] = {"postgresql": bench_on(postgres_url, args)}
        except Unavailable as exc:
            print(f"\nPostgreSQL pass skipped: {exc}", flush=True)
        except Exception as exc:  # keep the SQLite figures; say what failed
            print(f"\nPostgreSQL pass failed: {type(exc).__name__}: {str(exc)[-1500:]}", flush=True)
            results["per_database"] = {"postgresql": {"error": f"{type(exc).__name__}: {str(exc)[-1500:]}"}}
    results["total_seconds"] = time.monotonic() - started
    results["note"] = (
        "Shared 2-core machine: other work on it (test suites) skews these figures; "
        "the simulated users, the fake provider and the baseline run on the same cores."
    )
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"\n{results['config']['database']}:")
    print(table(results))
    for database, figures in results.get("per_database", {}).items():
        print(f"\n{database}:")
        print(table(figures) if "error" not in figures else f"failed: {figures['error'][-300:]}")
    print(f"\nwritten {RESULTS.relative_to(PROJECT_ROOT)} in {results['total_seconds']:.0f}s")
    return 0


def bench_on(database_url: str | None, args) -> dict:
    """Every phase against one database (None: a temp SQLite file)."""
    started = time.monotonic()
    with Stack(
        web_workers=args.web_workers,
        worker_concurrency=args.worker_concurrency,
        keep=args.keep,
        database_url=database_url,
    ) as stack:
        print(f"stack up in {time.monotonic() - started:.1f}s (logs in {stack.tmp})", flush=True)
        results = asyncio.run(run(stack, args))
    results["seconds"] = time.monotonic() - started
    return results


if __name__ == "__main__":
    sys.exit(main())
