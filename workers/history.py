"""What a chat generation sends besides its prompt: the conversation's turns before it, read in one query,
with each turn's attachments."""

from __future__ import annotations

from sqlalchemy import func, select

from webapp import attachments
from webapp.extensions import db
from webapp.models import Attachment, Generation, Message


def conversation_turns(conversation_id: int, message_id: int) -> tuple[str, list[dict], list[int]]:
    """The prompt (the message's text), the turns before it (each earlier user message, with its attachments'
    ids, and the text of its latest reply) and the ids of the message's own attachments. One query for the
    turns whatever the length of the conversation, and one for the attachment ids when some turn has files."""
    latest = (
        select(Generation.message_id, func.max(Generation.id).label("reply_id"))
        .where(Generation.conversation_id == conversation_id, Generation.message_id < message_id)
        .group_by(Generation.message_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Message.id, Message.content, Generation.text, Message.has_files)
        .outerjoin(latest, latest.c.message_id == Message.id)
        .outerjoin(Generation, Generation.id == latest.c.reply_id)
        .where(Message.conversation_id == conversation_id, Message.id <= message_id)
        .order_by(Message.id)
    ).all()
    files = _attachment_ids([row[0] for row in rows if row[3]])
    history = []
    for turn_id, content, reply, _has_files in rows[:-1]:
        history.append({"role": "user", "content": content})
        if files.get(turn_id):
            history[-1]["attachments"] = files[turn_id]
        if reply:
            history.append({"role": "assistant", "content": reply})
    return rows[-1][1], history, files.get(message_id) or []


def _attachment_ids(message_ids: list[int]) -> dict[int, list[int]]:
    """Each message's attachment ids, in order (one query for them all)."""
    if not message_ids:
        return {}
    rows = db.session.execute(
        select(Attachment.message_id, Attachment.id)
        .where(Attachment.message_id.in_(message_ids))
        .order_by(Attachment.message_id, Attachment.position)
    )
    found: dict[int, list[int]] = {}
    for message_id, attachment_id in rows:
        found.setdefault(message_id, []).append(attachment_id)
    return found


def with_files(turns: list[dict], last_ids) -> tuple[list[dict], list]:
    """The turns with attachment ids replaced by the files (bytes read in one query), and the last turn's."""
    ids = [i for turn in turns for i in turn.get("attachments") or ()] + list(last_ids or ())
    if not ids:
        return turns, []
    files = attachments.for_prompt(ids)
    resolved = []
    for turn in turns:
        if turn.get("attachments"):
            turn = {**turn, "attachments": [files[i] for i in turn["attachments"] if i in files]}
        resolved.append(turn)
    return resolved, [files[i] for i in last_ids or () if i in files]
