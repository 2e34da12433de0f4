"""The fairness phase: one user floods /v1 while ten others chat; their added latency beside a run without the flood.

Added latency of a turn = the time from sending the message to the end of its reply, less the
provider's own reply time (the fake provider's ttft; it sends its few tokens at once after it).
Target (issue 26, bench/targets.json fairness_p99_rise_replies): the flood raises the chatters' p99
by at most twice the provider's reply time.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import httpx

from .users import SimUser, Stats

_RISE_REPLIES = json.loads(Path(__file__).with_name("targets.json").read_text())["fairness_p99_rise_replies"]["max"]
REPLY_SECONDS = 0.5
TOKENS = 5
PROMPT = f"fair ttft={REPLY_SECONDS} tps=0 tokens={TOKENS}"


def _pct(values, p):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def _chat(users: list[SimUser], turns: int) -> tuple[list[float], Stats, list[tuple[float, float]]]:
    """Each chatter's turns one after another: their added latencies, the stats, and (started at, added)
    of each turn, seconds from the start (where in the run the slow ones fell)."""
    stats, added, timeline = Stats(), [], []
    began = time.perf_counter()

    async def one(user):
        for _ in range(turns):
            started = time.perf_counter()
            text = await user.turn(PROMPT, stats, expect_tokens=TOKENS)
            if text is not None:
                added.append((time.perf_counter() - started - REPLY_SECONDS) * 1000)
                timeline.append((round(started - began, 2), round(added[-1])))

    await asyncio.gather(*(one(u) for u in users))
    return added, stats, timeline


async def _flood(base_url: str, api_key: str, in_flight: int, stop: asyncio.Event) -> dict:
    """Keep ``in_flight`` /v1 calls of one user outstanding until ``stop``."""
    done = {"calls": 0, "errors": 0}
    limits = httpx.Limits(max_connections=in_flight + 10)
    async with httpx.AsyncClient(base_url=base_url, timeout=300, limits=limits) as client:

        async def caller():
            while not stop.is_set():
                try:
                    response = await client.post(
                        "/v1/chat/completions",
                        headers={"Authorization": f"Bearer {api_key}"},
                        json={"model": "gpt-4o", "messages": [{"role": "user", "content": PROMPT}]},
                    )
                    done["calls" if response.status_code == 200 else "errors"] += 1
                except httpx.HTTPError:
                    done["errors"] += 1

        await asyncio.gather(*(caller() for _ in range(in_flight)))
    return done


async def _flood_process(base_url: str, in_flight: int) -> None:
    """``python -m bench.fairness URL IN_FLIGHT`` (the API key on stdin): flood until stdin closes, then
    print what was done as JSON."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    api_key = (await reader.readline()).decode().strip()
    stop = asyncio.Event()
    flood = asyncio.create_task(_flood(base_url, api_key, in_flight, stop))
    await reader.read()  # until the bench closes our stdin
    stop.set()
    print(json.dumps(await flood), flush=True)


class FloodProcess:
    """The flood runs in a process of its own: 200 calls' client work in the bench's own event loop would
    delay the chatters' clocks, which is not the latency the server gives them."""

    def __init__(self, base_url: str, api_key: str, in_flight: int):
        self.args = (base_url, str(in_flight))
        self.api_key = api_key
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.fairness", *self.args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self.process.stdin.write(f"{self.api_key}\n".encode())
        await self.process.stdin.drain()

    async def stop(self) -> dict:
        self.process.stdin.close()
        out, _ = await self.process.communicate()
        return json.loads(out or b"{}")


async def fairness_phase(stack, chatters: list[SimUser], flood_key: str, turns: int, in_flight: int) -> dict:
    await _chat(chatters, 1)  # warm up (each chatter's first turn opens a conversation): not counted
    quiet, quiet_stats, _ = await _chat(chatters, turns)
    flood = FloodProcess(stack.web_url, flood_key, in_flight)
    await flood.start()

    def queued() -> int:
        return stack.redis.llen(f"rq:queue:{stack.env['RQ_QUEUE_NAME']}")

    deadline = time.monotonic() + 30  # the flood fills every worker slot and waits in line before the chat starts
    while stack.in_flight() < stack.worker_concurrency and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    busy_at_start = stack.in_flight()
    flooded, flooded_stats, timeline = await _chat(chatters, turns)
    flood_calls = await flood.stop()
    summary = lambda values: {"n": len(values), "p50": _pct(values, 50), "p99": _pct(values, 99)}  # noqa: E731
    return {
        "chatters": len(chatters),
        "turns_each": turns,
        "provider_reply_ms": REPLY_SECONDS * 1000,
        "flood_in_flight": in_flight,
        "worker_slots_busy_at_start": busy_at_start,
        "rq_queued_at_end": queued(),
        "flood_calls": flood_calls,
        "no_flood_added_ms": summary(quiet),
        "flood_added_ms": summary(flooded),
        "slowest_flooded_turns": sorted(timeline, key=lambda t: -t[1])[:5],  # (s into the phase, added ms)
        "errors": (quiet_stats.errors + flooded_stats.errors)[:5],
        "error_count": len(quiet_stats.errors) + len(flooded_stats.errors),
        "target_p99_rise_ms": _RISE_REPLIES * REPLY_SECONDS * 1000,
    }


def fairness_rows(entry: dict):
    """(figure, Switchboard, baseline, target, met) rows for bench's table."""
    quiet, flood = entry["no_flood_added_ms"], entry["flood_added_ms"]
    rise = None if flood["p99"] is None or quiet["p99"] is None else flood["p99"] - quiet["p99"]
    fmt = lambda v: "–" if v is None else f"{v:.0f}"  # noqa: E731
    yield (
        f"fairness: {entry['chatters']} chatters' added latency p50/p99 ms while one user floods "
        f"({entry['flood_in_flight']} calls in flight)",
        f"{fmt(flood['p50'])} / {fmt(flood['p99'])}",
        f"{fmt(quiet['p50'])} / {fmt(quiet['p99'])} (no flood)",
        f"p99 rise ≤ {entry['target_p99_rise_ms']:.0f} ({_RISE_REPLIES:g}× reply)",
        None if rise is None else rise <= entry["target_p99_rise_ms"] and entry["error_count"] == 0,
    )


if __name__ == "__main__":
    asyncio.run(_flood_process(sys.argv[1], int(sys.argv[2])))
