"""When generations run: fair order between users, provider caps, the honest queue position.

Every generation is still an RQ job run by ``python -m workers``; what changes is when
its job enters the RQ queue. ``submit`` puts a generation in its user's line
(webapp.fairqueue) and ``pump`` moves the next ones, in weighted round robin by user,
into RQ: at most ``FAIR_SHARE_DEPTH`` per user at a time, at most ``FAIR_SHARE_RUNNING`` per user
handed out or running while others are active, and never past a provider's
cap. Pumping happens on every submit, when a job starts and when it ends (the worker),
and on every recovery sweep, so whichever process is about at the moment moves the line.

Admin settings (site settings, read from the cached snapshot): ``provider_caps``
{provider: n} and ``queue_weights`` {"user:<id>": w}.
"""

from __future__ import annotations

import logging
import time

import redis
from flask import current_app
from rq.job import JobStatus
from sqlalchemy import select

from . import site_settings
from .extensions import db
from .fairqueue import FairQueue
from .models import Generation, GenerationStatus, GroupMember
from .queue import get_queue, get_redis

log = logging.getLogger(__name__)

PROVIDER_CAPS = "provider_caps"
QUEUE_WEIGHTS = "queue_weights"
JOB_FUNCTION = "workers.generation.run_generation"
MAX_WEIGHT = 100


def fair_queue(connection: redis.Redis | None = None) -> FairQueue:
    queue = get_queue()
    return FairQueue(connection or queue.connection, queue.name, queue.key)


def provider_caps() -> dict[str, int]:
    """Provider -> most generations running (or about to) at once, as stored; absent means unlimited."""
    stored = site_settings.snapshot().site.get(PROVIDER_CAPS) or {}
    return {str(p): int(n) for p, n in stored.items() if isinstance(n, int) and n > 0}


def set_provider_caps(caps: dict[str, int | None]) -> None:
    """Store the caps (the caller commits) and put them in Redis, where every dispatcher reads them at once.
    The recovery sweep copies them to Redis again (after a Redis restart). Raises redis.RedisError."""
    site_settings.set_site(PROVIDER_CAPS, {p: int(n) for p, n in caps.items() if n} or None)
    fair_queue().set_caps(provider_caps())


def sync_provider_caps(connection: redis.Redis) -> None:
    """Give Redis the stored caps when it has none (it restarted); a newer setting is never overwritten."""
    fair = fair_queue(connection)
    if not fair.has_caps():
        fair.set_caps(provider_caps())


def depth() -> int:
    return current_app.config["FAIR_SHARE_DEPTH"]


def stored_weights() -> dict[int, float]:
    """User id -> weight, for users an admin gave one."""
    weights = site_settings.get_site(QUEUE_WEIGHTS) or {}
    return {int(k.split(":", 1)[1]): float(v) for k, v in weights.items() if k.startswith("user:")}


def set_user_weight(user_id: int, weight: float) -> None:
    """Store a user's weight (1 removes it); the caller commits. Work already in line keeps its place."""
    weights = dict(site_settings.get_site(QUEUE_WEIGHTS) or {})
    weights.pop(f"user:{user_id}", None)
    if weight != 1:
        weights[f"user:{user_id}"] = min(max(float(weight), 0.1), MAX_WEIGHT)
    site_settings.set_site(QUEUE_WEIGHTS, weights or None)


def user_weight(user_id: int) -> float:
    """The user's share relative to others: their own weight, else the largest of their groups', else 1
    (an admin sets both on Admin -> Queue)."""
    weights = site_settings.snapshot().site.get(QUEUE_WEIGHTS) or {}
    value = weights.get(f"user:{user_id}")
    if value is None and any(key.startswith("group:") for key in weights):
        group_ids = db.session.scalars(select(GroupMember.group_id).where(GroupMember.user_id == user_id))
        found = [weights[f"group:{g}"] for g in group_ids if f"group:{g}" in weights]
        value = max(found) if found else None
    try:
        weight = float(value) if value is not None else 1.0
    except (TypeError, ValueError):
        weight = 1.0
    return min(max(weight, 0.01), MAX_WEIGHT)


def stored_group_weights() -> dict[int, float]:
    weights = site_settings.get_site(QUEUE_WEIGHTS) or {}
    return {int(k.split(":", 1)[1]): float(v) for k, v in weights.items() if k.startswith("group:")}


def set_group_weight(group_id: int, weight: float) -> None:
    """Store a group's weight (1 removes it); the caller commits. Its members without a weight of their own
    get the largest of their groups' weights."""
    weights = dict(site_settings.get_site(QUEUE_WEIGHTS) or {})
    weights.pop(f"group:{group_id}", None)
    if weight != 1:
        weights[f"group:{group_id}"] = min(max(float(weight), 0.1), MAX_WEIGHT)
    site_settings.set_site(QUEUE_WEIGHTS, weights or None)


def submit(generation: Generation, job_id: str | None = None, connection: redis.Redis | None = None) -> None:
    """Put a committed, queued generation in its user's line and move the line. Raises redis.RedisError.

    Its RQ job is saved first, as deferred (rq-dashboard shows it so); the dispatcher queues it when
    its turn comes. A crash between the two leaves a deferred job outside any line: the sweep re-queues it."""
    job_id = job_id or generation.job_id
    queue = get_queue()
    job = queue.create_job(
        JOB_FUNCTION,
        args=(generation.id,),
        job_id=job_id,
        timeout=current_app.config["JOB_TIMEOUT"],
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        description=f"generation {generation.id} ({generation.model_id})",
        status=JobStatus.DEFERRED,
    )
    job.origin = queue.name
    job.save()
    fair = fair_queue(connection)
    fair.add(
        generation.id,
        generation.user_id,
        generation.provider,
        job_id,
        generation.model_id,
        user_weight(generation.user_id),
    )
    pump(fair)


def pump(fair: FairQueue | None = None) -> int:
    """Queue the RQ jobs of the next generations in fair order; returns how many."""
    config = current_app.config
    return len(
        (fair or fair_queue()).dispatch(
            config["FAIR_SHARE_DEPTH"], config["FAIR_SHARE_RUNNING"], grace=config["FAIR_SHARE_ACTIVE_SECONDS"]
        )
    )


def enqueue_job(generation_id: int, job_id: str, model_id: str, note: str = "") -> None:
    """The RQ job for a generation: its id only, never objects or secrets."""
    get_queue().enqueue(
        JOB_FUNCTION,
        generation_id,
        job_id=job_id,
        job_timeout=current_app.config["JOB_TIMEOUT"],
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        description=f"generation {generation_id} ({model_id}){note}",
    )


def job_started(generation_id: int, job_id: str | None) -> None:
    """A worker took the generation's job: its user may have another one in RQ now."""
    if not job_id:
        return
    try:
        fair = fair_queue(get_redis())
        fair.started(generation_id, job_id)
        pump(fair)
    except redis.RedisError:
        log.warning("generation %s: could not note its start in the fair queue", generation_id)


def job_finished(generation_id: int, job_id: str | None) -> None:
    """The generation's job ended: its provider slot is free, so waiting work of that provider may go."""
    if not job_id:
        return
    try:
        fair = fair_queue(get_redis())
        fair.finished(generation_id, job_id)
        pump(fair)
    except redis.RedisError:
        log.warning("generation %s: could not note its end in the fair queue", generation_id)


def move_slot(generation_id: int, job_id: str | None, provider: str) -> bool:
    """A fallback of ``provider`` is about to answer the generation: its slot moves to that provider, and the
    first provider's waiting work may go. False when ``provider`` is at its cap (the fallback is skipped).
    Without Redis the fallback goes ahead: the slot stays where it was and the end frees it."""
    if not job_id:
        return True
    try:
        fair = fair_queue(get_redis())
        if not fair.move_slot(generation_id, job_id, provider):
            return False
        pump(fair)
    except redis.RedisError:
        log.warning("generation %s: could not move its provider slot in the fair queue", generation_id)
    return True


def withdraw(connection: redis.Redis, generation_id: int) -> str | None:
    """Take a generation out of the fair structure (Stop, refusal); returns where it was."""
    fair = fair_queue(connection)
    state = fair.withdraw(generation_id)
    if state is not None:
        pump(fair)
    return state


def queue_position(generation: Generation) -> int | None:
    """1 for the next generation to start: one more than those that will start before it in the fair order.

    None when it is not waiting (running, finished, or not known to the queue)."""
    if generation.status != GenerationStatus.QUEUED or not generation.job_id:
        return None
    try:
        return position_of(get_redis(), generation.id, generation.job_id)
    except redis.RedisError:
        return None


def position_of(connection: redis.Redis, generation_id: int, job_id: str | None) -> int | None:
    """``queue_position`` for a queued generation's id and job (one script call). Raises redis.RedisError."""
    if not job_id:
        return None
    fair = fair_queue(connection)
    found = fair.place(generation_id)
    if found.state == "none":  # queued straight into RQ (a release before fair order): its index there
        index = connection.lpos(fair.rq_queue_key, job_id)
        return None if index is None else index + 1
    return None if found.ahead is None else found.ahead + 1


def is_waiting(connection: redis.Redis, generation: Generation) -> bool:
    """Whether the generation waits in its user's line under its current job id (so no RQ job yet).

    Once handed to RQ the job's own state tells (the recovery sweep reads it): a job lost between
    the hand-out and RQ is re-queued like any lost job, and the claim keeps a double from running."""
    marker = fair_queue(connection).marker(generation.id)
    return marker.get("state") == "waiting" and marker.get("job") == generation.job_id


def lost_in_handover(connection: redis.Redis, generation: Generation, grace_seconds: float) -> bool:
    """Handed to RQ over ``grace_seconds`` ago, yet neither in the RQ queue nor started: a worker took
    the job off the queue and died before starting it (RQ keeps the job "queued" in its own registry)."""
    fair = fair_queue(connection)
    marker = fair.marker(generation.id)
    if marker.get("state") != "dispatched" or marker.get("job") != generation.job_id:
        return False
    if time.time() - float(marker.get("since") or 0) < grace_seconds:
        return False
    return connection.lpos(fair.rq_queue_key, generation.job_id) is None


def resubmit(connection: redis.Redis, generation: Generation, job_id: str) -> None:
    """Back into the user's line under a new job id (the recovery sweep's re-queue)."""
    fair_queue(connection).withdraw(generation.id)
    submit(generation, job_id, connection)


def forget_finished(connection: redis.Redis, finished_ids: set[int]) -> int:
    """Drop generations that have ended from the structure (a worker killed mid-job leaves its slot)."""
    fair = fair_queue(connection)
    for generation_id in finished_ids:
        fair.withdraw(generation_id)
    if finished_ids:
        pump(fair)
    return len(finished_ids)


def members(connection: redis.Redis) -> set[int]:
    return fair_queue(connection).members()


def summary() -> dict | None:
    try:
        return fair_queue(get_redis()).summary()
    except redis.RedisError:
        return None
