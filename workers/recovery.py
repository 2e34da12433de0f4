"""Finding and finishing generations whose worker died (SIGKILL, crash, host restart) or hung,
and queued generations whose job never ran.

Every worker process keeps a short-lived "alive" key in Redis fresh from a
background thread. A running generation whose job's worker has no alive key is
orphaned: it is re-queued when nothing had streamed yet, otherwise failed with
its partial text and a plain reason. A queued generation whose job is missing
(Redis was down when it was sent, or lost it), failed, or ended without claiming
it (e.g. the claim met a database lock) is queued again. Re-queueing is bounded
(``MAX_REQUEUES``); past that the generation fails with a plain reason. Each
worker sweeps every few seconds (one at a time, under a Redis lock) and once at
start, so after a restart nothing is left "running" or stuck "queued".
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta

import redis
from flask import current_app
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import and_, func, or_, select, update

from webapp import limits, live, scheduling
from webapp.database import write
from webapp.extensions import db
from webapp.models import Generation, GenerationStatus, utcnow
from webapp.queue import worker_alive_key
from webapp.usage import record_quietly as record_usage

log = logging.getLogger(__name__)

# WORKER_ALIVE_TTL, WORKER_SWEEP_INTERVAL and QUEUED_GRACE come from the configuration (webapp.config).
# A generation just marked running may not show its worker yet: leave it this long.
START_GRACE = timedelta(seconds=30)
MAX_REQUEUES = 3
NOT_STARTED = (
    "The reply could not be started: its job was lost {count} times (the queue or a worker failed). Retry to ask again."
)
# RQ states in which a job is still on its way to a worker (or running on a live one).
WAITING_JOB_STATES = {JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
WORKER_LOST = "The worker writing this reply stopped unexpectedly (it was killed or restarted). The text so far is kept; retry to get a full reply."
JOB_FAILED = (
    "The worker hit an internal error while finishing this reply (it is logged). "
    "The text so far is kept; retry to get a full reply."
)
SWEEP_LOCK = "switchboard:recovery:lock"


def _horse_killed(connection: redis.Redis, job_id: str) -> bool:
    """Whether RQ recorded the job's process as killed (a forking worker's horse), rather than the job raising."""
    try:
        result = Job.fetch(job_id, connection=connection).latest_result()
    except NoSuchJobError:
        return True
    return result is None or "terminated unexpectedly" in (result.exc_string or "")


def final_key(generation_id: int) -> str:
    """A finished reply's final record that the worker could not save (the database was down), for the sweep."""
    return f"switchboard:generation:{generation_id}:final"


def save_final(generation_id: int, final: dict, running_only: bool = False) -> bool:
    """Write a reply's final record (inside ``write``), unless another job owns the generation now.

    ``final``: text, status, error, error_code, attempts (this job's provider calls), input_tokens,
    output_tokens and job_id (None outside RQ).
    """
    mine = [Generation.id == generation_id]
    if final["job_id"]:  # re-queued by recovery meanwhile (another job owns it now): leave it to that job
        mine.append(Generation.job_id == final["job_id"])
    if running_only:
        mine.append(Generation.status == GenerationStatus.RUNNING)
    values = {key: final[key] for key in ("text", "status", "error", "error_code")}
    values.update(attempts=Generation.attempts + final["attempts"], finished_at=utcnow())
    if final.get("attempt_log") is not None:  # the route a reply took: the model that answered, every attempt
        values.update(model_id=final["model_id"], provider=final["provider"], attempt_log=final["attempt_log"])
    if final.get("continued"):  # a fallback continued the reply: its tokens add to those of the text before
        values.update(
            input_tokens=func.coalesce(Generation.input_tokens, 0) + (final["input_tokens"] or 0),
            output_tokens=func.coalesce(Generation.output_tokens, 0) + (final["output_tokens"] or 0),
        )
    elif final["input_tokens"] is not None or final["output_tokens"] is not None:
        values.update(input_tokens=final["input_tokens"], output_tokens=final["output_tokens"])
    return bool(
        db.session.execute(
            update(Generation).where(*mine).values(**values).execution_options(synchronize_session=False)
        ).rowcount
    )


def keep_final(connection: redis.Redis, generation_id: int, final: dict) -> None:
    connection.set(final_key(generation_id), json.dumps(final), ex=live.STREAM_TTL_SECONDS)


def apply_kept_final(generation: Generation, connection: redis.Redis) -> str | None:
    """Save the final record a worker left in Redis (its reply finished while the database was down)."""
    kept = connection.get(final_key(generation.id))
    if kept is None:
        return None
    final = json.loads(kept)
    if final["job_id"] in (None, generation.job_id):
        if write(lambda: save_final(generation.id, final, running_only=True)):
            if final.get("ledger"):
                record_usage(
                    generation_id=generation.id,
                    status=final["status"],
                    input_tokens=final["input_tokens"] or 0,
                    output_tokens=final["output_tokens"] or 0,
                    **final["ledger"],
                )
            live.LiveWriter(connection, generation.id, start_offset=len(final["text"])).mark(final["status"])
            log.warning(
                "generation %s: saved the final record its worker kept while the database was down", generation.id
            )
    connection.delete(final_key(generation.id))
    return final["status"]


def worker_alive(connection: redis.Redis, worker_name: str | None) -> bool:
    return bool(worker_name) and bool(connection.exists(worker_alive_key(worker_name)))


def queued_grace() -> timedelta:
    """A queued generation is saved just before its job is queued: give the web this long to queue it."""
    return timedelta(seconds=current_app.config["QUEUED_GRACE"])


class Liveness(threading.Thread):
    """Keeps this process's alive key fresh; stops refreshing if the process hangs or dies."""

    def __init__(self, connection: redis.Redis, worker_name: str, ttl_seconds: float):
        super().__init__(name="switchboard-liveness", daemon=True)
        self.connection = connection
        self.key = worker_alive_key(worker_name)
        self.ttl_ms = int(ttl_seconds * 1000)
        self.refresh_seconds = ttl_seconds / 3
        self.stopped = threading.Event()

    def run(self) -> None:
        while True:
            try:
                self.connection.set(self.key, 1, px=self.ttl_ms)
            except redis.RedisError:
                log.warning("liveness: Redis unavailable", exc_info=False)
            if self.stopped.wait(self.refresh_seconds):
                break
        try:
            self.connection.delete(self.key)
        except redis.RedisError:
            pass


def job_state(connection: redis.Redis, job_id: str | None) -> tuple[str | None, str | None]:
    """(worker name, RQ status) of the generation's job; (None, None) when the job is gone."""
    if not job_id:
        return None, None
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return None, None
    return job.worker_name, job.get_status(refresh=False)


def recover(generation: Generation, connection: redis.Redis) -> str | None:
    """Finish or re-queue ``generation`` if its worker is gone. Returns what was done, or None."""
    if generation.status != GenerationStatus.RUNNING:
        return None
    kept = apply_kept_final(generation, connection)
    if kept is not None:
        return kept
    worker_name, job_status = job_state(connection, generation.job_id)
    if job_status == JobStatus.FINISHED:
        return None  # it ended between our two reads: the worker has written the record itself
    # The worker lives and the job is still its own: nothing to do. (A killed forking
    # horse leaves a live worker but a failed or stopped job.)
    alive = worker_alive(connection, worker_name)
    if alive and job_status in (JobStatus.STARTED, JobStatus.QUEUED, None):
        return None
    if worker_name is None and generation.started_at and utcnow() - generation.started_at < START_GRACE:
        return None
    text = live.read_all(connection, generation.id)
    if text:
        # The true reason: a live worker whose job raised (not a killed forking horse) failed, it was not lost.
        error, code = WORKER_LOST, "worker_lost"
        if alive and job_status == JobStatus.FAILED and not _horse_killed(connection, generation.job_id):
            error, code = JOB_FAILED, "internal_error"
        # Conditional: a worker that was only slow, not dead, may have finished meanwhile.
        if not _still(
            generation,
            GenerationStatus.RUNNING,
            status=GenerationStatus.FAILED,
            text=text,
            error=error,
            error_code=code,
            finished_at=utcnow(),
        ):
            return None
        live.LiveWriter(connection, generation.id, start_offset=len(text)).mark(GenerationStatus.FAILED)
        # Its usage was never reported: the reply so far, about four characters a token, replaces the estimate.
        limits.settle(connection, generation.id, len(text) // 4)
        # ... and the ledger charges the same, so the month's spend and the usage page outlive the conversation.
        record_usage(
            generation_id=generation.id,
            user_id=generation.user_id,
            model_id=generation.model_id,
            provider=generation.provider,
            source=generation.source,
            status=GenerationStatus.FAILED,
            input_tokens=0,
            output_tokens=len(text) // 4,
        )
        log.warning("generation %s: %s; failed with %d characters kept", generation.id, code, len(text))
        return "failed"
    # Nothing streamed: run it again on a live worker, under a new job id.
    return _requeue(generation, GenerationStatus.RUNNING, f"worker {worker_name} lost before any text", connection)


def recover_queued(generation: Generation, connection: redis.Redis) -> str | None:
    """Queue again a generation that waits for a job that will never run it. Returns what was done, or None."""
    if generation.status != GenerationStatus.QUEUED:
        return None
    if generation.enqueued_at is not None and utcnow() - generation.enqueued_at < queued_grace():
        return None
    if scheduling.is_waiting(connection, generation):
        return None  # in its user's line (webapp.scheduling): no job yet, by design
    worker_name, job_status = job_state(connection, generation.job_id)
    if job_status in WAITING_JOB_STATES and job_status != JobStatus.DEFERRED:
        if not scheduling.lost_in_handover(connection, generation, queued_grace().total_seconds()):
            return None
    # (A deferred job outside every line, or one a dead worker took off the queue, waits for ever: queue again.)
    if job_status == JobStatus.STARTED and worker_alive(connection, worker_name):
        return None  # claiming it right now
    return _requeue(generation, GenerationStatus.QUEUED, f"job {job_status or 'missing'}", connection)


def _requeue(generation: Generation, from_status: str, why: str, connection: redis.Redis) -> str | None:
    """A new job for the generation, or a plain failure once it has been re-queued ``MAX_REQUEUES`` times."""
    if generation.requeues >= MAX_REQUEUES:
        if not _still(
            generation,
            from_status,
            status=GenerationStatus.FAILED,
            error=NOT_STARTED.format(count=generation.requeues + 1),
            error_code="not_started",
            finished_at=utcnow(),
        ):
            return None
        limits.settle(connection, generation.id, 0)  # it never ran: nothing used
        log.warning(
            "generation %s: %s, and re-queued %d times already; failed", generation.id, why, generation.requeues
        )
        return "failed"
    count = generation.requeues + 1
    job_id = f"generation-{generation.id}-r{count}"
    if not _still(
        generation,
        from_status,
        status=GenerationStatus.QUEUED,
        started_at=None,
        job_id=job_id,
        requeues=count,
        enqueued_at=utcnow(),
    ):
        return None
    scheduling.resubmit(connection, generation, job_id)  # back in its user's line, under the new job id
    log.warning("generation %s: %s; re-queued (%d of %d)", generation.id, why, count, MAX_REQUEUES)
    return "requeued"


def _still(generation: Generation, current_status: str, **values) -> bool:
    """Apply ``values`` only if the generation is still ``current_status`` under the same job (one conditional UPDATE)."""
    generation_id, job_id = generation.id, generation.job_id
    return write(
        lambda: bool(
            db.session.execute(
                update(Generation)
                .where(Generation.id == generation_id, Generation.status == current_status, Generation.job_id == job_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount
        )
    )


def sweep(connection: redis.Redis) -> dict[int, str]:
    """Recover every orphaned generation; one sweeper at a time across all workers."""
    if not connection.set(SWEEP_LOCK, 1, nx=True, px=int(current_app.config["WORKER_SWEEP_INTERVAL"] * 1000)):
        return {}
    done = {}
    try:
        settled = utcnow() - queued_grace()
        active = db.session.scalars(
            select(Generation).where(
                or_(
                    Generation.status == GenerationStatus.RUNNING,
                    and_(
                        Generation.status == GenerationStatus.QUEUED,
                        or_(Generation.enqueued_at.is_(None), Generation.enqueued_at < settled),
                    ),
                )
            )
        ).all()
        db.session.expunge_all()  # keep what was read, detached: each row is then changed by its own UPDATE
        db.session.rollback()  # and no transaction is held while each is looked at
        for generation in active:
            action = (recover if generation.status == GenerationStatus.RUNNING else recover_queued)(
                generation, connection
            )
            if action:
                done[generation.id] = action
        _settle_fair_queue(connection)
    finally:
        db.session.rollback()
        connection.delete(SWEEP_LOCK)
    return done


def _settle_fair_queue(connection: redis.Redis) -> None:
    """Free the line places and provider slots of generations that have ended (a killed worker
    never said so), then move the lines: whatever was held back by them may go now."""
    scheduling.sync_provider_caps(connection)  # after a Redis restart the caps are back within a sweep
    held = scheduling.members(connection)
    if held:
        active = set(
            db.session.scalars(
                select(Generation.id).where(Generation.id.in_(held), Generation.status.in_(GenerationStatus.ACTIVE))
            )
        )
        db.session.rollback()
        scheduling.forget_finished(connection, held - active)
    scheduling.pump()


class Sweeper(threading.Thread):
    def __init__(self, app, connection: redis.Redis, once: bool = False):
        super().__init__(name="switchboard-sweeper", daemon=True)
        self.app = app
        self.connection = connection
        self.interval = app.config["WORKER_SWEEP_INTERVAL"]
        self.once = once
        self.stopped = threading.Event()

    def run(self) -> None:
        while True:
            try:
                with self.app.app_context():
                    sweep(self.connection)
            except Exception:
                log.warning("recovery sweep failed", exc_info=True)
            if self.once or self.stopped.wait(self.interval):
                break
