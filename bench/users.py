"""Simulated users: sign up through the real forms, send messages, follow replies as static/chat.js does
(server-sent events, or the status endpoint as its fallback does)."""

from __future__ import annotations

import html
import json
import re
import time
from dataclasses import dataclass, field

import httpx

from tests.support.forms import COMPOSER_RE, CSRF_RE, SUBMISSION_RE
from tests.support.sse import aiter_events

from .fake_provider import stamps

# One assistant reply as templates/chat/_reply.html renders it.
REPLY_RE = re.compile(
    r'<li class="message assistant[^"]*"[^>]*?data-generation-id="(\d+)"\s+data-status="(\w+)"\s+'
    r'data-cursor="(\d+)"\s+data-status-url="([^"]+)"\s+data-fragment-url="([^"]+)"(.*?)</li>',
    re.S,
)
STREAMING_RE = re.compile(r'<div class="content streaming">(.*?)</div>', re.S)
WAIT_SECONDS = 5  # as static/chat.js


class BenchError(RuntimeError):
    pass


@dataclass
class Reply:
    generation_id: int
    status: str
    cursor: int
    status_url: str
    fragment_url: str
    text: str  # what the page already showed


@dataclass
class Stats:
    latencies_ms: list[float] = field(default_factory=list)
    page_ttfb_ms: list[float] = field(default_factory=list)
    polls: int = 0
    turns: int = 0
    incomplete: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # failed turns (HTTP errors, timeouts)


class SimUser:
    def __init__(self, base_url: str, name: str, password: str = "bench password 1", transport: str = "events"):
        self.name, self.password = name, password
        self.transport = transport  # "events" (EventSource) or "polling" (the fallback)
        self.client = httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30.0), follow_redirects=False)
        self.form: tuple[str, str, str] | None = None  # composer action, csrf, submission token
        self.turns_in_conversation = 0
        self.last_generation_id: int | None = None
        self.conversation_url: str | None = None

    async def close(self) -> None:
        await self.client.aclose()

    async def _get_page(self, url: str, stats: Stats | None = None) -> str:
        """A page as the browser loads it; records time to the response headers (first byte)."""
        started = time.perf_counter()
        async with self.client.stream("GET", url, headers={"Accept": "text/html"}) as response:
            ttfb = (time.perf_counter() - started) * 1000
            body = (await response.aread()).decode()
        if response.status_code != 200:
            raise BenchError(f"GET {url}: HTTP {response.status_code}")
        if stats is not None:
            stats.page_ttfb_ms.append(ttfb)
        return body

    def _take_form(self, page: str) -> None:
        match = COMPOSER_RE.search(page)
        if not match:
            raise BenchError("no composer form on the page")
        csrf, token = CSRF_RE.search(match.group(2)), SUBMISSION_RE.search(match.group(2))
        if not csrf or not token:
            raise BenchError("composer form without csrf_token / submission_token")
        self.form = (html.unescape(match.group(1)), csrf.group(1), token.group(1))

    async def signup(self) -> None:
        page = await self._get_page("/auth/signup")
        csrf = CSRF_RE.search(page)
        response = await self.client.post(
            "/auth/signup",
            data={
                "username": self.name,
                "password": self.password,
                "confirm": self.password,
                "csrf_token": csrf.group(1),
            },
        )
        if response.status_code != 302:
            raise BenchError(f"signup {self.name}: HTTP {response.status_code}")
        await self.new_chat()

    async def new_chat(self, stats: Stats | None = None) -> None:
        self._take_form(await self._get_page("/chat/", stats))
        self.turns_in_conversation = 0

    async def turn(
        self, content: str, stats: Stats, expect_tokens: int | None = None, max_turns_per_conversation: int = 8
    ) -> str | None:
        """Send ``content``, follow the reply to the end like the page script; the reply's text.

        A failed turn is counted in ``stats.errors`` (and the next turn starts a new chat), not raised."""
        try:
            return await self._turn(content, stats, expect_tokens, max_turns_per_conversation)
        except (BenchError, httpx.HTTPError, KeyError, ValueError) as exc:
            stats.errors.append(f"{self.name}: {type(exc).__name__}: {exc}"[:300])
            self.form = None
            return None

    async def _turn(
        self, content: str, stats: Stats, expect_tokens: int | None, max_turns_per_conversation: int
    ) -> str:
        if self.form is None or self.turns_in_conversation >= max_turns_per_conversation:
            await self.new_chat(stats)
        action, csrf, token = self.form
        response = await self.client.post(
            action, data={"csrf_token": csrf, "submission_token": token, "content": content}
        )
        if response.status_code != 302:
            raise BenchError(f"POST {action}: HTTP {response.status_code}")
        location = response.headers["location"].split("#")[0]
        page = await self._get_page(location, stats)
        received_ns = time.time_ns()
        self.conversation_url = location
        self._take_form(page)
        self.turns_in_conversation += 1
        replies = [
            Reply(
                int(m[1]),
                m[2],
                int(m[3]),
                html.unescape(m[4]),
                html.unescape(m[5]),
                # running: the text streamed so far; finished: the rendered reply (stamps survive)
                html.unescape((STREAMING_RE.search(m[6]) or [None, ""])[1] if m[2] in ("queued", "running") else m[6]),
            )
            for m in REPLY_RE.finditer(page)
        ]
        if not replies:
            raise BenchError(f"no reply on {location}")
        reply = replies[-1]
        self.last_generation_id = reply.generation_id
        text = reply.text
        stats.latencies_ms.extend((received_ns - s) / 1e6 for s in stamps(text))
        if reply.status in ("queued", "running"):
            if self.transport == "events":
                text += await self.follow_events(reply, stats)  # the ending event carries the fragment
            else:
                text += await self.follow(reply, stats)
                await self.client.get(reply.fragment_url, headers={"Accept": "text/html"})  # swapIn()
        if expect_tokens is not None and len(stamps(text)) != expect_tokens:
            stats.incomplete.append(f"generation {reply.generation_id}: {len(stamps(text))}/{expect_tokens} tokens")
        stats.turns += 1
        return text

    async def follow(self, reply: Reply, stats: Stats, timeout: float = 30.0) -> str:
        """static/chat.js follow(): status?cursor=N&wait=5 until done, appending each new piece."""
        cursor, parts = reply.cursor, []
        deadline = time.monotonic() + timeout
        failures = 0
        while time.monotonic() < deadline:
            try:
                response = await self.client.get(
                    reply.status_url,
                    params={"cursor": cursor, "wait": WAIT_SECONDS},
                    headers={"Accept": "application/json"},
                )
            except httpx.TransportError:
                failures += 1
                if failures > 5:
                    raise
                continue
            received_ns = time.time_ns()
            stats.polls += 1
            if response.status_code != 200:
                raise BenchError(f"status {reply.generation_id}: HTTP {response.status_code}")
            data = response.json()
            if data["text"]:
                parts.append(data["text"])
                stats.latencies_ms.extend((received_ns - s) / 1e6 for s in stamps(data["text"]))
            cursor = data["cursor"]
            if data["done"]:
                if data["status"] != "succeeded":
                    stats.incomplete.append(f"generation {reply.generation_id}: {data['status']} {data.get('error')}")
                return "".join(parts)
        raise BenchError(f"generation {reply.generation_id} did not finish in {timeout:.0f}s")

    async def follow_events(self, reply: Reply, stats: Stats, timeout: float = 30.0) -> str:
        """static/chat.js listen(): one EventSource on .../events from the page's cursor until the ending event
        (reconnecting with Last-Event-ID if the connection drops, as EventSource does)."""
        url = reply.status_url.rsplit("/", 1)[0] + "/events"
        cursor, parts = reply.cursor, []
        deadline = time.monotonic() + timeout
        failures = 0
        while time.monotonic() < deadline:
            try:
                async with self.client.stream(
                    "GET", url, headers={"Accept": "text/event-stream", "Last-Event-ID": str(cursor)}
                ) as response:
                    stats.polls += 1
                    if response.status_code != 200:
                        raise BenchError(f"events {reply.generation_id}: HTTP {response.status_code}")
                    async for name, data, _id in aiter_events(response):
                        if name == "text":
                            received_ns = time.time_ns()
                            piece = json.loads(data)["text"]
                            parts.append(piece)
                            stats.latencies_ms.extend((received_ns - s) / 1e6 for s in stamps(piece))
                            cursor += len(piece)
                        elif name in ("done", "failed", "stopped"):
                            if name != "done":
                                stats.incomplete.append(f"generation {reply.generation_id}: {name} {data[:200]}")
                            return "".join(parts)
            except httpx.TransportError:
                failures += 1
                if failures > 5:
                    raise
        raise BenchError(f"generation {reply.generation_id} did not finish in {timeout:.0f}s")
