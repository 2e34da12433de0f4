"""The bench's phases, each against a running stack: at rest, latency at N chats (events, then polling),
capacity and memory, throughput with a zero-delay provider, the /v1 API, open event streams, jobs alone."""

from __future__ import annotations

import asyncio
import os
import platform
import time
from contextlib import asynccontextmanager

import httpx

from .counts import counted, start_counting
from .fairness import fairness_phase
from .measure import Sampler, api_key_for, baseline, gather_bounded, jobs_direct, pct, round_entry, summary, timed_gets
from .sse import sse_phase
from .stack import Stack
from .users import SimUser, Stats


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


def bench_config(stack: Stack, args) -> dict:
    return {
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


async def at_rest(stack: Stack, user: SimUser, args) -> dict:
    """Memory at rest, the status endpoint and the chat page's first byte, one request at a time."""
    rest_rss = stack.rss_kib()
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
    return {
        "rss_kib": rest_rss,
        "status_client_ms": summary(status_rtt),
        "status_server_ms": summary(status_server),
        "page_ttfb_ms": summary(page_ttfb),
        "page_server_ms": summary(page_server),
        "baseline_http_round_trip_ms": summary(floor_rtt),
    }


async def latency(stack: Stack, users: list[SimUser], args) -> tuple[dict, dict]:
    """Added latency at each level of concurrent chats over events, then the highest level by polling."""
    prompt = f"bench ttft={args.ttft} tps={args.tps} tokens={args.tokens}"
    over_events = {}
    for level in args.levels:
        print(f"latency: {level} concurrent chats…", flush=True)
        floor = baseline(stack, level, level * args.turns, prompt)
        with Sampler(stack) as sampler:
            stats, elapsed = await chat_round(users[:level], args.turns, prompt, args.tokens, timeout=90)
        over_events[str(level)] = round_entry(stats, elapsed, level, floor, sampler)
    # The fallback (no EventSource): the same highest level, following by long polling.
    level = max(args.levels)
    print(f"latency, polling fallback: {level} concurrent chats…", flush=True)
    for user in users:
        user.transport = "polling"
    floor = baseline(stack, level, level * args.turns, prompt)
    stats, elapsed = await chat_round(users[:level], args.turns, prompt, args.tokens, timeout=90)
    for user in users:
        user.transport = "events"
    return over_events, {str(level): round_entry(stats, elapsed, level, floor)}


def capacity(stack: Stack, args, rest_rss: dict) -> tuple[dict, dict | None]:
    """Slow generations queued straight to the one worker, all in flight at once, and its memory then."""
    print(f"capacity: {args.worker_concurrency} slow generations in one worker…", flush=True)
    slow = f"bench ttft=0.5 tps=2 tokens={args.capacity_tokens}"
    floor = baseline(stack, args.worker_concurrency, args.worker_concurrency, slow)
    with Sampler(stack) as sampler:
        result = jobs_direct(stack, args.worker_concurrency, slow)
    peak = sampler.best["in_flight"]
    memory = None
    if peak > 0:
        memory = {
            "in_flight": peak,
            "rss_rest_kib": rest_rss,
            "rss_at_peak_kib": sampler.best["rss"],
            "worker_kib_per_generation": (sampler.best["rss"]["worker"] - rest_rss["worker"]) / peak,
            "baseline_kib_per_stream": (floor["rss_peak_kib"] - floor["rss_rest_kib"])
            / max(1, floor["peak_in_flight"]),
        }
    return {**result, "peak_in_flight": peak, "baseline_peak_in_flight": floor["peak_in_flight"]}, memory


async def throughput(stack: Stack, users: list[SimUser], args) -> dict:
    """Complete chat turns a second with a zero-delay provider, and the CPU each part spent per turn."""
    print(f"throughput: {len(users)} chats, zero-delay provider, {args.throughput_seconds:.0f} s…", flush=True)
    zero = f"bench ttft=0 tps=0 tokens={args.zero_tokens}"
    floor = baseline(stack, len(users), 100_000, zero, seconds=min(5.0, args.throughput_seconds))
    cpu_before = stack.cpu_seconds()
    stats, elapsed = await chat_for(users, args.throughput_seconds, zero, args.zero_tokens)
    cpu = {k: v - cpu_before[k] for k, v in stack.cpu_seconds().items()}
    return {
        "chats": len(users),
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


async def run(stack: Stack, args) -> dict:
    """Every phase, in order, against one running stack."""
    results: dict = {"config": bench_config(stack, args)}
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

        counts = results["counts"] = {}  # 5xx answers and duplicate jobs, phase by phase
        print("at rest: memory, status endpoint, page first byte…", flush=True)
        mark = stack.mark()
        results["at_rest"] = await at_rest(stack, users[0], args)
        counts["at rest"] = stack.counts_since(mark)
        mark = stack.mark()
        results["latency"], results["latency_polling"] = await latency(stack, users, args)
        counts["latency (events and polling)"] = stack.counts_since(mark)
        mark = stack.mark()
        results["capacity"], memory = capacity(stack, args, results["at_rest"]["rss_kib"])
        counts["capacity"] = stack.counts_since(mark)
        if memory:
            results["memory"] = memory
        mark = stack.mark()
        results["throughput"] = await throughput(stack, users, args)
        counts["throughput"] = stack.counts_since(mark)
        per_turn = results["throughput"]["cpu_ms_per_turn"] or {}
        results["cpu_ms_per_turn"] = {"web": per_turn.get("web"), "worker": per_turn.get("worker")}

        print("counts: Redis commands and SQL statements of a text-only turn…", flush=True)
        mark = stack.mark()
        results["work_per_turn"] = await work_per_turn(stack, users[:10], args)
        counts["counts"] = stack.counts_since(mark)

        print("api: one client, 50 clients, 50 streams through /v1 and direct…", flush=True)
        mark = stack.mark()
        results["api"] = api_phase(stack, api_key_for(stack, users[0].name), args.quick)
        counts["api (/v1)"] = stack.counts_since(mark)

        print("fairness: one user floods /v1 while ten others chat…", flush=True)
        results["fairness"] = await fairness(stack, users[:10], args)

        print(f"events: {args.sse_streams} open streams on one web process…", flush=True)
        mark = stack.mark()
        results["sse"] = await sse_phase(
            stack,
            users[0].client.cookies,
            users[0].name,
            args.sse_streams,
            rest_seconds=16.0,  # one heartbeat (15 s) of every stream falls in it
            streaming_seconds=5.0 if args.quick else 10.0,
        )
        counts["event streams"] = stack.counts_since(mark)
    finally:
        await asyncio.gather(*(u.close() for u in users), return_exceptions=True)

    print(f"jobs: {args.jobs} generations queued straight to the worker…", flush=True)
    mark = stack.mark()
    jobs = jobs_direct(stack, args.jobs, f"bench ttft=0 tps=0 tokens={args.zero_tokens}")
    results["counts"]["jobs"] = stack.counts_since(mark)
    jobs["baseline_calls_per_second"] = results["throughput"]["baseline_calls_per_second"]
    results["jobs"] = jobs
    return results


async def fairness(stack: Stack, chatters: list[SimUser], args) -> dict:
    """One user keeps twice the worker's slots of /v1 calls in flight while ten others chat (bench/fairness.py)."""
    flooder = SimUser(stack.web_url, "benchflood")
    try:
        await flooder.signup()
    finally:
        await flooder.close()
    return await fairness_phase(
        stack,
        chatters,
        api_key_for(stack, "benchflood"),
        turns=3 if args.quick else 10,
        in_flight=2 * args.worker_concurrency,
    )


COUNTED_TURNS = 100


async def work_per_turn(stack: Stack, users: list[SimUser], args) -> dict:
    """Redis commands and SQL statements per text-only turn (bench/counts.py): machine-independent."""
    statements = start_counting(stack)
    each = COUNTED_TURNS // len(users)
    prompt = f"bench ttft=0 tps=0 tokens={args.zero_tokens}"
    stats, _elapsed = await chat_round(users, each, prompt, args.zero_tokens, timeout=300)
    return counted(stack, statements, stats, each * len(users))


@asynccontextmanager
async def ten_users(stack: Stack):
    """Ten signed-up users for a phase run alone (``--only``), closed afterwards."""
    users = [SimUser(stack.web_url, f"bench{i}") for i in range(10)]
    try:
        await gather_bounded([u.signup() for u in users], 8)
        yield users
    finally:
        await asyncio.gather(*(u.close() for u in users), return_exceptions=True)


async def run_only_counts(stack: Stack, args) -> dict:
    async with ten_users(stack) as users:
        await asyncio.gather(*(u.turn("tokens=3 ttft=0 tps=0", Stats()) for u in users))  # warm up
        return await work_per_turn(stack, users, args)


async def run_only_fairness(stack: Stack, args) -> dict:
    async with ten_users(stack) as users:
        return await fairness(stack, users, args)
