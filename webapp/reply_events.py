"""The events of one reply, for the server-sent-events endpoint.

Text and status changes come from the generation's Redis stream (``webapp.live``), so
a running reply's stream costs the database one read when it opens and one when the
reply ends (plus one a minute, as a safety net for an ending recorded only in the
database); a queued one reads its status each second. Every event carries the
character cursor it leaves the reader at: resuming from it gives exactly the text
still missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from . import live, scheduling
from .extensions import db
from .generations import outcome
from .models import Generation, GenerationStatus
from .queue import get_redis

# How a finished generation's status is named as an event.
ENDING_EVENTS = {
    GenerationStatus.SUCCEEDED: "done",
    GenerationStatus.FAILED: "failed",
    GenerationStatus.CANCELLED: "stopped",
}
POSITION_CHECK_SECONDS = 1.0  # how often a queued reply's place in the queue (and its record) is looked up
# How often a quiet running reply's record is read, at a heartbeat: every ending is marked in the
# Redis stream too, so this only matters if Redis lost data; rare, as an idle stream should cost nothing.
RECORD_CHECK_SECONDS = 60.0


@dataclass
class ReplyEvent:
    name: str  # status, text, done, failed, stopped, heartbeat
    cursor: int
    data: dict
    generation: Generation | None = None  # the finished record, with the ending events


def live_feed() -> live.LiveFeed:
    """This process's one pub/sub reader, made on first use."""
    extensions = current_app.extensions
    if "switchboard_live_feed" not in extensions:
        extensions["switchboard_live_feed"] = live.LiveFeed(get_redis())
    return extensions["switchboard_live_feed"]


def follow(generation: Generation, cursor: int, heartbeat_seconds: float) -> Iterator[ReplyEvent]:
    """Events from ``cursor`` until the generation ends; heartbeats while nothing happens.

    Raises ``redis.RedisError`` when Redis goes away mid-stream (the client reconnects
    and resumes from the last event's cursor).
    """
    # Read now: the generator runs after the view has returned (and its session has closed).
    return _follow(generation.id, generation.job_id, generation.status, max(cursor, 0), heartbeat_seconds)


def _follow(
    generation_id: int, job_id: str | None, status: str, cursor: int, heartbeat_seconds: float
) -> Iterator[ReplyEvent]:
    if status in GenerationStatus.FINISHED:
        yield from _ended(generation_id, cursor)
        return
    connection = get_redis()
    position = scheduling.position_of(connection, generation_id, job_id) if status == GenerationStatus.QUEUED else None
    db.session.commit()  # hold no database connection while the stream is open
    with live_feed().subscribe(generation_id) as subscription:
        yield ReplyEvent("status", cursor, {"status": status, "position": position})
        quiet_since = checked_position = checked_record = time.monotonic()
        while True:
            update = live.read_since(connection, generation_id, cursor)
            if status == GenerationStatus.QUEUED and (update.started or update.text):
                status, position = GenerationStatus.RUNNING, None
                yield ReplyEvent("status", cursor, {"status": status, "position": None})
            if update.text:
                cursor = update.cursor
                yield ReplyEvent("text", cursor, {"text": update.text})
            if update.statuses and (yield from _ended(generation_id, cursor)):
                return
            now = time.monotonic()
            if update.text or update.started:
                quiet_since = now
            if status == GenerationStatus.QUEUED and now - checked_position >= POSITION_CHECK_SECONDS:
                # While queued, the record is read too: a status changed only in the database (a recovery,
                # a refusal) shows up within a second, not only at the next heartbeat.
                checked_position = now
                recorded = _recorded_status(generation_id)
                if recorded is None or recorded in GenerationStatus.FINISHED:
                    if (yield from _ended(generation_id, cursor)):
                        return
                elif recorded == GenerationStatus.RUNNING:
                    status, position = recorded, None
                    quiet_since = now
                    yield ReplyEvent("status", cursor, {"status": status, "position": None})
                else:
                    moved = scheduling.position_of(connection, generation_id, job_id)
                    if moved != position and moved is not None:
                        position = moved
                        quiet_since = now
                        yield ReplyEvent("status", cursor, {"status": status, "position": position})
            timeout = quiet_since + heartbeat_seconds - now
            if status == GenerationStatus.QUEUED:
                timeout = min(timeout, checked_position + POSITION_CHECK_SECONDS - now)
            if subscription.wait(max(timeout, 0.0)):
                continue
            if time.monotonic() - quiet_since >= heartbeat_seconds:
                quiet_since = time.monotonic()
                yield ReplyEvent("heartbeat", cursor, {})
                if quiet_since - checked_record >= RECORD_CHECK_SECONDS:
                    # Safety net for an ending recorded only in the database (e.g. Redis lost its data).
                    checked_record = quiet_since
                    if (yield from _ended(generation_id, cursor)):
                        return


def _recorded_status(generation_id: int) -> str | None:
    status = db.session.scalar(select(Generation.status).where(Generation.id == generation_id))
    db.session.commit()
    return status


def _ended(generation_id: int, cursor: int):
    """Yields the ending events if the record says the generation has ended; returns whether it had."""
    db.session.expire_all()
    generation = db.session.get(Generation, generation_id)
    if generation is None:  # its conversation was deleted meanwhile
        yield ReplyEvent("stopped", cursor, {"status": GenerationStatus.CANCELLED})
        return True
    if not generation.is_finished:
        db.session.commit()
        return False
    yield from _ending(generation, cursor)
    db.session.commit()
    return True


def _ending(generation: Generation, cursor: int) -> Iterator[ReplyEvent]:
    """The text the reader still lacks (from the saved record) and the closing event."""
    text = generation.text or ""
    if len(text) > cursor:
        yield ReplyEvent("text", len(text), {"text": text[cursor:]})
        cursor = len(text)
    yield ReplyEvent(ENDING_EVENTS[generation.status], cursor, outcome(generation), generation)
