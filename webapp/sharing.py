"""Shared links: a read-only snapshot of the branch of a conversation its owner sees, at /s/<token>.

The snapshot is taken when the link is made and again when the owner refreshes it; later messages are
not shown until then. Only signed-in users may open a link unless an admin allows public links. A
revoked link is gone (404). Making, refreshing and revoking are audited. A signed-in viewer can copy the
snapshot into a new conversation of their own (:func:`continue_in_new_chat`): the messages and replies,
the system prompt only when it was shared, and none of the owner's other settings.
"""

from __future__ import annotations

import secrets

from flask import abort
from sqlalchemy import select

from . import audit, site_settings
from .conversations import start_conversation, visible_path
from .extensions import db
from .generations import current_text
from .models import Conversation, Generation, GenerationStatus, Message, SharedLink, User, utcnow

PUBLIC_LINKS = "share_public_links"  # site setting: anyone with the link may open it, signed in or not


def public_links_allowed() -> bool:
    return bool(site_settings.get_site(PUBLIC_LINKS, False))


def set_public_links(actor: User, allowed: bool) -> None:
    before = public_links_allowed()
    if before != allowed:
        site_settings.set_site(PUBLIC_LINKS, allowed)
        audit.record(actor, "share.public_links", "sharing", {"public_links": before}, {"public_links": allowed})


def _turns(conversation: Conversation) -> list[dict]:
    """The visible branch as plain data: each message with the text of its current reply (as written so far)."""
    turns = []
    for message in visible_path(conversation):
        reply = message.reply
        turns.append(
            {
                "content": message.content,
                "sent_at": message.created_at.isoformat(),
                "reply": current_text(reply) if reply is not None else None,
                "status": reply.status if reply is not None else None,
                "model": reply.model_id if reply is not None else None,
                "provider": reply.provider if reply is not None else None,
            }
        )
    return turns


def _take_snapshot(link: SharedLink, conversation: Conversation) -> None:
    link.title = conversation.title
    link.turns = _turns(conversation)
    link.system_prompt = conversation.system_prompt if link.include_system_prompt else None
    link.snapshot_at = utcnow()


def live_link_for(conversation: Conversation) -> SharedLink | None:
    return db.session.scalar(
        select(SharedLink).where(SharedLink.conversation_id == conversation.id, SharedLink.revoked_at.is_(None))
    )


def share(owner: User, conversation: Conversation, include_system_prompt: bool) -> SharedLink:
    """The conversation's link, made now (or, when it has one, refreshed with this choice). Not committed."""
    link = live_link_for(conversation)
    if link is not None:
        link.include_system_prompt = include_system_prompt
        refresh(owner, link, conversation)
        return link
    link = SharedLink(
        token=secrets.token_urlsafe(24),
        owner_id=owner.id,
        conversation_id=conversation.id,
        include_system_prompt=include_system_prompt,
        created_at=utcnow(),
    )
    _take_snapshot(link, conversation)
    db.session.add(link)
    db.session.flush()
    audit.record(
        owner,
        "share.create",
        f"conversation:{conversation.id}",
        None,
        {"link": link.id, "system_prompt_included": include_system_prompt, "messages": len(link.turns)},
    )
    return link


def refresh(owner: User, link: SharedLink, conversation: Conversation | None = None) -> None:
    conversation = conversation or db.session.get(Conversation, link.conversation_id)
    before = {"messages": len(link.turns or []), "snapshot_at": link.snapshot_at.isoformat() + "Z"}
    _take_snapshot(link, conversation)
    audit.record(
        owner,
        "share.refresh",
        f"conversation:{link.conversation_id}",
        before,
        {"messages": len(link.turns), "snapshot_at": link.snapshot_at.isoformat() + "Z"},
    )


def revoke(owner: User, link: SharedLink) -> None:
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        audit.record(owner, "share.revoke", f"conversation:{link.conversation_id}", {"link": link.id}, None)


def owned_link(user: User, link_id: int) -> SharedLink:
    """The user's own live link, or 404 (never 403: other users' links are not confirmed to exist)."""
    link = db.session.get(SharedLink, link_id)
    if link is None or link.owner_id != user.id or link.revoked_at is not None:
        abort(404)
    return link


def open_link(token: str) -> SharedLink:
    """The live link with this token, or 404 (unknown and revoked alike)."""
    link = db.session.scalar(
        select(SharedLink)
        .join(Conversation, Conversation.id == SharedLink.conversation_id)  # never outlives its conversation
        .where(SharedLink.token == token[:64], SharedLink.revoked_at.is_(None))
    )
    if link is None:
        abort(404)
    return link


def links_of(user: User) -> list[SharedLink]:
    return list(
        db.session.scalars(
            select(SharedLink)
            .where(SharedLink.owner_id == user.id, SharedLink.revoked_at.is_(None))
            .order_by(SharedLink.created_at.desc(), SharedLink.id.desc())
        )
    )


def shared_conversation_ids(user: User) -> set[int]:
    """The user's conversations that have a live link (their list marks them)."""
    return set(
        db.session.scalars(
            select(SharedLink.conversation_id).where(SharedLink.owner_id == user.id, SharedLink.revoked_at.is_(None))
        )
    )


def continue_in_new_chat(viewer: User, link: SharedLink) -> Conversation:
    """A new conversation of ``viewer``'s own holding the shared branch: their model and settings, the shared
    system prompt only if it was shared. Raises access.ModelNotAllowed when the viewer may use no model.
    Committed."""
    conversation = start_conversation(viewer)  # the viewer's default model, system prompt and options
    conversation.title = link.title
    if link.include_system_prompt and link.system_prompt:
        conversation.system_prompt = link.system_prompt
    parent_id = None
    for turn in link.turns or []:
        message = Message(
            conversation=conversation, role="user", content=turn["content"], parent_id=parent_id, selected=True
        )
        db.session.add(message)
        db.session.flush()
        parent_id = message.id
        if turn.get("reply"):
            now = utcnow()
            db.session.add(
                Generation(
                    user_id=viewer.id,
                    conversation_id=conversation.id,
                    message_id=message.id,
                    source="shared",  # copied text: no provider call, nothing used or spent
                    status=GenerationStatus.SUCCEEDED,
                    model_id=turn.get("model") or conversation.model_id,
                    provider=turn.get("provider") or "",
                    text=turn["reply"],
                    created_at=now,
                    finished_at=now,
                )
            )
    conversation.updated_at = utcnow()
    db.session.commit()
    return conversation
