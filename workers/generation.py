"""The job that runs one LLM call: ``run_generation(generation_id)``.

It takes only the generation's id, loads everything else from the database,
streams the reply into Redis as it grows (``webapp.live``), and always writes
the final text, status and reason back to the database in ``finally``.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

import redis
from flask import current_app
from rq import get_current_job
from rq.timeouts import JobTimeoutException
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import selectinload

from webapp import attachments, limits, live, scheduling
from webapp.access import ModelNotAllowed, check_model_usable
from webapp.database import write
from webapp.extensions import db
from webapp.llm import get_model
from webapp.llm.errors import LLMError, RateLimited
from webapp.logs import generation_id_var
from webapp.models import Attachment, Generation, GenerationStatus, Message, User, utcnow
from webapp.queue import get_redis
from webapp.usage import record_quietly as record_usage

from .app_context import app_context
from .recovery import keep_final, save_final
from .threaded import JobStopRequested, WorkerStopping, on_stop, shielded

log = logging.getLogger(__name__)

INTERNAL_ERROR = "The worker hit an internal error while writing this reply."
TIME_LIMIT_ERROR = "The reply took longer than the job time limit and was cut off."
WORKER_STOPPED_ERROR = (
    "The worker was shut down while writing this reply. The text so far is kept; retry to get a full reply."
)
QUEUE_LOST_ERROR = (
    "The job queue (Redis) became unavailable while this reply was being written. "
    "The text so far is kept; retry to get a full reply."
)
DATABASE_LOST_ERROR = (
    "The database became unavailable while this reply was being written. "
    "The text so far is kept; retry to get a full reply."
)
BACKOFF_CAP_SECONDS = 20.0


def conversation_history(message: Message) -> list[dict]:
    """The turns before ``message``: each earlier user message (with its attachments' ids) and the text of
    its latest reply."""
    return _history_and_files(message)[0]


def _history_and_files(message: Message) -> tuple[list[dict], list[int]]:
    """The turns before ``message`` and the ids of ``message``'s own attachments.

    Three queries whatever the length of the conversation (the messages, their replies, the attachment ids).
    """
    earlier = db.session.scalars(
        select(Message)
        .where(Message.conversation_id == message.conversation_id, Message.id < message.id)
        .order_by(Message.id)
        .options(selectinload(Message.generations))
    ).all()
    files = _attachment_ids([turn.id for turn in earlier] + [message.id])
    history = []
    for turn in earlier:
        history.append({"role": "user", "content": turn.content})
        if files.get(turn.id):
            history[-1]["attachments"] = files[turn.id]
        reply = turn.reply
        if reply is not None and reply.text:
            history.append({"role": "assistant", "content": reply.text})
    return history, files.get(message.id) or []


def _attachment_ids(message_ids: list[int]) -> dict[int, list[int]]:
    """Each message's attachment ids, in order (one query for them all)."""
    if not message_ids:
        return {}
    rows = db.session.execute(
        select(Attachment.message_id, Attachment.id)
        .where(Attachment.message_id.in_(message_ids))
        .order_by(Attachment.message_id, Attachment.position)
    )
    found: dict[int, list[int]] = {}
    for message_id, attachment_id in rows:
        found.setdefault(message_id, []).append(attachment_id)
    return found


def _with_files(turns: list[dict], last_ids) -> tuple[list[dict], list]:
    """The turns with attachment ids replaced by the files (bytes read in one query), and the last turn's."""
    ids = [i for turn in turns for i in turn.get("attachments") or ()] + list(last_ids or ())
    if not ids:
        return turns, []
    files = attachments.for_prompt(ids)
    resolved = []
    for turn in turns:
        if turn.get("attachments"):
            turn = {**turn, "attachments": [files[i] for i in turn["attachments"] if i in files]}
        resolved.append(turn)
    return resolved, [files[i] for i in last_ids or () if i in files]


@dataclass
class Outcome:
    status: str = GenerationStatus.FAILED
    error: str | None = INTERNAL_ERROR
    error_code: str | None = "internal_error"


def backoff_delay(attempt: int, error: LLMError, base: float) -> float:
    """Exponential backoff with full jitter, or the provider's Retry-After when it gave one."""
    if isinstance(error, RateLimited) and error.retry_after is not None:
        return float(error.retry_after)
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, base * 2 ** (attempt - 1)))


def _start(generation_id: int) -> dict | None:
    """Gather what the call needs, then mark the generation running; None if it should not run.

    Everything is read first and the status changes in one conditional UPDATE, so the
    write lock (SQLite) is held only for that statement, and a generation that was
    cancelled or taken by another worker meanwhile is left alone. A lock is waited out
    and the claim tried again; if it still fails the generation stays queued, untouched,
    for the recovery sweep to queue again.
    """
    return write(lambda: _claim(generation_id, _current_job_id()))


def _current_job_id() -> str | None:
    job = get_current_job()
    return job.id if job is not None else None


def _claim(generation_id: int, job_id: str | None) -> dict | None:
    generation = db.session.get(Generation, generation_id)
    if generation is None or generation.status != GenerationStatus.QUEUED:
        return None  # a duplicate job, or cancelled before it started
    if generation.request_messages:  # an API request brings its own turns; the last is the user's
        *history, last = generation.request_messages
        prompt, last_ids = last["content"], last.get("attachments")
    else:
        message = generation.message
        prompt = message.content
        history, last_ids = _history_and_files(message)
    history, files = _with_files(history, last_ids)
    call = {
        "model_id": generation.model_id,
        "prompt": prompt,
        "system": generation.system_prompt or None,
        "history": history,
        "attachments": files,
        "options": dict(generation.options or {}),
        "stream": generation.streams,  # a client that reads nothing until the end: one answer, not chunks
        "refusal": _refusal(generation),  # a ModelNotAllowed to raise, or None
        # For the usage ledger, written even if the record is deleted meanwhile (with its conversation).
        "ledger": {"user_id": generation.user_id, "provider": generation.provider, "source": generation.source},
    }
    claim = {"status": GenerationStatus.RUNNING, "started_at": utcnow()}
    if job_id:  # the job that claims it is the one that may finish it (recovery may queue another)
        claim["job_id"] = job_id
    claimed = db.session.execute(
        update(Generation)
        .where(Generation.id == generation_id, Generation.status == GenerationStatus.QUEUED)
        .values(**claim)
    ).rowcount
    # write() commits at once: no database connection is held while the reply streams.
    return call if claimed else None


def _refusal(generation: Generation) -> ModelNotAllowed | None:
    """Why the generation's user may not use its model now (provider off or not set up, model disabled,
    role allow-list): the worker's one check of model access."""
    try:
        check_model_usable(db.session.get(User, generation.user_id), generation.model_id)
    except ModelNotAllowed as exc:
        return exc
    except KeyError:
        return None  # an unknown model fails below with its own reason
    return None


def _finish(generation_id: int, text: str, outcome: Outcome, attempts: int, usage) -> dict | None:
    """The final record, in one short write transaction (retried when it meets a lock, and through a database
    outage of up to FINAL_WRITE_RETRY_SECONDS). Returns None once saved, else the record for the sweep to save."""
    final = {
        "text": text,
        "status": outcome.status,
        "error": outcome.error,
        "error_code": outcome.error_code,
        "attempts": attempts,
        "input_tokens": usage.input_tokens if usage is not None else None,
        "output_tokens": usage.output_tokens if usage is not None else None,
        "job_id": _current_job_id(),
    }
    try:
        db.session.rollback()
        write(lambda: save_final(generation_id, final), outage_seconds=current_app.config["FINAL_WRITE_RETRY_SECONDS"])
    except DBAPIError:
        log.error("generation %s: the database stayed unreachable; its final record waits in Redis", generation_id)
        return final
    return None


def run_generation(generation_id: int) -> str | None:
    token = generation_id_var.set(str(generation_id))  # every log line of this job names it
    try:
        return _run(generation_id)
    finally:
        generation_id_var.reset(token)


def _run(generation_id: int) -> str | None:
    with app_context():
        scheduling.job_started(generation_id, _current_job_id())  # first: its user's next one may enter RQ
        call = _start(generation_id)
        if call is None:
            scheduling.job_finished(generation_id, _current_job_id())
            return None
        connection = get_redis()
        writer = live.LiveWriter(connection, generation_id)
        writer.reset()
        parts: list[str] = []
        outcome = Outcome()
        attempts = 0
        response = None
        reraise: BaseException | None = None
        try:
            if call["refusal"]:
                raise call["refusal"]  # an LLMError: fails with its code (model_not_allowed, model_not_configured)
            model = get_model(call["model_id"])
            while True:
                attempts += 1
                response = model.prompt(
                    call["prompt"],
                    system=call["system"],
                    history=call["history"],
                    attachments=call["attachments"],
                    stream=call["stream"],
                    **call["options"],
                )
                unregister = on_stop(response.close)
                try:
                    for chunk in response:
                        parts.append(chunk)
                        if writer.append(chunk):  # True when a stop was requested
                            response.close()
                            outcome = Outcome(GenerationStatus.CANCELLED, None, None)
                            break
                    else:
                        outcome = Outcome(GenerationStatus.SUCCEEDED, None, None)
                    break
                except LLMError as exc:
                    # Retry only while nothing has streamed: a retry after partial text would repeat it.
                    if exc.retryable and not parts and attempts < current_app.config["RETRY_MAX_ATTEMPTS"]:
                        delay = backoff_delay(attempts, exc, current_app.config["RETRY_BACKOFF_BASE"])
                        if delay <= BACKOFF_CAP_SECONDS * 3:
                            log.info("generation %s: %s; retry %d in %.1fs", generation_id, exc.code, attempts, delay)
                            time.sleep(delay)
                            continue
                    raise
                finally:
                    unregister()
        except LLMError as exc:
            outcome = Outcome(GenerationStatus.FAILED, str(exc), exc.code)
        except KeyError as exc:  # UnknownModelError: the model was removed since the message was sent
            outcome = Outcome(GenerationStatus.FAILED, str(exc).strip("'\""), "unknown_model")
        except WorkerStopping as exc:  # a cold shutdown, not the user's Stop
            outcome = Outcome(GenerationStatus.FAILED, WORKER_STOPPED_ERROR, "worker_stopped")
            reraise = exc
        except JobStopRequested as exc:
            outcome = Outcome(GenerationStatus.CANCELLED, None, None)
            reraise = exc  # so RQ records the job as stopped
        except JobTimeoutException as exc:
            outcome = Outcome(GenerationStatus.FAILED, TIME_LIMIT_ERROR, "job_timeout")
            reraise = exc
        except DBAPIError:
            log.warning("generation %s: the database went away mid-reply", generation_id)
            outcome = Outcome(GenerationStatus.FAILED, DATABASE_LOST_ERROR, "database_unavailable")
        except redis.RedisError:
            log.warning(
                "generation %s: Redis went away mid-reply; %d characters kept", generation_id, sum(map(len, parts))
            )
            outcome = Outcome(GenerationStatus.FAILED, QUEUE_LOST_ERROR, "queue_lost")
        except Exception:
            log.exception("generation %s failed", generation_id)
        finally:
            with shielded():  # a stop arriving now must not cut the final record short
                if response is not None:
                    response.close()
                usage = response.usage if response is not None else None
                unsaved = _finish(generation_id, "".join(parts), outcome, attempts, usage)
                if unsaved is None:  # else the database is still down: the ledger row could not be written either
                    record_usage(
                        generation_id=generation_id,
                        model_id=call["model_id"],
                        status=outcome.status,
                        input_tokens=usage.input_tokens if usage is not None else 0,
                        output_tokens=usage.output_tokens if usage is not None else 0,
                        **call["ledger"],
                    )
                try:
                    limits.settle(connection, generation_id, usage.total_tokens if usage is not None else 0, usage)
                    if unsaved is None:
                        writer.mark(outcome.status)
                    else:  # the sweep saves it (and marks the end, and writes the ledger row) once the database is back
                        keep_final(
                            connection,
                            generation_id,
                            {**unsaved, "ledger": {**call["ledger"], "model_id": call["model_id"]}},
                        )
                except redis.RedisError:  # the record is saved; readers fall back to the database
                    log.warning("generation %s: could not mark the end in Redis", generation_id)
                scheduling.job_finished(generation_id, _current_job_id())  # frees its provider's slot
        if reraise is not None:
            raise reraise
        return outcome.status
