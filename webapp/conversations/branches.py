"""A conversation's branches. Messages form a tree (Message.parent_id); editing a message adds a sibling. The visible
path follows the selected sibling of each group from the first message down. Everything here works on the messages
already loaded with the conversation: no query per message."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from .. import attachments
from ..extensions import db
from ..models import Conversation, Message


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


def versions_of(message: Message) -> list[Message]:
    """The versions of one message (itself and its siblings), oldest first, read by themselves: a page that
    adds one message to what it shows needs no more of the conversation."""
    return list(
        db.session.scalars(
            select(Message)
            .where(Message.conversation_id == message.conversation_id, Message.parent_id == message.parent_id)
            .order_by(Message.id)
        )
    )


@dataclass(frozen=True)
class ConversationRef:
    """A conversation as the message and reply templates name it (its id only), where it is not loaded."""

    id: int


def last_message(conversation: Conversation) -> Message | None:
    path = visible_path(conversation)
    return path[-1] if path else None


def ends_its_branch(message: Message) -> bool:
    """Whether no message follows ``message``: shown, it is the last one (one query, the conversation unread)."""
    follows = select(Message.id).where(
        Message.conversation_id == message.conversation_id, Message.parent_id == message.id
    )
    return not db.session.scalar(select(follows.exists()))


def mark_selected(conversation: Conversation, message: Message) -> None:
    for sibling in conversation.messages:
        if sibling.parent_id == message.parent_id and sibling is not message:
            sibling.selected = False
    message.selected = True


def select_version(conversation: Conversation, message: Message) -> None:
    """Show ``message`` (and the branch below it) instead of its siblings."""
    mark_selected(conversation, message)
    db.session.commit()


def turns_to(conversation: Conversation, message: Message) -> list[dict] | None:
    """The turns a reply to ``message`` is written from (its branch), or None when the conversation has no
    branches (the worker then reads the messages in order itself)."""
    path = visible_path(conversation)
    if len(path) == len(conversation.messages):
        return None
    attachments.load_for(path)
    turns = []
    for earlier in path:
        if earlier is message:
            break
        turns.append(message_turn(earlier))
        reply = earlier.reply
        if reply is not None and reply.text:
            turns.append({"role": "assistant", "content": reply.text})
    turns.append(message_turn(message))
    return turns


def message_turn(message: Message) -> dict:
    turn = {"role": "user", "content": message.content}
    if message.attachments:  # their ids: the worker reads the files
        turn["attachments"] = [a.id for a in message.attachments]
    return turn
