"""Domain functions for conversations and the user's messages in them."""
from __future__ import annotations

from flask import abort
from sqlalchemy import select

from .extensions import db
from .generations import create_generation, enqueue
from .llm import get_default_model, get_model
from .models import Conversation, Generation, Message, User, utcnow

TITLE_LENGTH = 60


def default_model_id(user: User) -> str:
    if user.default_model:
        try:
            return get_model(user.default_model).model_id
        except KeyError:
            pass
    return get_default_model().model_id


def start_conversation(user: User) -> Conversation:
    conversation = Conversation(
        user_id=user.id,
        model_id=default_model_id(user),
        system_prompt=user.default_system_prompt,
        options=dict(user.default_options or {}),
    )
    db.session.add(conversation)
    db.session.flush()
    return conversation


def owned_conversation(user: User, conversation_id: int) -> Conversation:
    """The user's conversation, or 404 (never 403: other users' ids are not confirmed to exist)."""
    conversation = db.session.get(Conversation, conversation_id)
    if conversation is None or conversation.user_id != user.id:
        abort(404)
    return conversation


def owned_generation(user: User, generation_id: int) -> Generation:
    generation = db.session.get(Generation, generation_id)
    if generation is None or generation.user_id != user.id:
        abort(404)
    return generation


def list_conversations(user: User) -> list[Conversation]:
    return list(
        db.session.scalars(
            select(Conversation).where(Conversation.user_id == user.id).order_by(Conversation.updated_at.desc(), Conversation.id.desc())
        )
    )


def send_message(conversation: Conversation, content: str, submission_token: str | None = None) -> Message:
    """Save the user's message (committed first, so it is never lost), then queue its reply.

    A repeated ``submission_token`` returns the message it already created.
    Raises ``generations.QueueUnavailable`` after saving when Redis is down.
    """
    if submission_token:
        existing = db.session.scalar(select(Message).where(Message.submission_token == submission_token))
        if existing is not None and existing.conversation_id == conversation.id:
            return existing
    if conversation.title == "New chat":
        conversation.title = _title_from(content)
    message = Message(conversation=conversation, role="user", content=content, submission_token=submission_token)
    conversation.updated_at = utcnow()
    db.session.add(message)
    generation = create_generation(message)
    db.session.commit()
    enqueue(generation)
    return message


def _title_from(content: str) -> str:
    line = " ".join(content.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"
