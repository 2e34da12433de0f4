"""Stop: a queued generation leaves the queue at once; a running one is asked to stop by its worker, with
RQ's stop-job command as the backstop; either keeps the text it has. Also the stop of many before a delete."""

from __future__ import annotations

import logging

import redis
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from sqlalchemy import update

from . import limits, live, scheduling
from .database import write
from .extensions import db
from .generations import QueueUnavailable
from .models import Generation, GenerationStatus, utcnow
from .queue import get_redis

log = logging.getLogger(__name__)

STOP_GRACE_MS = 3000
STOP_COMMAND_GRACE_MS = 2000


def stop(generation: Generation) -> str:
    """Stop a generation and keep the text it has so far; returns its final status.

    Queued: the job is taken off the queue and the record marked cancelled here.
    Running: the worker is asked (a Redis key it checks between chunks) to close the
    provider stream and finish as cancelled. If it has not finished after
    ``STOP_GRACE_MS`` (a stalled stream), RQ's stop-job command is sent as a backstop;
    a forking worker then kills the job's process without running its ``finally``,
    so this records the cancellation itself with the text read from the live stream.
    Raises ``QueueUnavailable`` when Redis is down.
    """
    if generation.is_finished:
        return generation.status
    generation_id, job_id = generation.id, generation.job_id
    try:
        connection = get_redis()
        live.request_stop(connection, generation_id)  # first: a worker that starts now still sees it
        if generation.status == GenerationStatus.QUEUED and _finish_cancelled(generation_id, GenerationStatus.QUEUED):
            scheduling.withdraw(connection, generation_id)  # leaves its user's line (or frees its RQ place)
            _cancel_job(connection, job_id)
            limits.settle(connection, generation_id, 0)  # it never ran: give back its token estimate
            live.LiveWriter(connection, generation_id).mark(GenerationStatus.CANCELLED)
            return GenerationStatus.CANCELLED
        db.session.commit()  # hold no database connection while waiting
        if live.wait_for_status(connection, generation_id, STOP_GRACE_MS) is None:
            log.info("generation %s did not stop by itself; sending stop-job", generation_id)
            try:
                send_stop_job_command(connection, job_id)
            except (NoSuchJobError, InvalidJobOperation):
                pass
            if live.wait_for_status(connection, generation_id, STOP_COMMAND_GRACE_MS) is None:
                if _finish_cancelled(
                    generation_id, *GenerationStatus.ACTIVE, text=live.read_all(connection, generation_id)
                ):
                    live.LiveWriter(connection, generation_id).mark(GenerationStatus.CANCELLED)
    except redis.RedisError:
        log.warning("queue unavailable while stopping generation %s", generation_id, exc_info=True)
        raise QueueUnavailable("The job queue is unavailable right now, so the reply could not be stopped.") from None
    db.session.expire_all()
    return db.session.get(Generation, generation_id).status


def _finish_cancelled(generation_id: int, *from_statuses: str, text: str | None = None) -> bool:
    """Mark cancelled if still in one of ``from_statuses`` (one conditional UPDATE: no race with the worker)."""
    values = {"status": GenerationStatus.CANCELLED, "finished_at": utcnow(), "error": None, "error_code": None}
    if text is not None:
        values["text"] = text

    def cancel() -> bool:
        return (
            db.session.execute(
                update(Generation)
                .where(Generation.id == generation_id, Generation.status.in_(from_statuses))
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount
            == 1
        )

    return write(cancel)


def _cancel_job(connection: redis.Redis, job_id: str | None) -> None:
    if not job_id:
        return
    try:
        Job.fetch(job_id, connection=connection).cancel()
    except (NoSuchJobError, InvalidJobOperation):
        pass


def stop_all(generations: list[Generation]) -> None:
    """Ask every active generation in the list to stop, without waiting (used before deleting them)."""
    active = [g for g in generations if not g.is_finished]
    if not active:
        return
    try:
        connection = get_redis()
        for generation in active:
            live.request_stop(connection, generation.id)
            if generation.status == GenerationStatus.QUEUED:
                scheduling.withdraw(connection, generation.id)
                _cancel_job(connection, generation.job_id)
                limits.settle(connection, generation.id, 0)  # it will never run: give back its estimates
    except redis.RedisError:
        log.warning("queue unavailable while stopping generations", exc_info=True)


def forget_live(generation_ids: list[int]) -> None:
    try:
        connection = get_redis()
        for generation_id in generation_ids:
            live.forget(connection, generation_id)
    except redis.RedisError:
        pass
