"""Conversations and the user's messages in them: starting, sending, editing, regenerating, renaming and
deleting (commands), and finding the user's own. Branches, titles and export live beside this module."""

from __future__ import annotations

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from .. import attachments, usage
from ..access import check_model_usable, usable_model_id
from ..database import write
from ..extensions import db
from ..generations import NotQueued, create_generation, enqueue
from ..llm import get_default_model, get_model
from ..model_options import ModelUnavailable, applicable_options, usable_model
from ..models import Conversation, Generation, Message, SharedLink, User, utcnow
from ..stopping import forget_live, stop_all
from .branches import (
    ConversationRef,
    ends_its_branch,
    last_message,
    mark_selected,
    select_version,
    sibling_groups,
    turns_to,
    versions_of,
    visible_path,
)
from .export import export_json, export_markdown
from .titles import MAX_TITLE_LENGTH, title_from

__all__ = [  # the package's commands and lookups, and what views use of its branches and export
    "ConversationRef",
    "NotOwned",
    "ReplyInProgress",
    "active_reply",
    "default_model_id",
    "delete_conversation",
    "edit_message",
    "ends_its_branch",
    "export_json",
    "export_markdown",
    "last_message",
    "list_conversations",
    "owned_conversation",
    "owned_generation",
    "owned_message",
    "regenerate_reply",
    "rename",
    "select_version",
    "send_message",
    "sibling_groups",
    "start_chat",
    "start_conversation",
    "update_settings",
    "versions_of",
    "visible_path",
]


class NotOwned(LookupError):
    """No such conversation, message or reply of this user (a 404: other users' ids are not confirmed to exist)."""


class ReplyInProgress(RuntimeError):
    """The conversation's last reply is still queued or running."""


def default_model_id(user: User) -> str:
    if user.default_model:
        try:
            return usable_model(user, user.default_model).model_id
        except ModelUnavailable:
            pass
    return get_default_model().model_id


def start_conversation(user: User) -> Conversation:
    # A model the user may use (admins' allow-lists); access.ModelNotAllowed when there is none.
    model_id = usable_model_id(user, default_model_id(user))
    try:
        options = applicable_options(get_model(model_id), user.default_options)
    except KeyError:
        options = {}
    # Added, not flushed: its row is written with its first message, title and all, in one INSERT. Its
    # title and (empty) messages are set here because a pending object has neither loaded nor defaulted.
    conversation = Conversation(
        user=user,
        title="New chat",
        messages=[],
        model_id=model_id,
        system_prompt=user.default_system_prompt,
        options=options,
    )
    db.session.add(conversation)
    return conversation


def owned_conversation(user: User, conversation_id: int) -> Conversation:
    """The user's conversation, or 404 (never 403: other users' ids are not confirmed to exist)."""
    # Its messages and their replies in two more queries, not one per message.
    conversation = db.session.get(
        Conversation,
        conversation_id,
        options=[selectinload(Conversation.messages).selectinload(Message.generations)],
    )
    if conversation is None or conversation.user_id != user.id:
        raise NotOwned()
    return conversation


def owned_generation(user: User, generation_id: int) -> Generation:
    generation = db.session.get(Generation, generation_id)
    if generation is None or generation.user_id != user.id:
        raise NotOwned()
    return generation


def owned_message(conversation: Conversation, message_id: int) -> Message:
    message = db.session.get(Message, message_id)
    if message is None or message.conversation_id != conversation.id:
        raise NotOwned()
    return message


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_conversations(user: User, query: str | None = None, limit: int = 200) -> list[Conversation]:
    """The user's conversations, most recently active first; ``query`` matches the title or any message."""
    statement = select(Conversation).where(Conversation.user_id == user.id)
    query = (query or "").strip()
    if query:
        pattern = _like_pattern(query)
        in_messages = exists().where(
            Message.conversation_id == Conversation.id, Message.content.ilike(pattern, escape="\\")
        )
        in_replies = exists().where(
            Generation.conversation_id == Conversation.id, Generation.text.ilike(pattern, escape="\\")
        )
        statement = statement.where(or_(Conversation.title.ilike(pattern, escape="\\"), in_messages, in_replies))
    statement = statement.order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit)
    return list(db.session.scalars(statement))


def _new_reply(conversation: Conversation, message: Message) -> Generation:
    """A reply to ``message`` written from its branch's turns, added to the session (not committed).

    The one place a page's reply is checked against the user's model access: a refusal
    (``access.ModelNotAllowed``, or ``ModelNeedsSetup``) raises here, inside the unit of work,
    so nothing of it is saved.
    """
    try:
        check_model_usable(conversation.user, conversation.model_id)
    except KeyError:
        pass  # a model that no longer exists: the reply is recorded as failed with the reason
    conversation.updated_at = utcnow()  # (before the flush: a new conversation's INSERT carries it)
    if message.id is None:
        db.session.flush()  # its id: the branch's turns and the reply's row refer to it
    return create_generation(message, request_messages=turns_to(conversation, message))


def _queue_reply(conversation_id: int, message_id: int) -> Generation:
    """Record a new reply to a saved message (committed first), then queue it."""

    def record():
        return _new_reply(db.session.get(Conversation, conversation_id), db.session.get(Message, message_id))

    generation = write(record, keep_loaded=True)  # (as in _save_and_queue)
    enqueue(generation, hold_on_outage=True)
    return generation


def active_reply(conversation: Conversation) -> Generation | None:
    """The last visible message's reply while it is queued or running."""
    last = last_message(conversation)
    reply = last.reply if last is not None else None
    return reply if reply is not None and not reply.is_finished else None


def send_message(conversation: Conversation, content: str, submission_token: str | None = None, uploads=()) -> Message:
    """Save the user's message (committed first, so it is never lost), then queue its reply.

    A repeated ``submission_token`` returns the message it already created, also when the
    two posts arrive at once. Raises ``generations.QueueUnavailable`` after saving when Redis
    is down (the reply then waits for it), ``access.ModelNotAllowed`` with nothing saved, and
    ``attachments.AttachmentRefused`` (an image for a model that cannot read images) with nothing saved.
    """
    conversation_id = conversation.id
    return _save_and_queue(
        lambda: _add_message(db.session.get(Conversation, conversation_id), content, submission_token, uploads),
        submission_token,
    )


def start_chat(user: User, content: str, submission_token: str | None = None, model=None, uploads=()) -> Message:
    """A new conversation (with ``model``, else the user's default) and its first message, saved as one."""
    user_id = user.id

    def save():
        # A form sent again after the first one was saved finds its message before making a conversation:
        # checked after creating one, the resend would leave that new conversation behind, empty.
        existing = _sent_before(submission_token, user_id)
        if existing is not None:
            return existing, None
        owner = db.session.get(User, user_id)
        conversation = start_conversation(owner)
        if model is not None and model.model_id != conversation.model_id:
            conversation.model_id = model.model_id
            conversation.options = applicable_options(model, owner.default_options)
        # Sent at the same moment as its twin: the unique submission_token makes one of the two commits fail,
        # and the conversation goes with it (_save_and_queue).
        return _add_message(conversation, content, submission_token, uploads, check_resend=False)

    return _save_and_queue(save, submission_token)


def _check_uploads(conversation: Conversation, uploads) -> None:
    if uploads:
        try:
            attachments.check_model(get_model(conversation.model_id), uploads)
        except KeyError:
            pass  # a model that no longer exists: the reply is recorded as failed with the reason


def _sent_before(submission_token: str | None, user_id: int) -> Message | None:
    if not submission_token:
        return None
    existing = db.session.scalar(select(Message).where(Message.submission_token == submission_token))
    return existing if existing is not None and existing.conversation.user_id == user_id else None


def _add_message(
    conversation: Conversation, content: str, submission_token: str | None, uploads=(), check_resend: bool = True
):
    """The message and its generation, added to the session (not committed); an earlier send's message if any."""
    if check_resend:
        existing = _sent_before(submission_token, conversation.user_id)
        if existing is not None:
            return existing, None
    _check_uploads(conversation, uploads)
    if conversation.title == "New chat":
        conversation.title = title_from(content)
    last = last_message(conversation)
    message = Message(
        conversation=conversation,
        role="user",
        content=content,
        submission_token=submission_token,
        parent_id=last.id if last is not None else None,
        selected=True,
    )
    db.session.add(message)
    if uploads:
        db.session.flush()
        attachments.attach(conversation.user_id, uploads, message=message)
    return message, _new_reply(conversation, message)


def _save_and_queue(add, submission_token: str | None) -> Message:
    """Save what ``add()`` adds (a message and its reply) as one retried unit, then queue the reply.

    The same form sent twice at once saves once: the second request finds the first one's message.
    """
    try:
        # Kept loaded across the commit: queueing reads the reply, its user and its message right after,
        # and nothing else has them yet (each would be read again otherwise, a query apiece).
        message, generation = write(add, keep_loaded=True)
    except IntegrityError:
        # The same form sent twice at once: the other request saved it first.
        existing = submission_token and db.session.scalar(
            select(Message).where(Message.submission_token == submission_token)
        )
        if not existing:
            raise
        return existing
    if generation is not None:
        try:
            enqueue(generation, hold_on_outage=True)
        except NotQueued as exc:
            exc.conversation_id = message.conversation_id
            exc.message_id = message.id  # saved: over a limit, the page puts its text back in the composer
            raise
    return message


def _last_message(conversation: Conversation, message: Message) -> None:
    if last_message(conversation) is not message:
        raise ValueError("Only the last message can be answered again.")


def regenerate_reply(conversation: Conversation, message: Message, expected_generation_id: int | None) -> Generation:
    """A new reply to the last message (retry or regenerate); the earlier ones stay browsable.

    ``expected_generation_id`` is the reply the form was showing: when a newer one exists
    already (a double click, a resent form) that one is returned instead of starting another.
    """
    _last_message(conversation, message)
    latest = message.reply
    if latest is not None and expected_generation_id is not None and latest.id != expected_generation_id:
        return latest
    if latest is not None and not latest.is_finished:
        raise ReplyInProgress("The reply is still being written: stop it first.")
    return _queue_reply(conversation.id, message.id)


def edit_message(
    conversation: Conversation,
    message: Message,
    content: str,
    submission_token: str | None = None,
    uploads=(),
    keep_attachment_ids: set[int] | None = None,
) -> Message:
    """Edit any visible message: a new version beside it (same place in the conversation) with its own reply.

    The original and everything that followed it stay, one "‹ ›" away. A repeated
    ``submission_token`` returns the version it already created. The new version keeps the original's
    attachments (those in ``keep_attachment_ids`` when given) and adds ``uploads``.
    """
    if submission_token:
        existing = db.session.scalar(select(Message).where(Message.submission_token == submission_token))
        if existing is not None and existing.conversation_id == conversation.id:
            return existing
    if message not in visible_path(conversation):
        raise ValueError("Only a message that is shown can be edited.")
    if active_reply(conversation) is not None:
        raise ReplyInProgress("A reply is still being written: stop it first.")
    conversation_id, message_id = conversation.id, message.id

    def record():
        conv = db.session.get(Conversation, conversation_id)
        original = db.session.get(Message, message_id)
        if original.parent_id is None and conv.title == title_from(original.content):
            conv.title = title_from(content)  # the title was made from the old wording
        edited = Message(
            conversation=conv,
            role="user",
            content=content,
            submission_token=submission_token,
            parent_id=original.parent_id,
            selected=True,
        )
        db.session.add(edited)
        _check_uploads(conv, uploads)
        db.session.flush()
        kept = attachments.copy_links(original, edited, keep_attachment_ids)
        for link in attachments.attach(conv.user_id, list(uploads), message=edited):
            link.position += kept
        db.session.flush()
        db.session.expire(edited, ["attachments"])
        mark_selected(conv, edited)
        return edited, _new_reply(conv, edited)

    return _save_and_queue(record, submission_token)


def rename(conversation: Conversation, title: str) -> None:
    title = " ".join(title.split())[:MAX_TITLE_LENGTH]
    conversation.title = title or "New chat"
    db.session.commit()


def update_settings(
    conversation: Conversation, user: User, model_id: str, system_prompt: str | None, options: dict
) -> None:
    """Set the model, system prompt and options used by the conversation's next replies.

    Raises ``ModelUnavailable`` for a model the user may not use.
    """
    model = usable_model(user, model_id)
    conversation.model_id = model.model_id
    conversation.system_prompt = (system_prompt or "").strip() or None
    conversation.options = dict(options)
    db.session.commit()


def delete_conversation(conversation: Conversation) -> None:
    """Delete it with its messages and replies; replies still being written are stopped first."""
    generations = [g for m in conversation.messages for g in m.generations]
    stop_all(generations)
    generation_ids = [g.id for g in generations]
    usage.keep_usage([g.id for g in generations if g.is_finished])  # replies still running are kept as they settle
    # Its share links go too (explicitly: SQLite runs here without foreign-key enforcement).
    db.session.execute(delete(SharedLink).where(SharedLink.conversation_id == conversation.id))
    attachments.delete_links(message_ids=[m.id for m in conversation.messages])
    db.session.delete(conversation)
    db.session.commit()
    forget_live(generation_ids)
