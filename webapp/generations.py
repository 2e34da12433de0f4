"""Domain functions for generations: create one, queue its job, read its progress."""
from __future__ import annotations

import logging

import redis
from flask import current_app

from . import live
from .extensions import db
from .llm import get_model
from .models import Generation, GenerationStatus, Message, utcnow
from .queue import get_queue, get_redis, job_id_for

log = logging.getLogger(__name__)

JOB_FUNCTION = "workers.generation.run_generation"
QUEUE_UNAVAILABLE = "The job queue is unavailable right now. Your message is saved; try again in a moment."


class QueueUnavailable(RuntimeError):
    pass


def create_generation(message: Message, source: str = "web") -> Generation:
    """Record a generation for the user's message, using the conversation's model and settings."""
    conversation = message.conversation
    model = get_model(conversation.model_id)
    generation = Generation(
        user_id=conversation.user_id,
        conversation_id=conversation.id,
        message=message,
        source=source,
        status=GenerationStatus.QUEUED,
        model_id=model.model_id,
        provider=model.provider,
        system_prompt=conversation.system_prompt,
        options=dict(conversation.options or {}),
    )
    db.session.add(generation)
    db.session.flush()
    generation.job_id = job_id_for(generation.id)
    return generation


def enqueue(generation: Generation) -> None:
    """Queue the job for a committed generation. On a Redis failure the generation fails with a plain reason."""
    generation.enqueued_at = utcnow()
    db.session.commit()
    try:
        get_queue().enqueue(
            JOB_FUNCTION,
            generation.id,
            job_id=generation.job_id,
            job_timeout=current_app.config["JOB_TIMEOUT"],
            result_ttl=3600,
            failure_ttl=7 * 24 * 3600,
            description=f"generation {generation.id} ({generation.model_id})",
        )
    except redis.RedisError:
        log.warning("queue unavailable while enqueuing generation %s", generation.id, exc_info=True)
        generation.status = GenerationStatus.FAILED
        generation.error = QUEUE_UNAVAILABLE
        generation.error_code = "queue_unavailable"
        generation.finished_at = utcnow()
        db.session.commit()
        raise QueueUnavailable(QUEUE_UNAVAILABLE) from None


def progress(generation: Generation, cursor: int = 0, wait_ms: int = 0) -> dict:
    """What the page's script needs: text after ``cursor``, the new cursor, status and error."""
    cursor = max(cursor, 0)
    if not generation.is_finished:
        # Release the database connection before a possibly blocking read.
        generation_id = generation.id
        db.session.commit()
        try:
            update = live.read_since(get_redis(), generation_id, cursor, wait_ms)
        except redis.RedisError:
            update = None
        generation = db.session.get(Generation, generation_id)  # expired by the commit: reloads
        if not generation.is_finished and update is not None:
            return _payload(generation, update.text, update.cursor)
    text = generation.text or ""
    return _payload(generation, text[cursor:], len(text))


def _payload(generation: Generation, text: str, cursor: int) -> dict:
    return {
        "id": generation.id,
        "status": generation.status,
        "done": generation.is_finished,
        "text": text,
        "cursor": cursor,
        "error": generation.error,
        "error_code": generation.error_code,
        "model": generation.model_id,
        "usage": {"input_tokens": generation.input_tokens, "output_tokens": generation.output_tokens},
    }
