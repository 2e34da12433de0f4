"""Server-sent events for a reply: ``GET /chat/generations/<id>/events`` (static/chat.js follows it).

Kept apart from routes.py: this view streams for as long as the reply runs.
"""

from __future__ import annotations

import json
import re

import redis
from flask import Response, current_app, jsonify, render_template, request, stream_with_context
from flask_login import current_user
from sqlalchemy.exc import DBAPIError

from .. import conversations as convs
from ..database import rollback_quietly
from ..errors import json_endpoint
from ..extensions import db
from ..generations import live_states
from ..reply_events import follow
from . import bp

_CURSOR_RE = re.compile(r"[0-9]{1,15}")
RECONNECT_MS = 2000  # how soon EventSource reconnects (then with Last-Event-ID) after a lost connection


class BadCursor(ValueError):
    pass


def _resume_cursor() -> int:
    """Last-Event-ID (set by EventSource when it reconnects) wins over ``?cursor=``."""
    raw = (request.headers.get("Last-Event-ID") or request.args.get("cursor") or "0").strip()
    if not _CURSOR_RE.fullmatch(raw):
        raise BadCursor(raw)
    return int(raw)


@bp.route("/generations/<int:generation_id>/events")
@json_endpoint
def generation_events(generation_id):
    generation = convs.owned_generation(current_user, generation_id)
    try:
        cursor = _resume_cursor()
    except BadCursor:
        return jsonify(
            {
                "error": {
                    "message": "The cursor (Last-Event-ID or ?cursor=) must be a whole number of "
                    "characters, 0 or more.",
                    "type": "invalid_request",
                    "code": 400,
                }
            }
        ), 400
    heartbeat = float(current_app.config["SSE_HEARTBEAT_SECONDS"])
    return Response(
        stream_with_context(_event_stream(follow(generation, cursor, heartbeat, with_record=True), cursor)),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _event_stream(events, cursor: int):
    yield f"retry: {RECONNECT_MS}\n\n"
    try:
        for event in events:
            cursor = event.cursor
            if event.name == "heartbeat":
                yield ": heartbeat\n\n"
                continue
            data = event.data
            if event.generation is not None:
                data = {**data, "html": reply_fragment(event.generation)}
            yield f"id: {event.cursor}\nevent: {event.name}\ndata: {json.dumps(data)}\n\n"
    except (redis.RedisError, DBAPIError) as exc:
        part = "Redis" if isinstance(exc, redis.RedisError) else "the database"
        current_app.logger.warning("event stream ended: %s unavailable (%s)", part, type(exc).__name__)
        rollback_quietly()
        yield _reconnect_event(cursor)
    finally:
        db.session.remove()


def _reconnect_event(cursor: int) -> str:
    """The stream cannot go on (Redis or the database went away): say so, and what to do. EventSource
    reconnects by itself after RECONNECT_MS with Last-Event-ID; other clients open the stream again
    from ``cursor`` (the status endpoint works too)."""
    data = {
        "action": "reconnect",
        "retry_ms": RECONNECT_MS,
        "cursor": cursor,
        "message": "The live reply feed was interrupted; reconnecting…",
    }
    return f"id: {cursor}\nevent: reconnect\ndata: {json.dumps(data)}\n\n"


def reply_fragment(generation) -> str:
    """The finished reply as the page renders it (chat/_reply.html), for the script to swap in.

    The reply's page shows its message, so that message is the page's last unless another follows it: asked
    in one query, without reading the whole conversation (which only its id is needed of)."""
    message = generation.message
    if message is None:
        return ""
    return render_template(
        "chat/_reply.html",
        g=generation,
        message=message,
        conversation=convs.ConversationRef(message.conversation_id),
        is_last=convs.ends_its_branch(message),
        live=live_states([generation]),
    )
