"""Chat completions for the API: an OpenAI-format request becomes a generation run by the RQ worker.

The request's turns are stored on the generation (``request_messages``, system
messages merged into ``system_prompt``); ``workers.generation.run_generation``
prefers them to a conversation's history. The reply is read back from the
generation's Redis stream (``webapp.live``), as the chat page does, and turned
into OpenAI's ``chat.completion`` object or ``chat.completion.chunk`` events.
"""

from __future__ import annotations

import calendar
import itertools
import json
import logging
import re
import select
import socket
import time
from dataclasses import dataclass, field

import redis
from flask import current_app, request
from sqlalchemy import update
from sqlalchemy.exc import DBAPIError

from .. import attachments
from ..access import ModelNeedsSetup, ModelNotAllowed, allowed_models, check_model_usable
from ..database import rollback_quietly, write
from ..extensions import db
from ..generations import LimitReached, QueueUnavailable, enqueue, record, stop
from ..llm import InvalidOptions, LLMError, Model, UnknownModelError, get_model, get_providers, list_provider_models
from ..llm.errors import without_addresses
from ..llm.registry import provider_configured
from ..message_size import message_too_long
from ..models import Generation, GenerationStatus, User, utcnow
from ..reply_events import ENDINGS, ReplyEvent, follow
from . import content_parts
from .errors import ApiError

log = logging.getLogger(__name__)

ROLES = {"system", "developer", "user", "assistant"}
# OpenAI's sampling options, passed on when the model has an option of that name.
OPENAI_OPTIONS = ("temperature", "top_p", "max_tokens", "frequency_penalty", "presence_penalty", "stop", "seed")
# Request fields that are never model options.
RESERVED = {
    "model",
    "messages",
    "stream",
    "stream_options",
    "n",
    "user",
    "metadata",
    "store",
    "tools",
    "tool_choice",
    "response_format",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "parallel_tool_calls",
    "max_completion_tokens",
    "service_tier",
    "modalities",
    "audio",
    "prediction",
    "reasoning_effort",
}
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
class ChatRequest:
    model: Model
    turns: list[dict]
    system: str | None
    options: dict = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False


# -- models and providers -----------------------------------------------------------


def provider_names() -> list[str]:
    return sorted(get_providers())


def unknown_provider(provider: str) -> ApiError:
    return ApiError(
        400,
        f"Unknown provider {provider!r}. Valid providers: {', '.join(provider_names())}.",
        "unknown_provider",
        extra={"valid_providers": provider_names()},
    )


def supported_models(user: User, provider: str | None) -> list[str]:
    """The models of a provider that ``user`` can use now (asking the provider's API for its list).

    What is offered is what works: a provider that is not set up gets the 400 its models would get in a
    chat, and a listed model passes the same checks a chat with it does (resolve_model)."""
    if not provider:
        raise ApiError(
            400,
            f"The 'provider' query parameter is required. Valid providers: {', '.join(provider_names())}.",
            "missing_provider",
            extra={"valid_providers": provider_names()},
        )
    if provider not in get_providers():
        raise unknown_provider(provider)
    if not provider_configured(provider):
        label = get_providers()[provider]["label"]
        raise ApiError(
            400,
            f"{label} ({provider}) is not set up on this server yet, so its models cannot be used. "
            "Pick another provider, or ask an administrator to set it up.",
            "model_not_configured",
        )
    try:
        return [name for name in list_provider_models(provider) if _offered(user, name, provider)]
    except UnknownModelError:
        raise unknown_provider(provider) from None
    except LLMError as exc:
        label = get_providers()[provider]["label"]
        status = 503 if exc.code in {"provider_unavailable", "provider_timeout", "missing_key"} else 502
        reason = without_addresses(str(exc))
        raise ApiError(status, f"{label} ({provider}) is unavailable right now: {reason}", exc.code) from None


def _offered(user: User, name: str, provider: str) -> bool:
    try:
        resolve_model(user, name, provider)
    except ApiError:
        return False
    return True


def usable_models(user: User) -> list[Model]:
    """The models ``user`` may call now: allowed, and their provider set up."""
    return allowed_models(user)


def resolve_model(user: User, name, provider: str | None) -> Model:
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "'model' is required: a Switchboard model id or alias (see /v1/models).", "missing_model")
    if provider is not None and provider not in get_providers():
        raise unknown_provider(provider)
    model, error = None, None
    try:
        model = get_model(name)
    except UnknownModelError as exc:
        error = exc
    if provider is not None and (model is None or model.provider != provider):
        try:
            candidate = get_model(f"{provider}/{name}")
            model = candidate if candidate.provider == provider else None
        except UnknownModelError:
            model = None
        if model is None:
            raise ApiError(
                404,
                f"The model {name!r} is not offered by the {provider} provider "
                f"(see /api/supported-models/?provider={provider}).",
                "model_not_found",
            )
    if model is None:
        raise ApiError(404, str(error), "model_not_found")
    try:
        check_model_usable(user, model.model_id)  # the API's one check of model access
    except ModelNeedsSetup as exc:  # not temporary (a 503 would be retried by clients): a plain 400
        raise ApiError(400, str(exc), "model_not_configured") from None
    except ModelNotAllowed as exc:
        raise ApiError(403, str(exc), "model_not_allowed") from None
    return model


# -- the request ----------------------------------------------------------------------


def _turns(messages) -> tuple[list[dict], str | None]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(
            400, '\'messages\' is required: a non-empty list of {"role", "content"} objects.', "missing_messages"
        )
    turns, system = [], []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ApiError(400, f"messages[{index}] must be an object.", "invalid_message")
        role = message.get("role")
        if role not in ROLES:
            raise ApiError(
                400, f"messages[{index}].role must be one of system, user, assistant (got {role!r}).", "invalid_role"
            )
        text, files = content_parts.split(message.get("content"), index, role)
        if problem := message_too_long(text):
            raise ApiError(400, f"messages[{index}]: {problem}", "message_too_long")
        if role in ("system", "developer"):
            system.append(text)
        else:
            turns.append({"role": role, "content": text, **({"files": files} if files else {})})
    if not turns or turns[-1]["role"] != "user":
        raise ApiError(400, "The last message (after any system messages) must be the user's.", "invalid_messages")
    return turns, "\n\n".join(system) or None


def _options(model: Model, body: dict) -> dict:
    known = model.Options.model_fields
    raw = {name: body[name] for name in OPENAI_OPTIONS if body.get(name) is not None}
    if body.get("max_completion_tokens") is not None and "max_tokens" not in raw:
        raw["max_tokens"] = body["max_completion_tokens"]
    if isinstance(raw.get("stop"), list):
        if len(raw["stop"]) > 1:
            raise ApiError(400, "Only one stop sequence is supported.", "invalid_options")
        raw["stop"] = raw["stop"][0] if raw["stop"] else None
    # The model's own options (e.g. echo's "delay") may be given too; OpenAI options it lacks are ignored.
    raw.update(
        {
            name: value
            for name, value in body.items()
            if name in known and name not in RESERVED and name not in raw and value is not None
        }
    )
    options = {name: value for name, value in raw.items() if name in known and value is not None}
    try:
        model.validate_options(options)
    except InvalidOptions as exc:
        raise ApiError(400, str(exc), "invalid_options") from None
    return options


def parse_request(user: User, body, provider: str | None = None) -> ChatRequest:
    """The OpenAI-format request, checked field by field (each failure is OpenAI's error shape with the
    field's own code); the model's options are validated by its pydantic ``Options`` class."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", "invalid_json")
    turns, system = _turns(body.get("messages"))
    model = resolve_model(user, body.get("model"), provider)
    turns = content_parts.load(model, turns)  # files read and checked once the model may be used
    if body.get("n") not in (None, 1):
        raise ApiError(400, "Only n=1 is supported.", "invalid_options")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false.", "invalid_stream")
    stream_options = body.get("stream_options") or {}
    include_usage = bool(isinstance(stream_options, dict) and stream_options.get("include_usage"))
    return ChatRequest(model, turns, system, _options(model, body), stream, include_usage)


def start(user: User, chat: ChatRequest) -> Generation:
    """Record the generation (committed first, through the one recorder), then queue its job."""
    has_files = any(turn.get("uploads") for turn in chat.turns)

    def save() -> Generation:
        generation = record(
            user_id=user.id,
            source="api",
            model_id=chat.model.model_id,
            provider=chat.model.provider,
            system_prompt=chat.system,
            options=chat.options,
            request_messages=None if has_files else chat.turns,
            streams=chat.stream,
        )
        if has_files:  # its files name the generation: stored once it has its id
            generation.request_messages = _with_attachment_ids(user, chat.turns, generation)
            db.session.execute(
                update(Generation)
                .where(Generation.id == generation.id)
                .values(request_messages=generation.request_messages)
                .execution_options(synchronize_session=False)
            )
        return generation

    generation = write(save)
    try:
        enqueue(generation, user=user)
    except LimitReached as exc:
        raise ApiError(
            429,
            str(exc),
            exc.code,
            headers={"Retry-After": str(exc.retry_after)},
            type="insufficient_quota" if exc.code == "insufficient_quota" else None,
        ) from None
    except QueueUnavailable as exc:
        raise ApiError(503, str(exc).replace(" Your message is saved;", ""), "queue_unavailable") from None
    return generation


def _with_attachment_ids(user: User, turns: list[dict], generation: Generation) -> list[dict]:
    """The turns as stored: each turn's files stored (once per content) and named by their ids."""
    stored = []
    for turn in turns:
        uploads = turn.get("uploads")
        turn = {"role": turn["role"], "content": turn["content"]}
        if uploads:
            links = attachments.attach(user.id, uploads, generation=generation)
            db.session.flush()
            turn["attachments"] = [link.id for link in links]
        stored.append(turn)
    return stored


# -- waiting and reading ----------------------------------------------------------------
# Every reader goes through the one follower (reply_events.follow): woken by the process's pub/sub
# reader, answered at the end from the worker's end mark (its outcome), with no reload of the record.


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
    )


def wait_until_finished(generation: Generation) -> Answer:
    """Block (holding no database connection) until the job finishes; past JOB_TIMEOUT it is cancelled (504)."""
    deadline = time.monotonic() + current_app.config["JOB_TIMEOUT"]
    parts: list[str] = []
    events = follow(generation, 0, WAIT_SLICE_MS / 1000)
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
    """Server-Sent Events for a queued generation, once its first text is there (``ApiError`` if it failed first).

    A failure known by then (provider not reachable, key refused, limits...) becomes the
    HTTP status of the answer instead of an error inside a 200 stream.
    """
    generation_id = generation.id
    deadline = time.monotonic() + current_app.config["JOB_TIMEOUT"]
    events = follow(generation, 0, STREAM_WAIT_MS / 1000)
    first: list[ReplyEvent] = []
    try:
        for event in events:
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
    return _events(generation, include_usage, first, events, deadline)


def _events(generation: Generation, include_usage: bool, first: list[ReplyEvent], events, deadline: float):
    """The events; a client that hangs up cancels the job."""
    generation_id, model_id, created = generation.id, generation.model_id, _created(generation)

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


# -- cancelling -----------------------------------------------------------------------


def cancel(generation_id: int) -> None:
    """Cancel a generation nobody is waiting for: the same stop as the chat's Stop button
    (a queued one never runs; a running one closes its provider stream and keeps its text)."""
    db.session.rollback()
    generation = db.session.get(Generation, generation_id)
    if generation is None:
        return
    try:
        stop(generation)
    except QueueUnavailable:
        log.warning("could not cancel generation %s: Redis is unavailable", generation_id)
