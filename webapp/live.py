"""The growing text of a running generation, kept in Redis where the web can read it cheaply.

Each generation has a Redis stream. A chunk is added with the explicit entry id
``<end offset>-0`` (its end position, in characters, in the reply), and a status
change with ``<offset>-<n>`` (n >= 1): ``running`` when a worker takes the job,
then the final status. A reader that already holds ``cursor`` characters asks for
entries after ``<cursor>-0`` and gets exactly the text it lacks, and can block on
the same call until some arrives (``wait``).

Every write also publishes on the generation's notify channel (in the same round
trip), so one pub/sub connection per web process (``webapp.live_feed.LiveFeed``) can wake all the
event streams it serves instead of each holding a blocked Redis connection.
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
from dataclasses import dataclass, field

import redis

log = logging.getLogger(__name__)

STREAM_TTL_SECONDS = 24 * 3600
RUNNING = "running"  # the one status mark that does not end a generation


def stream_key(generation_id: int) -> str:
    return f"switchboard:generation:{generation_id}:live"


def notify_channel(generation_id: int) -> str:
    return f"switchboard:generation:{generation_id}:notify"


def stop_key(generation_id: int) -> str:
    return f"switchboard:generation:{generation_id}:stop"


def request_stop(connection: redis.Redis, generation_id: int) -> None:
    """Ask the worker running this generation to stop at its next chunk."""
    connection.set(stop_key(generation_id), 1, ex=STREAM_TTL_SECONDS)


def seed(connection: redis.Redis, generation_id: int, text: str) -> None:
    """A finished reply queued again to be continued: its stream afresh, holding the text it has (no ending)."""
    key = stream_key(generation_id)
    pipe = connection.pipeline(transaction=True)
    pipe.delete(key, stop_key(generation_id))
    if text:
        pipe.xadd(key, {"s": 0, "t": text}, id=f"{len(text)}-0")
        pipe.expire(key, STREAM_TTL_SECONDS)
    pipe.publish(notify_channel(generation_id), len(text))
    pipe.execute()


def forget(connection: redis.Redis, generation_id: int) -> None:
    """Drop everything kept in Redis for a generation (its text stream and stop key)."""
    connection.delete(stream_key(generation_id), stop_key(generation_id))


class LiveWriter:
    """Used by the worker: appends chunks for one generation.

    With ``flush_seconds`` the chunks are coalesced: the first text is written at once, then what
    has arrived at most every ``flush_seconds`` (one round trip for many chunks), and a timer
    (``LiveFlusher``, one thread per process) writes what waits when no chunk comes, so a provider
    that stalls never holds text back. ``hold`` keeps everything for the end mark (a client that
    reads nothing before the end). ``mark`` always writes what waits before the status.
    """

    def __init__(
        self, connection: redis.Redis, generation_id: int, start_offset: int = 0, flush_seconds: float = 0.0, hold=False
    ):
        self.connection = connection
        self.key = stream_key(generation_id)
        self.stop_key = stop_key(generation_id)
        self.channel = notify_channel(generation_id)
        self.offset = start_offset
        self.flush_seconds = flush_seconds
        self.hold = hold
        self.stop_requested = False
        self._pending: list[str] = []
        self._written = start_offset  # the offset the stream holds text up to
        self._last_write = None  # monotonic time of the last text written
        self._scheduled = False
        self._failure: redis.RedisError | None = None  # a timer's write that failed, raised to the worker
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Start the reply afresh (the worker has just claimed it): an empty stream marked running."""
        with self._lock:
            self.offset = self._written = 0
            self._pending.clear()
        pipe = self.connection.pipeline(transaction=False)
        pipe.delete(self.key)
        pipe.xadd(self.key, {"status": RUNNING}, id="0-1")
        pipe.expire(self.key, STREAM_TTL_SECONDS)
        pipe.publish(self.channel, 0)
        pipe.execute()

    def resume(self, text: str) -> None:
        """Start a reply that already holds ``text`` (continued by another model): the stream holds it, marked
        running, and what comes next is appended after it."""
        with self._lock:
            self.offset = self._written = len(text)
            self._pending.clear()
        pipe = self.connection.pipeline(transaction=False)
        pipe.delete(self.key)
        pipe.xadd(self.key, {"status": RUNNING}, id="0-1")
        if text:
            pipe.xadd(self.key, {"s": 0, "t": text}, id=f"{len(text)}-0")
        pipe.expire(self.key, STREAM_TTL_SECONDS)
        pipe.publish(self.channel, len(text))
        pipe.execute()

    def append(self, chunk: str) -> bool:
        """Add a chunk; returns whether a stop was requested (checked with each write)."""
        with self._lock:
            if self._failure is not None:
                raise self._failure
            if chunk:
                self._pending.append(chunk)
                self.offset += len(chunk)
                if not self.hold:
                    now = time.monotonic()
                    if self._last_write is None or now - self._last_write >= self.flush_seconds:
                        self._write_pending(now)
                    elif not self._scheduled:
                        self._scheduled = True
                        LiveFlusher.shared().schedule(self, self._last_write + self.flush_seconds)
            return self.stop_requested

    def flush(self) -> None:
        """Write what waits (the timer's call; errors are kept for the worker's next append or mark)."""
        with self._lock:
            self._scheduled = False
            if self._pending and self._failure is None:
                try:
                    self._write_pending(time.monotonic())
                except redis.RedisError as exc:
                    self._failure = exc

    def _write_pending(self, now: float, pipe=None) -> None:
        """The waiting text as one entry (its end offset as id), with the stop check in the same round trip."""
        if not self._pending:
            return
        text, start = "".join(self._pending), self._written
        own = pipe is None
        pipe = pipe if pipe is not None else self.connection.pipeline(transaction=False)
        pipe.xadd(self.key, {"s": start, "t": text}, id=f"{self.offset}-0")
        if start == 0:
            pipe.expire(self.key, STREAM_TTL_SECONDS)
        self._pending.clear()
        self._written, self._last_write = self.offset, now
        if own:
            pipe.publish(self.channel, self.offset)
            pipe.exists(self.stop_key)
            self.stop_requested = bool(pipe.execute()[-1])

    def mark(self, status: str, outcome: dict | None = None) -> None:
        """Record a status change at the current offset (after any mark already there), with the text still
        waiting written first in the same round trip. ``outcome`` (JSON) travels with a final status, so
        readers need not load the record to answer."""
        fields = {"status": status}
        if outcome is not None:
            fields["outcome"] = json.dumps(outcome)
        with self._lock:
            try:
                self._mark_at(self.offset, fields, with_pending=True)
            except redis.ResponseError:
                # A writer that did not write the text (a stop or a recovery from the web) may be
                # behind the stream's end: mark after the last entry, whatever its offset.
                last = self.connection.xrevrange(self.key, count=1)
                self._mark_at(int(last[0][0].split(b"-")[0]) if last else 0, fields)

    def fallback(self, news: dict) -> None:
        """Record that the reply moved on to another model (``news``: from, to, kind) at the current offset,
        so every reader that follows the reply sees it where it happened."""
        with self._lock:
            self._mark_at(self.offset, {"fallback": json.dumps(news)}, with_pending=True)

    def _mark_at(self, offset: int, fields: dict, with_pending: bool = False) -> None:
        pipe = self.connection.pipeline(transaction=False)
        if with_pending:
            self._write_pending(time.monotonic(), pipe)
        pipe.xadd(self.key, fields, id=f"{offset}-*")
        pipe.expire(self.key, STREAM_TTL_SECONDS)
        pipe.publish(self.channel, offset)
        pipe.execute()


class LiveFlusher:
    """One thread per process that writes coalesced text when its time comes and no chunk came to write it."""

    _shared: LiveFlusher | None = None
    _shared_lock = threading.Lock()

    def __init__(self):
        self._due: list[tuple[float, int, LiveWriter]] = []
        self._sequence = 0
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    @classmethod
    def shared(cls) -> LiveFlusher:
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def schedule(self, writer: LiveWriter, when: float) -> None:
        with self._condition:
            self._sequence += 1
            heapq.heappush(self._due, (when, self._sequence, writer))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="live-flusher", daemon=True)
                self._thread.start()
            self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._due:
                    self._condition.wait()
                when, _sequence, writer = self._due[0]
                wait = when - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                heapq.heappop(self._due)
            writer.flush()


@dataclass
class LiveRead:
    text: str = ""
    cursor: int = 0
    statuses: list[str] = field(default_factory=list)  # final statuses only
    started: bool = False  # a worker has taken the job (the running mark)
    outcome: dict | None = None  # what the worker's end mark says of the end (status, error, usage)
    fallbacks: list[dict] = field(default_factory=list)  # the reply moved on to another model (LiveWriter.fallback)


def read_since(connection: redis.Redis, generation_id: int, cursor: int, wait_ms: int = 0) -> LiveRead:
    """Text after ``cursor``; with ``wait_ms`` block until some arrives or the time passes."""
    key = stream_key(generation_id)
    args = {"block": wait_ms} if wait_ms > 0 else {}
    reply = connection.xread({key: f"{cursor}-0"}, **args)
    result = LiveRead(cursor=cursor)
    parts = []
    for _key, entries in reply or []:
        for _entry_id, fields in entries:
            if b"t" in fields:
                start = int(fields[b"s"])
                chunk = fields[b"t"].decode()
                skip = result.cursor - start
                if skip < len(chunk):
                    parts.append(chunk[max(skip, 0) :])
                    result.cursor = start + len(chunk)
            elif b"fallback" in fields:
                result.fallbacks.append(json.loads(fields[b"fallback"]))
            elif b"status" in fields:
                status = fields[b"status"].decode()
                if status == RUNNING:
                    result.started = True
                else:
                    result.statuses.append(status)
                    if b"outcome" in fields and result.outcome is None:
                        result.outcome = json.loads(fields[b"outcome"])
    result.text = "".join(parts)
    return result


def read_all(connection: redis.Redis, generation_id: int) -> str:
    return read_since(connection, generation_id, 0).text


def wait_for_status(connection: redis.Redis, generation_id: int, timeout_ms: int) -> str | None:
    """Block until the worker marks the generation finished (or ``timeout_ms`` passes); that status or None."""
    key = stream_key(generation_id)
    deadline = time.monotonic() + timeout_ms / 1000
    last_id = "0-0"
    while True:
        remaining = int((deadline - time.monotonic()) * 1000)
        if remaining <= 0:
            return None
        reply = connection.xread({key: last_id}, block=remaining)
        if not reply:
            return None
        for _key, entries in reply:
            for entry_id, fields in entries:
                last_id = entry_id
                if b"status" in fields and fields[b"status"] != RUNNING.encode():
                    return fields[b"status"].decode()
