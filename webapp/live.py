"""The growing text of a running generation, kept in Redis where the web can read it cheaply.

Each generation has a Redis stream. A chunk is added with the explicit entry id
``<end offset>-0`` (its end position, in characters, in the reply), and a status
change with ``<offset>-1``. A reader that already holds ``cursor`` characters
asks for entries after ``<cursor>-0`` and gets exactly the text it lacks, and can
block on the same call until some arrives (``wait``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis

STREAM_TTL_SECONDS = 24 * 3600


def stream_key(generation_id: int) -> str:
    return f"switchboard:generation:{generation_id}:live"


def stop_key(generation_id: int) -> str:
    return f"switchboard:generation:{generation_id}:stop"


def request_stop(connection: redis.Redis, generation_id: int) -> None:
    """Ask the worker running this generation to stop at its next chunk."""
    connection.set(stop_key(generation_id), 1, ex=STREAM_TTL_SECONDS)


def stop_requested(connection: redis.Redis, generation_id: int) -> bool:
    return bool(connection.exists(stop_key(generation_id)))


def forget(connection: redis.Redis, generation_id: int) -> None:
    """Drop everything kept in Redis for a generation (its text stream and stop key)."""
    connection.delete(stream_key(generation_id), stop_key(generation_id))


class LiveWriter:
    """Used by the worker: appends chunks for one generation."""

    def __init__(self, connection: redis.Redis, generation_id: int, start_offset: int = 0):
        self.connection = connection
        self.key = stream_key(generation_id)
        self.stop_key = stop_key(generation_id)
        self.offset = start_offset

    def reset(self) -> None:
        self.connection.delete(self.key)
        self.offset = 0

    def append(self, chunk: str) -> bool:
        """Add a chunk; returns whether a stop was requested (checked in the same round trip)."""
        if not chunk:
            return False
        start = self.offset
        self.offset += len(chunk)
        pipe = self.connection.pipeline(transaction=False)
        pipe.xadd(self.key, {"s": start, "t": chunk}, id=f"{self.offset}-0")
        if start == 0:
            pipe.expire(self.key, STREAM_TTL_SECONDS)
        pipe.exists(self.stop_key)
        return bool(pipe.execute()[-1])

    def mark(self, status: str) -> None:
        self.connection.xadd(self.key, {"status": status}, id=f"{self.offset}-1")
        self.connection.expire(self.key, STREAM_TTL_SECONDS)


@dataclass
class LiveRead:
    text: str = ""
    cursor: int = 0
    statuses: list[str] = field(default_factory=list)


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
                    parts.append(chunk[max(skip, 0):])
                    result.cursor = start + len(chunk)
            elif b"status" in fields:
                result.statuses.append(fields[b"status"].decode())
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
                if b"status" in fields:
                    return fields[b"status"].decode()


def stop_key(generation_id: int) -> str:
    return f"switchboard:generation:{generation_id}:stop"


def request_stop(connection: redis.Redis, generation_id: int) -> None:
    """Ask the worker running this generation to stop at its next chunk."""
    connection.set(stop_key(generation_id), 1, ex=STREAM_TTL_SECONDS)


def stop_requested(connection: redis.Redis, generation_id: int) -> bool:
    return bool(connection.exists(stop_key(generation_id)))
