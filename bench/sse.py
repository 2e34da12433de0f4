"""The events phase: N reply event streams held open on ONE gunicorn web process, at rest and while streaming.

A one-process gunicorn (the command ``make run`` uses) starts beside the stack's web.
N generations are recorded as running, with nobody writing them, so the streams sit
open and idle (heartbeats only): that is "at rest". Then this process writes a token
into every reply's Redis stream once a second, as a worker would (webapp.live), and
the streams carry them: "while streaming". Finally each generation is finished as a
worker finishes one, and every stream must end with exactly the text written.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from datetime import timedelta

import httpx

from supervisor import gunicorn_command
from tests.support.ports import free_port
from tests.support.sse import aiter_events
from tests.support.stack import start_process, stop_process
from tests.support.waiting import wait_for

from . import procs
from .fake_provider import stamps
from .stack import Stack


def _running_generations(stack: Stack, username: str, count: int) -> list[int]:
    """``count`` generations of ``username``'s, recorded as running and marked so in Redis (no job behind them)."""
    os.environ.update(stack.env)
    from sqlalchemy import select, update

    from webapp import create_app, live
    from webapp.conversations import start_conversation
    from webapp.extensions import db
    from webapp.generations import create_generation
    from webapp.models import Generation, GenerationStatus, Message, User, utcnow
    from webapp.queue import get_redis

    app = create_app()
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        generations = []
        for index in range(count):
            if index % 10 == 0:  # conversations of ten turns, as people have them
                conversation = start_conversation(user)
            message = Message(conversation=conversation, role="user", content="sse bench")
            db.session.add(message)
            generations.append(create_generation(message))
        ids = [g.id for g in generations]
        # Started "in the future": the worker's recovery sweep leaves a running generation alone while
        # it is younger than its start grace, and nobody runs these (this phase writes them itself).
        db.session.execute(
            update(Generation)
            .where(Generation.id.in_(ids))
            .values(status=GenerationStatus.RUNNING, started_at=utcnow() + timedelta(hours=1))
        )
        db.session.commit()
        connection = get_redis()
        for generation_id in ids:
            live.LiveWriter(connection, generation_id).reset()
        db.session.remove()
    return ids


def _finish(stack: Stack, ids: list[int], texts: dict[int, str]) -> None:
    """What a worker does at the end: the record first, then the mark in the stream."""
    from sqlalchemy import update

    from webapp import create_app, live
    from webapp.extensions import db
    from webapp.models import Generation, GenerationStatus, utcnow
    from webapp.queue import get_redis

    app = create_app()
    with app.app_context():
        for generation_id in ids:
            db.session.execute(
                update(Generation)
                .where(Generation.id == generation_id)
                .values(
                    status=GenerationStatus.SUCCEEDED,
                    text=texts[generation_id],
                    finished_at=utcnow(),
                    input_tokens=1,
                    output_tokens=len(stamps(texts[generation_id])),
                )
            )
        db.session.commit()
        connection = get_redis()
        for generation_id in ids:
            live.LiveWriter(connection, generation_id, start_offset=len(texts[generation_id])).mark(
                GenerationStatus.SUCCEEDED
            )
        db.session.remove()


class Reader:
    """One open event stream, as EventSource keeps it."""

    def __init__(self, generation_id: int):
        self.generation_id = generation_id
        self.opened = asyncio.Event()
        self.text = ""
        self.latencies_ms: list[float] = []
        self.ending: str | None = None
        self.error: str | None = None

    async def run(self, client: httpx.AsyncClient) -> None:
        try:
            async with client.stream(
                "GET", f"/chat/generations/{self.generation_id}/events", headers={"Accept": "text/event-stream"}
            ) as response:
                if response.status_code != 200:
                    self.error = f"HTTP {response.status_code}"
                    return
                async for name, data, _id in aiter_events(response):
                    if name == "status":
                        self.opened.set()
                    elif name == "text":
                        received = time.time_ns()
                        piece = json.loads(data)["text"]
                        self.text += piece
                        self.latencies_ms += [(received - s) / 1e6 for s in stamps(piece)]
                    elif name in ("done", "failed", "stopped"):
                        self.ending = name
                        return
        except httpx.HTTPError as exc:
            self.error = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            self.opened.set()


def _write_tokens(stack: Stack, ids: list[int], seconds: float, stop: threading.Event) -> dict[int, str]:
    """One token a second into every reply's stream (spread over the second), as workers would write them."""
    import redis

    from webapp import live

    connection = redis.Redis.from_url(stack.env["REDIS_URL"])
    writers = {generation_id: live.LiveWriter(connection, generation_id) for generation_id in ids}
    texts = {generation_id: "" for generation_id in ids}
    end = time.monotonic() + seconds
    gap = 1.0 / len(ids)
    while time.monotonic() < end and not stop.is_set():
        second = time.monotonic()
        for index, generation_id in enumerate(ids):
            pause = second + index * gap - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            token = f"⟨{time.time_ns()}⟩ "
            writers[generation_id].append(token)
            texts[generation_id] += token
    connection.close()
    return texts


async def sse_phase(
    stack: Stack, cookies: httpx.Cookies, username: str, streams: int, rest_seconds: float, streaming_seconds: float
) -> dict:
    port = free_port()
    web = start_process(gunicorn_command(f"127.0.0.1:{port}", 1, access_log="-"), stack.env, stack.tmp / "web-sse.log")
    try:
        url = f"http://127.0.0.1:{port}"

        def up():
            try:
                return httpx.get(f"{url}/auth/login", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 60, "one-process gunicorn up")
        worker_pid = procs.children(web.pid)[0]  # the one web process (the master only watches it)
        ids = await asyncio.to_thread(_running_generations, stack, username, streams)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        async with httpx.AsyncClient(
            base_url=url, cookies=cookies, limits=limits, timeout=httpx.Timeout(None, connect=30)
        ) as client:
            await client.get("/chat/")  # warm: imports, templates, pools
            rss_before = procs.rss_kib(worker_pid)
            readers = [Reader(generation_id) for generation_id in ids]
            opened_at = time.perf_counter()
            tasks = [asyncio.create_task(reader.run(client)) for reader in readers]
            await asyncio.wait_for(asyncio.gather(*(r.opened.wait() for r in readers)), 120)
            open_seconds = time.perf_counter() - opened_at
            open_streams = sum(1 for r in readers if r.error is None and r.ending is None)
            await asyncio.sleep(1.0)  # let the opening burst settle before measuring rest
            cpu_start, rest_start = procs.cpu_seconds(worker_pid), time.perf_counter()
            await asyncio.sleep(rest_seconds)
            cpu_at_rest = (procs.cpu_seconds(worker_pid) - cpu_start) / (time.perf_counter() - rest_start)
            rss_open = procs.rss_kib(worker_pid)
            still_open = sum(1 for r in readers if r.error is None and r.ending is None)

            stop = threading.Event()
            cpu_start, streaming_start = procs.cpu_seconds(worker_pid), time.perf_counter()
            texts = await asyncio.to_thread(_write_tokens, stack, ids, streaming_seconds, stop)
            streaming_elapsed = time.perf_counter() - streaming_start
            cpu_streaming = (procs.cpu_seconds(worker_pid) - cpu_start) / streaming_elapsed
            rss_streaming = procs.rss_kib(worker_pid)
            await asyncio.to_thread(_finish, stack, ids, texts)
            done, pending = await asyncio.wait(tasks, timeout=120)
            for task in pending:
                task.cancel()
        latencies = sorted(ms for r in readers for ms in r.latencies_ms)
        complete = sum(1 for r in readers if r.ending == "done" and r.text == texts[r.generation_id])
        tokens = sum(len(stamps(t)) for t in texts.values())
        return {
            "open_streams": still_open,
            "requested": streams,
            "opened_in_seconds": open_seconds,
            "opened": open_streams,
            "complete_at_end": complete,
            "errors": [r.error for r in readers if r.error][:5],
            "incomplete": [
                f"generation {r.generation_id}: {r.ending or 'no ending'}, {len(r.text)} of "
                f"{len(texts[r.generation_id])} characters"
                for r in readers
                if r.ending != "done" or r.text != texts[r.generation_id]
            ][:5],
            "rss_kib": rss_open,
            "rss_kib_before": rss_before,
            "rss_kib_streaming": rss_streaming,
            "kib_per_open_stream": (rss_open - rss_before) / max(1, open_streams),
            "cpu_at_rest": cpu_at_rest,
            "cpu_streaming": cpu_streaming,  # fractions of one core
            "tokens_per_second": tokens / streaming_elapsed,
            "token_delay_ms_p50": latencies[len(latencies) // 2] if latencies else None,
            "token_delay_ms_p99": latencies[int(len(latencies) * 0.99)] if latencies else None,
        }
    finally:
        stop_process(web)
