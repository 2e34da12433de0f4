"""What an API client gets for its generation: a chat.completion once it has finished, or its chat.completion.chunk
stream as it is written (a client that hangs up cancels it); failures in OpenAI's shape.

Every reader goes through the one follower (reply_events.follow): woken by the process's pub/sub reader, answered
at the end from the worker's end mark (its outcome), with no reload of the record."""

from __future__ import annotations

import calendar
import itertools
import json
import logging
import re
import select
import socket
import time
from dataclasses import dataclass

import redis
from flask import current_app, request
from sqlalchemy.exc import DBAPIError

from .. import fallbacks
from ..database import rollback_quietly
from ..llm.errors import without_addresses
from ..models import Generation, GenerationStatus, utcnow
from ..reply_events import ENDINGS, ReplyEvent, follow
from .completions import cancel
from .errors import ApiError

log = logging.getLogger(__name__)

FALLBACK_HEADER = "X-Switchboard-Fallback"  # every model asked, when a fallback answered: "gpt-4o=rate_limited, ..."
STREAM_WAIT_MS = 2000  # longest silence on a stream before a keep-alive comment (which also notices hang-ups)


WAIT_SLICE_MS = 5000


FAILURE_STATUS = {
    "rate_limited": 429,
    "provider_unavailable": 503,
    "provider_timeout": 504,
    "authentication_failed": 502,
    "bad_request": 400,
    "invalid_options": 400,
    "content_cut_off": 502,
    "missing_key": 503,
    "unknown_model": 404,
    "model_not_allowed": 403,
    "queue_unavailable": 503,
    "job_timeout": 504,
    "internal_error": 500,
    "model_not_multimodal": 400,
    "unreadable_pdf": 400,
    "unsupported_file_type": 400,
    "file_too_large": 400,
}


_RETRY_AFTER_RE = re.compile(r"retry after ([0-9]+(?:\.[0-9]+)?) ?s", re.IGNORECASE)


@dataclass
class Answer:
    """A finished generation as the API answers it: the record's fields, filled from the end mark."""

    id: int
    model_id: str
    created_at: object
    status: str
    text: str
    error: str | None = None
    error_code: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    attempt_log: list | None = None

    @property
    def fallback_header(self) -> dict:
        """``X-Switchboard-Fallback`` naming every attempt, when a fallback answered (else no header)."""
        value = fallbacks.header_value(self.attempt_log)
        return {FALLBACK_HEADER: value} if value else {}


def _answer(generation: Generation, ending: ReplyEvent, text: str) -> Answer:
    data = ending.data
    usage = data.get("usage") or {}
    return Answer(
        generation.id,
        data.get("model") or generation.model_id,
        generation.created_at,
        data.get("status", GenerationStatus.CANCELLED),
        text,
        data.get("error"),
        data.get("error_code"),
        usage.get("input_tokens"),
        usage.get("output_tokens"),
        data.get("attempts"),
    )


def wait_until_finished(generation: Generation) -> Answer:
    """Block (holding no database connection) until the job finishes; past JOB_TIMEOUT it is cancelled (504)."""
    deadline = time.monotonic() + current_app.config["JOB_TIMEOUT"]
    parts: list[str] = []
    events = follow(generation, 0, WAIT_SLICE_MS / 1000, shows_position=False)
    try:
        for event in events:
            if event.name == "text":
                parts.append(event.data["text"])
            elif event.name in ENDINGS:
                return _answer(generation, event, "".join(parts))
            elif event.name == "heartbeat" and time.monotonic() > deadline:
                events.close()
                cancel(generation.id)
                raise ApiError(504, "The model did not finish within the job time limit.", "job_timeout")
    except redis.RedisError:
        raise ApiError(503, "The job queue is unavailable right now.", "queue_unavailable") from None
    finally:
        events.close()
    raise ApiError(503, "The job queue is unavailable right now.", "queue_unavailable")


def failure(generation) -> ApiError:
    code = generation.error_code or "internal_error"
    message = without_addresses(generation.error or "The reply failed.")
    headers = {}
    if code == "rate_limited":
        match = _RETRY_AFTER_RE.search(message)
        headers["Retry-After"] = str(max(1, round(float(match.group(1))))) if match else "1"
    return ApiError(FAILURE_STATUS.get(code, 502), message, code, headers=headers)


def _created(generation) -> int:
    return calendar.timegm((generation.created_at or utcnow()).timetuple())


def _usage(generation) -> dict:
    prompt, completion = generation.input_tokens or 0, generation.output_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion_id(generation_id: int) -> str:
    return f"chatcmpl-sb{generation_id}"


def completion(generation) -> dict:
    """The OpenAI ``chat.completion`` object of a finished generation (an ``ApiError`` if it failed)."""
    if generation.status == GenerationStatus.FAILED:
        raise failure(generation)
    if generation.status == GenerationStatus.CANCELLED:
        raise ApiError(409, "The request was cancelled before the reply finished.", "cancelled")
    return {
        "id": completion_id(generation.id),
        "object": "chat.completion",
        "created": _created(generation),
        "model": generation.model_id,
        "system_fingerprint": None,
        "service_tier": None,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": generation.text or "", "refusal": None, "annotations": []},
            }
        ],
        "usage": _usage(generation),
    }


def _event(payload) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def _client_gone() -> bool:
    """Whether the client hung up while no byte of the answer was sent yet (the socket reads as closed)."""
    sock = request.environ.get("gunicorn.socket") or request.environ.get("werkzeug.socket")
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError, ValueError):  # no data after all, or a TLS socket: cannot tell
        return False
    except OSError:  # reset by the peer
        return True


def stream_events(generation: Generation, include_usage: bool):
    """Server-Sent Events for a queued generation, once its first text is there (``ApiError`` if it failed first),
    and the headers that go with them.

    A failure known by then (provider not reachable, key refused, limits...) becomes the
    HTTP status of the answer instead of an error inside a 200 stream. A fallback happens before the
    first text, so it is known by then too: the chunks name the model that answers, and
    ``X-Switchboard-Fallback`` every model asked.
    """
    generation_id = generation.id
    deadline = time.monotonic() + current_app.config["JOB_TIMEOUT"]
    events = follow(generation, 0, STREAM_WAIT_MS / 1000)
    first: list[ReplyEvent] = []
    moves: list[dict] = []
    try:
        for event in events:
            if event.name == "fallback":
                moves.append(event.data)
            if event.name == "text" or event.name in ENDINGS:
                first.append(event)
                if event.name in ENDINGS:
                    answer = _answer(generation, event, "")
                    if answer.status == GenerationStatus.FAILED:
                        raise failure(answer)
                    if answer.status == GenerationStatus.CANCELLED:
                        raise ApiError(409, "The request was cancelled before the reply finished.", "cancelled")
                break
            if event.name == "heartbeat":
                if time.monotonic() > deadline:
                    events.close()
                    cancel(generation_id)
                    raise ApiError(504, "The model did not finish within the job time limit.", "job_timeout")
                if _client_gone():
                    events.close()
                    cancel(generation_id)  # nobody is waiting: a queued job never runs
                    raise ApiError(499, "The client closed the connection.", "client_closed")
    except redis.RedisError:
        events.close()
        cancel(generation_id)
        raise ApiError(503, "The job queue is unavailable right now.", "queue_unavailable") from None
    except BaseException:
        events.close()
        raise
    model_id = moves[-1]["to"] if moves else generation.model_id
    headers = {}
    if moves:
        asked = [f"{m['from']}={m['kind']}" for m in moves] + [f"{model_id}=answered"]
        headers[FALLBACK_HEADER] = ", ".join(asked)
    return _events(generation, model_id, include_usage, first, events, deadline), headers


def _events(
    generation: Generation, model_id: str, include_usage: bool, first: list[ReplyEvent], events, deadline: float
):
    """The events; a client that hangs up cancels the job."""
    generation_id, created = generation.id, _created(generation)

    def chunk(delta, finish_reason=None):
        return _event(
            {
                "id": completion_id(generation_id),
                "object": "chat.completion.chunk",
                "created": created,
                "model": model_id,
                "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
        )

    finished = False
    try:
        yield chunk({"role": "assistant", "content": ""})
        ending = None
        for event in itertools.chain(first, events):
            if event.name == "text":
                yield chunk({"content": event.data["text"]})
            elif event.name in ENDINGS:
                ending = event
                break
            elif event.name == "heartbeat":
                if time.monotonic() > deadline:
                    events.close()
                    cancel(generation_id)
                    ending = ReplyEvent("stopped", 0, {"status": GenerationStatus.CANCELLED})
                    break
                yield ": keep-alive\n\n"
        finished = True
        answer = _answer(generation, ending, "") if ending is not None else None
        if (
            answer is None or answer.status == GenerationStatus.FAILED
        ):  # after the first text: only the stream can say so
            error = (
                failure(answer)
                if answer is not None
                else ApiError(503, "The job queue is unavailable right now.", "queue_unavailable")
            )
            yield _event(error.body())
        else:
            yield chunk({}, "stop")
            if include_usage:
                yield _event(
                    {
                        "id": completion_id(generation_id),
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model_id,
                        "choices": [],
                        "usage": _usage(answer),
                    }
                )
        yield "data: [DONE]\n\n"
    except redis.RedisError:
        log.warning("Redis went away while streaming generation %s", generation_id, exc_info=True)
        yield _event(ApiError(503, "The job queue is unavailable right now.", "queue_unavailable").body())
        yield "data: [DONE]\n\n"
    except DBAPIError:
        # Headers are sent: the 503 goes in the stream. The reply itself is kept; ask for it again later.
        finished = True  # cancelling would need the database too
        rollback_quietly()
        log.warning("the database went away while streaming generation %s", generation_id)
        yield _event(
            ApiError(
                503, "The database is unavailable right now. Please try again shortly.", "database_unavailable"
            ).body()
        )
        yield "data: [DONE]\n\n"
    finally:
        events.close()
        if not finished:  # GeneratorExit: the client hung up
            cancel(generation_id)
