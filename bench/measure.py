"""Measuring helpers: percentiles, the SDK-direct baseline, a sampler of in-flight work and memory, jobs
queued straight to the worker, and timed requests."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time

import httpx

from webapp.paths import PROJECT_ROOT

from .stack import Stack
from .users import Stats


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
    from webapp.models import Generation, GenerationStatus, Message, User
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
        # What generations.enqueue() does for each (the recorder has set enqueued_at), in one pipeline,
        # so that the figure is the worker's pace rather than this process's.
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
    from webapp.accounts.api_keys import create_key
    from webapp.extensions import db
    from webapp.models import User

    app = create_app()
    with app.app_context():
        _key, raw = create_key(db.session.scalar(select(User).where(User.username == username)), "bench")
        db.session.commit()
        db.session.remove()
    return raw


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
