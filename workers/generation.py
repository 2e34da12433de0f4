"""The job that runs one LLM call: ``run_generation(generation_id)``."""
from __future__ import annotations

import logging

from webapp import live
from webapp.extensions import db
from webapp.llm import get_model
from webapp.llm.errors import LLMError
from webapp.models import Generation, GenerationStatus, Message, utcnow
from webapp.queue import get_redis

from .app_context import app_context

log = logging.getLogger(__name__)

INTERNAL_ERROR = "The worker hit an internal error while writing this reply."


def conversation_history(message: Message) -> list[dict]:
    """The turns before ``message``: each earlier user message and its latest successful-or-partial reply."""
    history = []
    for earlier in message.conversation.messages:
        if earlier.id == message.id:
            break
        history.append({"role": "user", "content": earlier.content})
        reply = earlier.reply
        if reply is not None and reply.text:
            history.append({"role": "assistant", "content": reply.text})
    return history


def run_generation(generation_id: int) -> str | None:
    with app_context():
        generation = db.session.get(Generation, generation_id)
        if generation is None or generation.status != GenerationStatus.QUEUED:
            # Already handled (a duplicate job, or cancelled before it started).
            return None
        generation.status = GenerationStatus.RUNNING
        generation.started_at = utcnow()
        generation.attempts += 1
        db.session.commit()

        writer = live.LiveWriter(get_redis(), generation.id)
        writer.reset()
        parts: list[str] = []
        status, error, error_code = GenerationStatus.FAILED, INTERNAL_ERROR, "internal_error"
        response = None
        try:
            model = get_model(generation.model_id)
            message = generation.message
            response = model.prompt(
                message.content,
                system=generation.system_prompt or None,
                history=conversation_history(message),
                **(generation.options or {}),
            )
            for chunk in response:
                parts.append(chunk)
                writer.append(chunk)
            status, error, error_code = GenerationStatus.SUCCEEDED, None, None
        except LLMError as exc:
            error, error_code = str(exc), exc.code
        except KeyError as exc:  # UnknownModelError: the model was removed since the message was sent
            error, error_code = str(exc).strip("'\""), "unknown_model"
        except Exception:
            log.exception("generation %s failed", generation_id)
        finally:
            if response is not None:
                response.close()
            db.session.rollback()
            generation = db.session.get(Generation, generation_id)
            generation.text = "".join(parts)
            generation.status = status
            generation.error = error
            generation.error_code = error_code
            generation.finished_at = utcnow()
            usage = response.usage if response is not None else None
            if usage is not None:
                generation.input_tokens = usage.input_tokens
                generation.output_tokens = usage.output_tokens
            db.session.commit()
            writer.mark(status)
        return status
