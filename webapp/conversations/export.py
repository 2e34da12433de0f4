"""Export: a conversation with every branch, as JSON or Markdown, the visible path marked."""

from __future__ import annotations

import json

from .. import attachments
from ..generations import current_text
from ..llm.errors import without_addresses
from ..models import Conversation, Generation, Message
from .branches import _groups, visible_path


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
    attachments.load_for(conversation.messages)
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
        lines += ["", f"*(failed: {without_addresses(reply.error or reply.error_code or '')})*"]
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
    attachments.load_for(conversation.messages)
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
