"""Domain functions for conversations and the user's messages in them."""

from __future__ import annotations

import json

from flask import abort
from markdown_it import MarkdownIt
from sqlalchemy import delete, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from . import attachments, usage
from .access import check_model_usable, usable_model_id
from .database import write
from .extensions import db
from .generations import NotQueued, create_generation, current_text, enqueue, forget_live, stop_all
from .llm import get_default_model, get_model
from .model_options import ModelUnavailable, applicable_options, usable_model
from .models import Conversation, Generation, Message, SharedLink, User, utcnow

TITLE_LENGTH = 60
MAX_TITLE_LENGTH = 200


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
    conversation = Conversation(
        user_id=user.id,
        model_id=model_id,
        system_prompt=user.default_system_prompt,
        options=options,
    )
    db.session.add(conversation)
    db.session.flush()
    return conversation


def owned_conversation(user: User, conversation_id: int) -> Conversation:
    """The user's conversation, or 404 (never 403: other users' ids are not confirmed to exist)."""
    # Its messages and their replies in two more queries, not one per message.
    conversation = db.session.get(
        Conversation,
        conversation_id,
        options=[
            selectinload(Conversation.messages).selectinload(Message.generations),
            selectinload(Conversation.messages).selectinload(Message.attachments),
        ],
    )
    if conversation is None or conversation.user_id != user.id:
        abort(404)
    return conversation


def owned_generation(user: User, generation_id: int) -> Generation:
    generation = db.session.get(Generation, generation_id)
    if generation is None or generation.user_id != user.id:
        abort(404)
    return generation


def owned_message(conversation: Conversation, message_id: int) -> Message:
    message = db.session.get(Message, message_id)
    if message is None or message.conversation_id != conversation.id:
        abort(404)
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


# -- branches ----------------------------------------------------------------------------
# Messages form a tree (Message.parent_id); editing a message adds a sibling. The visible path
# follows the selected sibling of each group from the first message down. Everything below works
# on the messages already loaded with the conversation: no query per message.


def _groups(conversation: Conversation) -> dict[int | None, list[Message]]:
    groups: dict[int | None, list[Message]] = {}
    for message in conversation.messages:  # ordered by id: siblings oldest first
        groups.setdefault(message.parent_id, []).append(message)
    return groups


def visible_path(conversation: Conversation) -> list[Message]:
    """The messages shown, first to last: in each group of siblings the selected one (else the newest)."""
    groups = _groups(conversation)
    path: list[Message] = []
    parent_id = None
    while groups.get(parent_id):
        group = groups[parent_id]
        chosen = next((m for m in reversed(group) if m.selected), group[-1])
        path.append(chosen)
        parent_id = chosen.id
    return path


def sibling_groups(conversation: Conversation) -> dict[int, list[Message]]:
    """For each message: the versions of it (itself and its siblings), oldest first."""
    groups = _groups(conversation)
    return {m.id: groups[m.parent_id] for m in conversation.messages}


def last_message(conversation: Conversation) -> Message | None:
    path = visible_path(conversation)
    return path[-1] if path else None


def _select(conversation: Conversation, message: Message) -> None:
    for sibling in conversation.messages:
        if sibling.parent_id == message.parent_id and sibling is not message:
            sibling.selected = False
    message.selected = True


def select_version(conversation: Conversation, message: Message) -> None:
    """Show ``message`` (and the branch below it) instead of its siblings."""
    _select(conversation, message)
    db.session.commit()


def _turns_to(conversation: Conversation, message: Message) -> list[dict] | None:
    """The turns a reply to ``message`` is written from (its branch), or None when the conversation has no
    branches (the worker then reads the messages in order itself)."""
    path = visible_path(conversation)
    if len(path) == len(conversation.messages):
        return None
    turns = []
    for earlier in path:
        if earlier is message:
            break
        turns.append(_turn(earlier))
        reply = earlier.reply
        if reply is not None and reply.text:
            turns.append({"role": "assistant", "content": reply.text})
    turns.append(_turn(message))
    return turns


def _turn(message: Message) -> dict:
    turn = {"role": "user", "content": message.content}
    if message.attachments:  # their ids: the worker reads the files
        turn["attachments"] = [a.id for a in message.attachments]
    return turn


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
    generation = create_generation(message)
    generation.request_messages = _turns_to(conversation, message)
    conversation.updated_at = utcnow()
    return generation


def _queue_reply(conversation_id: int, message_id: int) -> Generation:
    """Record a new reply to a saved message (committed first), then queue it."""

    def record():
        return _new_reply(db.session.get(Conversation, conversation_id), db.session.get(Message, message_id))

    generation = write(record)
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
        owner = db.session.get(User, user_id)
        conversation = start_conversation(owner)
        if model is not None and model.model_id != conversation.model_id:
            conversation.model_id = model.model_id
            conversation.options = applicable_options(model, owner.default_options)
        return _add_message(conversation, content, submission_token, uploads)

    return _save_and_queue(save, submission_token)


def _check_uploads(conversation: Conversation, uploads) -> None:
    if uploads:
        try:
            attachments.check_model(get_model(conversation.model_id), uploads)
        except KeyError:
            pass  # a model that no longer exists: the reply is recorded as failed with the reason


def _add_message(conversation: Conversation, content: str, submission_token: str | None, uploads=()):
    """The message and its generation, added to the session (not committed); an earlier send's message if any."""
    if submission_token:
        existing = db.session.scalar(select(Message).where(Message.submission_token == submission_token))
        if existing is not None and existing.conversation.user_id == conversation.user_id:
            return existing, None
    _check_uploads(conversation, uploads)
    if conversation.title == "New chat":
        conversation.title = _title_from(content)
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
        message, generation = write(add)
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
        if original.parent_id is None and conv.title == _title_from(original.content):
            conv.title = _title_from(content)  # the title was made from the old wording
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
        _select(conv, edited)
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


_TITLE_MARKDOWN = MarkdownIt("commonmark", {"html": True})


def plain_text(markdown: str) -> str:
    """The words of a Markdown text: no markup, no HTML, one line."""
    parts: list[str] = []
    for token in _TITLE_MARKDOWN.parse(markdown):
        if token.type == "inline":
            for child in token.children or []:
                if child.type in ("text", "code_inline"):
                    parts.append(child.content)
                elif child.type in ("softbreak", "hardbreak"):
                    parts.append(" ")
                elif child.type == "image":  # its alt text
                    parts.append(child.content)
            parts.append(" ")
        elif token.type in ("fence", "code_block"):
            parts.append(token.content + " ")
    return " ".join("".join(parts).split())


def _title_from(content: str) -> str:
    """A title from the first message: its words without Markdown, cut at a word boundary near TITLE_LENGTH."""
    text = plain_text(content) or " ".join(content.split())
    if len(text) <= TITLE_LENGTH:
        return text or "New chat"
    cut = text[: TITLE_LENGTH - 1]
    space = cut.rfind(" ")
    if space >= TITLE_LENGTH * 2 // 3:  # a word boundary not too far back; else cut the long word
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–—") + "…"


# -- export ---------------------------------------------------------------------------


def _iso(value) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def _reply_data(g: Generation) -> dict:
    return {
        "id": g.id,
        "status": g.status,
        "model": g.model_id,
        "provider": g.provider,
        "text": current_text(g),
        "error": g.error,
        "error_code": g.error_code,
        "usage": {"input_tokens": g.input_tokens, "output_tokens": g.output_tokens},
        "created_at": _iso(g.created_at),
        "finished_at": _iso(g.finished_at),
    }


def export_data(conversation: Conversation) -> dict:
    """The whole conversation as plain data: every message of every branch and every reply (all versions).

    ``parent_id`` links a message to the one before it; ``on_visible_path`` marks the branch the page
    shows (also listed in order as ``visible_path``).
    """
    path = visible_path(conversation)
    on_path = {m.id for m in path}
    return {
        "id": conversation.id,
        "title": conversation.title,
        "model": conversation.model_id,
        "system_prompt": conversation.system_prompt,
        "options": conversation.options or {},
        "created_at": _iso(conversation.created_at),
        "updated_at": _iso(conversation.updated_at),
        "visible_path": [m.id for m in path],
        "messages": [
            {
                "id": message.id,
                "parent_id": message.parent_id,
                "on_visible_path": message.id in on_path,
                "role": message.role,
                "content": message.content,
                "attachments": [_attachment_data(a) for a in message.attachments],
                "created_at": _iso(message.created_at),
                "replies": [_reply_data(g) for g in message.generations],
            }
            for message in conversation.messages
        ],
    }


def _attachment_data(link) -> dict:
    return {
        "id": link.id,
        "filename": link.filename,
        "content_type": link.file.content_type,
        "size": link.file.size,
        "sha256": link.file.sha256,
        "url": f"/chat/attachments/{link.id}/{link.filename}",
    }


def _attachment_lines(message: Message) -> list[str]:
    if not message.attachments:
        return []
    return [""] + [
        f"- Attached: {a.filename} ({a.file.content_type}, {a.file.size} bytes)" for a in message.attachments
    ]


def export_json(conversation: Conversation) -> str:
    return json.dumps(export_data(conversation), ensure_ascii=False, indent=2) + "\n"


def _reply_lines(reply: Generation) -> list[str]:
    lines = ["", f"## {reply.model_id}", ""]
    text = current_text(reply)
    if text:
        lines.append(text)
    if reply.status == "cancelled":
        lines += ["", "*(stopped)*"]
    elif reply.status == "failed":
        lines += ["", f"*(failed: {reply.error or reply.error_code})*"]
    elif not reply.is_finished:
        lines += ["", f"*({reply.status})*"]
    return lines


def export_markdown(conversation: Conversation) -> str:
    """A readable transcript: the visible path with each message's current reply, then every other branch
    (earlier reply versions are in the JSON export)."""
    lines = [f"# {conversation.title}", "", f"- Model: {conversation.model_id}"]
    if conversation.system_prompt:
        lines.append(f"- System prompt: {conversation.system_prompt}")
    lines.append(f"- Exported from Switchboard, conversation {conversation.id}")
    path = visible_path(conversation)
    on_path = {m.id for m in path}
    groups = _groups(conversation)
    branched = len(path) != len(conversation.messages)
    if branched:
        lines.append(
            "- Edited messages made branches: the visible path comes first (its messages marked ▶), "
            "then every other branch."
        )
    for message in path:
        versions = groups[message.parent_id]
        mark = f" ▶ (message #{message.id})" if branched else ""
        if len(versions) > 1:
            mark += f" · version {versions.index(message) + 1} of {len(versions)}"
        lines += ["", f"## You{mark}", "", message.content, *_attachment_lines(message)]
        if message.reply is not None:
            lines += _reply_lines(message.reply)
    printed = set(on_path)
    for message in conversation.messages:  # every other branch, each message once
        if message.id in printed:
            continue
        versions = groups[message.parent_id]
        after = "the start" if message.parent_id is None else f"message #{message.parent_id}"
        lines += [
            "",
            "---",
            "",
            f"### Branch at {after}: version {versions.index(message) + 1} of {len(versions)} "
            f"(not on the visible path)",
        ]
        current = message
        while current is not None and current.id not in printed:
            printed.add(current.id)
            lines += ["", f"## You (message #{current.id})", "", current.content, *_attachment_lines(current)]
            if current.reply is not None:
                lines += _reply_lines(current.reply)
            children = [m for m in groups.get(current.id) or [] if m.id not in printed]
            current = next((m for m in reversed(children) if m.selected), children[-1] if children else None)
    return "\n".join(lines) + "\n"
