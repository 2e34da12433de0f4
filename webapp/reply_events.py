"""The one follower of a reply: its events, for the event stream, the long-poll status endpoint and the APIs.

Text and status changes come from the generation's Redis stream (``webapp.live``); the
process's one pub/sub reader (``LiveFeed``) wakes a follower when the worker writes, so no
follower holds a blocked Redis connection. The worker's end mark carries the outcome
(status, error, usage), so a follower answers the end without loading the record; only an
end marked by someone else (a stop or a recovery from the web) is read from the database.
A queued reply reads its record and queue position each second. Every event carries the
character cursor it leaves the reader at: resuming from it gives exactly the text still missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import redis
from flask import current_app
from sqlalchemy import select

from . import live, scheduling
from .extensions import db
from .generations import outcome, outcome_of
from .live_feed import LiveFeed
from .models import Generation, GenerationStatus
from .queue import get_redis

# How a finished generation's status is named as an event.
ENDING_EVENTS = {
    GenerationStatus.SUCCEEDED: "done",
    GenerationStatus.FAILED: "failed",
    GenerationStatus.CANCELLED: "stopped",
}
ENDINGS = frozenset(ENDING_EVENTS.values())
POSITION_CHECK_SECONDS = 1.0  # how often a queued reply's place in the queue (and its record) is looked up
# ... further back in the queue, less often (a tenth of its place, in seconds, at most this): a backlog of
# hundreds waiting must not cost the web a query and a script per reply and second.
POSITION_CHECK_MAX_SECONDS = 10.0
# Where no one is shown the place (a non-streaming /v1 call waits), only the record is read, this often.
QUEUED_RECORD_CHECK_SECONDS = 5.0
# How often a quiet running reply's record is read, at a heartbeat: every ending is marked in the
# Redis stream too, so this only matters if Redis lost data; rare, as an idle stream should cost nothing.
RECORD_CHECK_SECONDS = 60.0


@dataclass
class ReplyEvent:
    name: str  # status, fallback, text, done, failed, stopped, heartbeat (and "waiting", when asked for)
    cursor: int
    data: dict
    generation: Generation | None = None  # the finished record, with the ending events when asked for


def live_feed() -> LiveFeed:
    """This process's one pub/sub reader, made on first use."""
    extensions = current_app.extensions
    if "switchboard_live_feed" not in extensions:
        extensions["switchboard_live_feed"] = LiveFeed(get_redis())
    return extensions["switchboard_live_feed"]


def follow(
    generation: Generation,
    cursor: int,
    heartbeat_seconds: float,
    *,
    with_record: bool = False,
    report_waits: bool = False,
    shows_position: bool = True,
) -> Iterator[ReplyEvent]:
    """Events from ``cursor`` until the generation ends; heartbeats while nothing happens.

    ``with_record``: the ending event brings the finished record (the chat page renders it).
    ``report_waits``: a "waiting" event each time the follower is about to wait for news.
    ``shows_position``: the reader shows the queue position (False: it is never looked up).
    Raises ``redis.RedisError`` when Redis goes away mid-stream (the client reconnects
    and resumes from the last event's cursor).
    """
    cursor = max(cursor, 0)
    if generation.is_finished and not with_record:  # the record the view loaded answers: nothing else to read
        return iter(list(_ending(generation, cursor)))
    # Read now: the generator runs after the view has returned (and its session has closed).
    return _follow(
        generation.id,
        generation.job_id,
        generation.status,
        cursor,
        heartbeat_seconds,
        with_record,
        report_waits,
        shows_position,
    )


def _follow(
    generation_id: int,
    job_id: str | None,
    status: str,
    cursor: int,
    heartbeat_seconds: float,
    with_record: bool,
    report_waits: bool,
    shows_position: bool,
) -> Iterator[ReplyEvent]:
    if status in GenerationStatus.FINISHED:
        yield from _ended(generation_id, cursor)
        return
    connection = get_redis()
    position = None
    if status == GenerationStatus.QUEUED and shows_position:
        position = scheduling.position_of(connection, generation_id, job_id)
    db.session.commit()  # hold no database connection while the stream is open
    subscription = None
    try:
        yield ReplyEvent("status", cursor, {"status": status, "position": position})
        quiet_since = checked_position = checked_record = time.monotonic()
        fallbacks_seen = 0  # fallback marks sit before the text: read again until text moves the cursor
        while True:
            update = live.read_since(connection, generation_id, cursor)
            if status == GenerationStatus.QUEUED and (update.started or update.text):
                status, position = GenerationStatus.RUNNING, None
                yield ReplyEvent("status", cursor, {"status": status, "position": None})
            for news in update.fallbacks[fallbacks_seen:]:  # the reply moved on to another model
                yield ReplyEvent("fallback", cursor, news)
            fallbacks_seen = max(fallbacks_seen, len(update.fallbacks)) if not update.text else 0
            if update.text:
                cursor = update.cursor
                yield ReplyEvent("text", cursor, {"text": update.text})
            if update.statuses:
                if update.outcome is not None and not with_record:
                    yield ReplyEvent(ENDING_EVENTS[update.outcome["status"]], cursor, outcome_of(**update.outcome))
                    return
                if (yield from _ended(generation_id, cursor)):
                    return
            now = time.monotonic()
            if update.text or update.started:
                quiet_since = now
            check_every = _queued_check_seconds(position, shows_position)
            if status == GenerationStatus.QUEUED and now - checked_position >= check_every:
                # While queued, the record is read too: a status changed only in the database (a recovery,
                # a refusal) shows up within a second near the front of the queue (a few further back, and
                # every QUEUED_RECORD_CHECK_SECONDS where no position is shown), not only at a heartbeat.
                checked_position = now
                recorded = _recorded_status(generation_id)
                if recorded is None or recorded in GenerationStatus.FINISHED:
                    if (yield from _ended(generation_id, cursor)):
                        return
                elif recorded == GenerationStatus.RUNNING:
                    status, position = recorded, None
                    quiet_since = now
                    yield ReplyEvent("status", cursor, {"status": status, "position": None})
                elif shows_position:
                    moved = scheduling.position_of(connection, generation_id, job_id)
                    if moved != position and moved is not None:
                        position = moved
                        quiet_since = now
                        yield ReplyEvent("status", cursor, {"status": status, "position": position})
            timeout = quiet_since + heartbeat_seconds - now
            if status == GenerationStatus.QUEUED:
                timeout = min(timeout, checked_position + _queued_check_seconds(position, shows_position) - now)
            if report_waits:
                yield ReplyEvent("waiting", cursor, {})
            if timeout > 0:
                if subscription is None:
                    # Subscribed only once there is something to wait for; its confirmation wakes us, so a
                    # write between the read above and the subscription is read at once.
                    subscription = live_feed().subscribe(generation_id)
                if subscription.wait(timeout):
                    continue
            if time.monotonic() - quiet_since >= heartbeat_seconds:
                quiet_since = time.monotonic()
                yield ReplyEvent("heartbeat", cursor, {})
                if quiet_since - checked_record >= RECORD_CHECK_SECONDS:
                    # Safety net for an ending recorded only in the database (e.g. Redis lost its data).
                    checked_record = quiet_since
                    if (yield from _ended(generation_id, cursor)):
                        return
    finally:
        if subscription is not None:
            subscription.close()


def _queued_check_seconds(position: int | None, shows_position: bool) -> float:
    """How often a queued reply's record (and place) is read: every second near the front, less often behind."""
    if not shows_position:
        return QUEUED_RECORD_CHECK_SECONDS
    return min(POSITION_CHECK_MAX_SECONDS, max(POSITION_CHECK_SECONDS, (position or 0) / 10))


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


def progress(generation: Generation, cursor: int = 0, wait_ms: int = 0) -> dict:
    """The long-poll status endpoint's answer: text after ``cursor``, the new cursor, status, queue position,
    error, usage; held up to ``wait_ms`` for news (through the same follower as the event stream)."""
    cursor = max(cursor, 0)
    payload = {
        "id": generation.id,
        "done": generation.is_finished,
        "text": "",
        "cursor": cursor,
        "position": None,
        **outcome(generation),
    }
    parts: list[str] = []
    news = first_status = False
    try:
        for event in follow(generation, cursor, wait_ms / 1000, report_waits=True):
            if event.name == "status":
                news, first_status = news or first_status, True  # a change after the first is news
                payload.update(status=event.data["status"], position=event.data["position"])
            elif event.name == "text":
                parts.append(event.data["text"])
                news = True
            elif event.name in ENDINGS:
                payload.update(event.data, done=True, position=None)
                payload["cursor"] = event.cursor
                break
            elif event.name == "heartbeat" or (event.name == "waiting" and (news or wait_ms <= 0)):
                break
            payload["cursor"] = event.cursor
    except redis.RedisError:  # Redis is unreachable: what the record says, and keep the caller's cursor
        parts, payload["cursor"] = [], cursor
    payload["text"] = "".join(parts)
    return payload
