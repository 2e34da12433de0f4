"""Domain functions for generations: create one, queue its job, read its progress."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import redis
from sqlalchemy import String, cast, func, insert, literal, null, select, update
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from . import fallbacks, limits, live, scheduling
from .database import write
from .extensions import db
from .llm import get_model
from .model_options import applicable_options
from .models import Generation, GenerationStatus, Message, User, utcnow
from .queue import get_redis, job_id_for

log = logging.getLogger(__name__)

JOB_FUNCTION = "workers.generation.run_generation"
QUEUE_UNAVAILABLE = "The job queue is unavailable right now. Your message is saved; try again in a moment."
QUEUE_HELD = (
    "The job queue is unavailable right now. Your message is saved and will be answered "
    "as soon as the queue is back; there is nothing you need to do."
)
# How long a stop waits for the worker to notice the stop key (it checks between chunks)
# before asking RQ to stop the job, and then for the worker to finish after that.

# A clear headline for each failure code; the generation's own error adds the detail.
FAILURE_HEADLINES = {
    "rate_limited": "The provider is rate limiting requests.",
    "provider_unavailable": "The model provider is unavailable right now.",
    "provider_timeout": "The model provider did not answer in time.",
    "authentication_failed": "The provider rejected the API key; an administrator needs to fix it.",
    "bad_request": "The provider rejected the request.",
    "content_cut_off": "The answer was cut off before it was complete.",
    "missing_key": "No API key is configured for this model's provider.",
    "invalid_options": "This conversation's options are not valid for its model; change them in the settings.",
    "unknown_model": "This conversation's model is no longer available; pick another one in the settings.",
    "model_not_allowed": "This model is not available to your account; pick another one in the settings.",
    "model_not_configured": "The provider of this model is not set up.",
    "queue_unavailable": "The job queue was unavailable, so the reply was never started.",
    "queue_lost": "The job queue went away while this reply was being written.",
    "worker_stopped": "The worker was shut down while writing this reply.",
    "not_started": "The reply could not be started.",
    "limit_exceeded": "You have reached your usage limit.",
    "insufficient_quota": "The monthly spending budget is used up.",
    "job_timeout": "The reply took longer than the time limit.",
    "internal_error": "The worker hit an internal error while writing this reply.",
    "model_not_multimodal": "This conversation's model cannot read images; pick another one in the settings.",
    "unreadable_pdf": "The text of an attached PDF could not be read.",
}
_RETRY_AFTER_RE = re.compile(r"retry after ([0-9]+(?:\.[0-9]+)?) ?s", re.IGNORECASE)


class NotQueued(RuntimeError):
    """The generation was recorded but its job was not queued; ``str()`` says why."""

    status_code = 503
    retry_after: int | None = None
    conversation_id: int | None = None  # where the page goes next, when the message was saved


class QueueUnavailable(NotQueued):
    status_code = 503


class LimitReached(NotQueued):
    status_code = 429

    def __init__(self, message: str, retry_after: int, code: str = "limit_exceeded"):
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code  # "insufficient_quota" for a spent monthly budget


def create_generation(
    message: Message, source: str = "web", streams: bool = True, request_messages: list | None = None
) -> Generation:
    """Record a generation for the user's message, using the conversation's model and settings.

    Whether the user may use the model is decided before (``access.check_model_usable`` at the
    page's or API's boundary); a model that no longer exists is recorded as failed, never queued.
    """
    conversation = message.conversation
    if message.id is None:
        db.session.flush()  # the message's id, for the generation's row
    try:
        model = get_model(conversation.model_id)
        model_id, provider, error = model.model_id, model.provider, None
    except KeyError as exc:  # the model was removed since the conversation chose it
        model_id, provider, error = conversation.model_id, "unknown", str(exc).strip("'\"")
    generation = record(
        user_id=conversation.user_id,
        conversation_id=conversation.id,
        message_id=message.id,
        source=source,
        model_id=model_id,
        provider=provider,
        system_prompt=conversation.system_prompt,
        options=dict(conversation.options or {}),
        streams=streams,
        request_messages=request_messages,
        refused=(error, "unknown_model") if error else None,
    )
    set_committed_value(generation, "message", message)  # for the token estimate; no write, no query
    return generation


def record(
    *,
    user_id: int,
    model_id: str,
    provider: str,
    source: str,
    streams: bool,
    conversation_id: int | None = None,
    message_id: int | None = None,
    system_prompt: str | None = None,
    options: dict | None = None,
    request_messages: list | None = None,
    refused: tuple[str, str] | None = None,
) -> Generation:
    """The one recorder of a generation, called inside ``database.write()``: one INSERT … RETURNING
    gives the row its id and its job id (made from the id) and sets ``enqueued_at``, so the recovery
    sweep leaves it alone for its grace period while the web queues it (``enqueue``, after commit).

    ``refused``: (error, code) of a generation recorded as failed and never queued.
    Returns the record detached from the session, fully loaded: reading it after the commit costs no query.
    """
    now = utcnow()
    values = {
        "user_id": user_id,
        "conversation_id": conversation_id,
        "message_id": message_id,
        "source": source,
        "status": GenerationStatus.QUEUED,
        "model_id": model_id,
        "provider": provider,
        "system_prompt": system_prompt,
        "options": dict(options or {}),
        "request_messages": request_messages,
        "streams": streams,
        "text": "",
        "error": None,
        "error_code": None,
        "attempts": 0,
        "requeues": 0,
        "enqueued_at": now,
        "finished_at": None,
        "created_at": now,
    }
    if refused:  # recorded, never queued: the page shows why
        values.update(status=GenerationStatus.FAILED, error=refused[0], error_code=refused[1], finished_at=now)
    columns = Generation.__table__.c
    next_id = _next_generation_id().subquery()
    statement = (
        insert(Generation)
        .from_select(
            ["id", "job_id", *values],
            select(
                next_id.c.id,
                literal(job_id_for(0)[:-1], String) + cast(next_id.c.id, String),
                *(null() if value is None else literal(value, columns[name].type) for name, value in values.items()),
            ),
        )
        .returning(Generation.id)
    )
    generation_id = db.session.execute(statement).scalar_one()
    generation = Generation(id=generation_id, job_id=job_id_for(generation_id), started_at=None, **values)
    make_transient_to_detached(generation)  # as if loaded: nothing to flush, nothing expires at commit
    return generation


def _next_generation_id():
    """The id the next row gets, inside the INSERT itself: PostgreSQL's sequence, or SQLite's max + 1
    (safe: SQLite has one writer at a time, and the INSERT holds the write lock)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return select(func.nextval(f"{Generation.__tablename__}_id_seq").label("id"))
    return select((func.coalesce(func.max(Generation.id), 0) + 1).label("id"))


def enqueue(generation: Generation, hold_on_outage: bool = False, user: User | None = None) -> None:
    """Queue the job for a committed generation.

    When Redis is down: with ``hold_on_outage`` (a chat message, saved and shown) the
    generation stays queued and the workers' recovery sweep queues it once Redis is back;
    otherwise (an API caller waiting on the answer) it fails with a plain reason. Either
    way ``QueueUnavailable`` says so.
    """
    if generation.is_finished:  # refused when created (unknown or disallowed model)
        return
    generation_id = generation.id
    try:
        limits.reserve(user if user is not None else db.session.get(User, generation.user_id), generation)
        if not generation.text:  # a new reply: its readers never see a stream left in Redis under this id
            live.forget(get_redis(), generation_id)  # (the database was reset or restored, Redis kept its data)
        scheduling.submit(generation)  # its user's line; the job enters RQ in fair order (webapp.scheduling)
    except limits.LimitExceeded as exc:
        _refuse(generation_id, str(exc), exc.code)
        raise LimitReached(str(exc), exc.retry_after, exc.code) from None
    except redis.RedisError:
        log.warning("queue unavailable while enqueuing generation %s", generation_id)
        if hold_on_outage:
            raise QueueUnavailable(QUEUE_HELD) from None
        _refuse(generation_id, QUEUE_UNAVAILABLE, "queue_unavailable")
        raise QueueUnavailable(QUEUE_UNAVAILABLE) from None


enqueue_job = scheduling.enqueue_job  # the RQ job itself: its id only, never objects or secrets


class CannotContinue(ValueError):
    """A reply that cannot be continued with that model; ``str()`` says why, plainly."""


def continue_reply(user: User, generation: Generation, model_id: str) -> Generation:
    """Queue a reply that broke after some text again, for ``model_id`` (a fallback of its model that the user
    may use now) to continue from the text it has; the continuation is appended to the same reply.

    The record is queued again under a new job id (its text kept, its error cleared) in one conditional
    UPDATE, committed before the job is queued; its live stream starts again from the text it has."""
    offered = fallbacks.continuation_model(user, generation)
    if generation.status != GenerationStatus.FAILED or not generation.text:
        raise CannotContinue("Only a reply that broke off after some text can be continued.")
    if offered is None or offered.model_id != model_id:
        raise CannotContinue(f"This reply cannot be continued with {model_id}.")
    generation_id, text = generation.id, generation.text
    job_id = f"{job_id_for(generation_id)}-c{len(generation.attempt_log or ()) + generation.requeues}"

    def requeue() -> bool:
        return bool(
            db.session.execute(
                update(Generation)
                .where(Generation.id == generation_id, Generation.status == GenerationStatus.FAILED)
                .values(
                    status=GenerationStatus.QUEUED,
                    error=None,
                    error_code=None,
                    job_id=job_id,
                    model_id=offered.model_id,
                    provider=offered.provider,
                    options=applicable_options(offered, generation.options),
                    enqueued_at=utcnow(),
                    started_at=None,
                    finished_at=None,
                )
                .execution_options(synchronize_session=False)
            ).rowcount
        )

    if not write(requeue):
        raise CannotContinue("This reply has changed meanwhile; reload the page.")
    db.session.expire_all()
    generation = db.session.get(Generation, generation_id)
    try:
        live.seed(get_redis(), generation_id, text)
    except redis.RedisError:
        pass  # enqueue says so (and the sweep queues it once Redis is back)
    enqueue(generation, hold_on_outage=True, user=user)
    return generation


def _refuse(generation_id: int, error: str, error_code: str) -> None:
    """Fail a generation that never ran (only if it is still queued)."""

    def refuse():
        db.session.execute(
            update(Generation)
            .where(Generation.id == generation_id, Generation.status == GenerationStatus.QUEUED)
            .values(status=GenerationStatus.FAILED, error=error, error_code=error_code, finished_at=utcnow())
            .execution_options(synchronize_session=False)
        )

    write(refuse)
    db.session.expire_all()


def current_text(generation: Generation) -> str:
    """The reply as it stands: the saved text, or for an active generation what has streamed so far."""
    if generation.is_finished:
        return generation.text or ""
    try:
        return live.read_all(get_redis(), generation.id)
    except redis.RedisError:
        return generation.text or ""


@dataclass(frozen=True)
class LiveState:
    """An active reply as a page shows it: the text so far and its place in the queue."""

    text: str
    position: int | None


def live_states(generations) -> dict[int, LiveState]:
    """The live state of each active reply among ``generations``, read once by the view (templates read no Redis)."""
    return {g.id: LiveState(current_text(g), queue_position(g)) for g in generations if not g.is_finished}


queue_position = scheduling.queue_position  # the place in the fair order, 1 for the next to start


def failure_headline(generation: Generation) -> str:
    return FAILURE_HEADLINES.get(generation.error_code or "", "The reply failed.")


def retry_after_seconds(generation: Generation) -> float | None:
    match = _RETRY_AFTER_RE.search(generation.error or "")
    return float(match.group(1)) if match else None


def outcome(generation: Generation) -> dict:
    """How a reply stands for a reader (the status endpoint and the event stream): error, model, usage."""
    return outcome_of(
        generation.status,
        generation.error,
        generation.error_code,
        generation.model_id,
        generation.input_tokens,
        generation.output_tokens,
        generation.attempt_log,
    )


def outcome_of(status, error, error_code, model, input_tokens, output_tokens, attempt_log=None) -> dict:
    """``outcome`` from its parts (as the worker's end mark carries them)."""
    failed = status == GenerationStatus.FAILED
    return {
        "status": status,
        "error": error,
        "error_code": error_code,
        "error_headline": FAILURE_HEADLINES.get(error_code or "", "The reply failed.") if failed else None,
        "retry_after": float(match.group(1)) if failed and (match := _RETRY_AFTER_RE.search(error or "")) else None,
        "model": model,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        "fallback": fallbacks.trail_sentence(attempt_log, model),  # "answered by X after Y was rate limited"
        "attempts": attempt_log or [],
    }
