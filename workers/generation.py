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
from sqlalchemy import update
from sqlalchemy.exc import DBAPIError

from webapp import limits, live, scheduling
from webapp.access import ModelNotAllowed, check_model_usable
from webapp.database import write
from webapp.extensions import db
from webapp.llm import get_model
from webapp.llm.errors import LLMError, RateLimited
from webapp.logs import generation_id_var
from webapp.models import Generation, GenerationStatus, User, utcnow
from webapp.queue import get_redis
from webapp.usage import record_quietly as record_usage

from .app_context import app_context
from .history import conversation_turns, with_files
from .recovery import keep_final, save_final
from .routing import Route
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


def _start(generation_id: int):
    """Mark the generation running and read what the call needs, in one conditional UPDATE … RETURNING;
    None if it should not run (a duplicate job, or cancelled before it started).

    The write lock (SQLite) is held only for that statement, and a generation taken by another
    worker meanwhile is left alone. A lock is waited out and the claim tried again; if it still
    fails the generation stays queued, untouched, for the recovery sweep to queue again.
    """
    return write(lambda: _claim(generation_id, _current_job_id()))


def _current_job_id() -> str | None:
    job = get_current_job()
    return job.id if job is not None else None


def _claim(generation_id: int, job_id: str | None):
    claim = {"status": GenerationStatus.RUNNING, "started_at": utcnow()}
    if job_id:  # the job that claims it is the one that may finish it (recovery may queue another)
        claim["job_id"] = job_id
    # write() commits at once: no database connection is held while the reply streams.
    return db.session.execute(
        update(Generation)
        .where(Generation.id == generation_id, Generation.status == GenerationStatus.QUEUED)
        .values(**claim)
        .returning(
            Generation.user_id,
            Generation.source,
            Generation.provider,
            Generation.conversation_id,
            Generation.message_id,
            Generation.model_id,
            Generation.system_prompt,
            Generation.options,
            Generation.request_messages,
            Generation.streams,
            Generation.text,
            Generation.attempt_log,
        )
        .execution_options(synchronize_session=False)
    ).one_or_none()


def _call(claimed) -> dict:
    """What the provider call needs, from the claimed row: an API request (or a branch) brings its own
    turns, the last one the user's; a chat reads its conversation in one query."""
    if claimed.request_messages:
        *history, last = claimed.request_messages
        prompt, last_ids = last["content"], last.get("attachments")
    else:
        prompt, history, last_ids = conversation_turns(claimed.conversation_id, claimed.message_id)
    history, files = with_files(history, last_ids)
    return {
        "model_id": claimed.model_id,
        "prompt": prompt,
        "system": claimed.system_prompt or None,
        "history": history,
        "attachments": files,
        "options": dict(claimed.options or {}),
        "stream": claimed.streams,  # a client that reads nothing until the end: one answer, not chunks
    }


CONTINUE_PROMPT = (
    "Your answer above was cut off. Continue it exactly where it stopped, without repeating anything "
    "already written and without any preamble."
)


def _continuing(call: dict, partial: str) -> dict:
    """The call for a fallback that continues a reply broken after ``partial``: the question and the text so far
    become turns of the history, and the model is asked to go on from there."""
    question = {"role": "user", "content": call["prompt"]}
    if call["attachments"]:
        question["attachments"] = call["attachments"]
    history = [*call["history"], question, {"role": "assistant", "content": partial}]
    return {**call, "prompt": CONTINUE_PROMPT, "history": history, "attachments": []}


def _refusal(claimed) -> ModelNotAllowed | None:
    """Why the generation's user may not use its model now (provider off or not set up, model disabled,
    role allow-list): the worker's one check of model access, the safety net behind the web's. An API
    call's access was checked by the web just before it recorded the call: its user is not loaded again."""
    if claimed.source == "api":
        return None
    try:
        check_model_usable(db.session.get(User, claimed.user_id), claimed.model_id)
    except ModelNotAllowed as exc:
        return exc
    except KeyError:
        return None  # an unknown model fails below with its own reason
    finally:
        db.session.rollback()  # hold no database connection while the reply streams
    return None


def _finish(generation_id: int, text: str, outcome: Outcome, attempts: int, usage, answered=None) -> dict | None:
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
    if answered is not None:
        final.update(answered)
    try:
        db.session.rollback()
        write(lambda: save_final(generation_id, final), outage_seconds=current_app.config["FINAL_WRITE_RETRY_SECONDS"])
    except DBAPIError:
        log.error("generation %s: the database stayed unreachable; its final record waits in Redis", generation_id)
        return final
    return None


def _end_mark(call: dict, outcome: Outcome, usage, attempt_log: list | None = None) -> dict:
    """What readers need to answer the end without loading the record (``generations.outcome_of``)."""
    return {
        "status": outcome.status,
        "error": outcome.error,
        "error_code": outcome.error_code,
        "model": call["model_id"],
        "input_tokens": usage.input_tokens if usage is not None else None,
        "output_tokens": usage.output_tokens if usage is not None else None,
        "attempt_log": attempt_log,
    }


def run_generation(generation_id: int) -> str | None:
    token = generation_id_var.set(str(generation_id))  # every log line of this job names it
    try:
        return _run(generation_id)
    finally:
        generation_id_var.reset(token)


def _run(generation_id: int) -> str | None:
    with app_context():
        scheduling.job_started(generation_id, _current_job_id())  # first: its user's next one may enter RQ
        claimed = _start(generation_id)
        if claimed is None:
            scheduling.job_finished(generation_id, _current_job_id())
            return None
        call = {"model_id": claimed.model_id, "stream": claimed.streams}  # what the end needs, if reading fails
        # For the usage ledger, written even if the record is deleted meanwhile (with its conversation).
        ledger = {"user_id": claimed.user_id, "provider": claimed.provider, "source": claimed.source}
        connection = get_redis()
        # Text is written as it comes, coalesced (LIVE_FLUSH_MS); for a client that reads nothing
        # before the end, held for the end mark: one write in all.
        writer = live.LiveWriter(
            connection,
            generation_id,
            flush_seconds=current_app.config["LIVE_FLUSH_MS"] / 1000,
            hold=not call["stream"],
        )
        partial = claimed.text or ""  # a reply broken after some text, queued again for a fallback to continue
        if partial:
            writer.resume(partial)
        else:
            writer.reset()
        parts: list[str] = [partial] if partial else []
        kept = len(parts)
        outcome = Outcome()
        attempts = 0
        waited = 0.0
        route = None
        response = None
        reraise: BaseException | None = None
        try:
            refusal = _refusal(claimed)
            if refusal:
                raise refusal  # an LLMError: fails with its code (model_not_allowed, model_not_configured)
            call = _call(claimed)
            if partial:
                call = _continuing(call, partial)
            db.session.rollback()
            model = get_model(call["model_id"])
            route = Route(
                claimed.user_id,
                model,
                connection,
                writer,
                claimed.attempt_log if partial else None,
                slot=(generation_id, _current_job_id()),
            )
            model = route.start()
            while True:
                attempts += 1
                route.asking(model, waited)
                response = model.prompt(
                    call["prompt"],
                    system=call["system"],
                    history=call["history"],
                    attachments=call["attachments"],
                    stream=call["stream"],
                    **route.options(model, call["options"]),
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
                    route.failed(exc)
                    if len(parts) > kept:  # after some text: never a silent restart elsewhere; the text so far is kept
                        raise
                    replacement = route.fallback_for(model, exc)
                    if replacement is not None:
                        response.close()
                        model, waited = replacement, 0.0
                        continue
                    # Retry only while nothing has streamed: a retry after partial text would repeat it.
                    if exc.retryable and attempts < current_app.config["RETRY_MAX_ATTEMPTS"]:
                        delay = backoff_delay(attempts, exc, current_app.config["RETRY_BACKOFF_BASE"])
                        if delay <= BACKOFF_CAP_SECONDS * 3:
                            log.info("generation %s: %s; retry %d in %.1fs", generation_id, exc.code, attempts, delay)
                            time.sleep(delay)
                            waited = delay
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
                if route is not None:  # the model that answered (or failed last) is the one charged and named
                    call["model_id"], ledger["provider"] = route.model.model_id, route.model.provider
                    ledger["part"] = route.part  # a continuation's usage is a ledger row of its own
                unsaved = _finish(
                    generation_id, "".join(parts), outcome, attempts, usage, route.answered() if route else None
                )
                if unsaved is None:  # else the database is still down: the ledger row could not be written either
                    record_usage(
                        generation_id=generation_id,
                        model_id=call["model_id"],
                        status=outcome.status,
                        input_tokens=usage.input_tokens if usage is not None else 0,
                        output_tokens=usage.output_tokens if usage is not None else 0,
                        **ledger,
                    )
                try:
                    limits.settle(
                        connection,
                        generation_id,
                        usage.total_tokens if usage is not None else 0,
                        usage,
                        answered_by=(call["model_id"], ledger["provider"]) if route and route.moved else None,
                    )
                    if unsaved is None:
                        writer.mark(outcome.status, _end_mark(call, outcome, usage, route.log if route else None))
                    else:  # the sweep saves it (and marks the end, and writes the ledger row) once the database is back
                        keep_final(
                            connection,
                            generation_id,
                            {**unsaved, "ledger": {**ledger, "model_id": call["model_id"]}},
                        )
                except redis.RedisError:  # the record is saved; readers fall back to the database
                    log.warning("generation %s: could not mark the end in Redis", generation_id)
                scheduling.job_finished(generation_id, _current_job_id())  # frees its provider's slot
        if reraise is not None:
            raise reraise
        return outcome.status
