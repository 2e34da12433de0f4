"""Database models: every table in one module, as in Flask's tutorial and microblog, so the schema reads in one
place and Alembic compares it whole (tests/test_migrations.py). Users, conversations, messages, generations, groups,
usage, attachments and the rest."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app, has_app_context
from flask_login import UserMixin
from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db


def utcnow() -> datetime:
    # Stored naive (UTC) so SQLite and PostgreSQL round-trip the same value.
    return datetime.now(UTC).replace(tzinfo=None)


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    is_disabled: Mapped[bool] = mapped_column(default=False)
    # Signed up under the "approval" policy and not yet approved: disabled until an admin approves.
    awaiting_approval: Mapped[bool] = mapped_column(default=False)
    default_model: Mapped[str | None] = mapped_column(String(200))
    default_system_prompt: Mapped[str | None] = mapped_column(Text)
    default_options: Mapped[dict] = mapped_column(JSON, default=dict)
    # Per-user limits set by an admin; None means the site default.
    requests_per_minute: Mapped[int | None] = mapped_column()
    tokens_per_day: Mapped[int | None] = mapped_column()
    # "system" (follow the device), "light" or "dark": rendered into every page, so no script is needed.
    theme: Mapped[str] = mapped_column(String(8), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Dollars per calendar month (UTC) set by an admin; None: the most generous of the user's groups, else
    # the site default (webapp.limits). The primary group is charged pooled limits; None: the first joined.
    monthly_budget: Mapped[float | None] = mapped_column()
    primary_group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"), index=True)
    # Single sign-on: "<issuer> <sub>" of the identity-provider account it is linked to (webapp.sso).
    sso_subject: Mapped[str | None] = mapped_column(String(400), unique=True)
    # With OIDC_ONLY, only break-glass accounts may still sign in with a password.
    break_glass: Mapped[bool] = mapped_column(default=False, server_default="0")

    conversations: Mapped[list[Conversation]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    def set_password(self, password: str) -> None:
        # scrypt (memory-hard) by default; the PASSWORD_HASH setting names its cost.
        method = current_app.config.get("PASSWORD_HASH") if has_app_context() else None
        self.password_hash = generate_password_hash(password, **({"method": method} if method else {}))

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_active(self) -> bool:  # flask-login refuses inactive users
        return not self.is_disabled

    # The sign-in this request runs under (set by webapp.accounts.sessions); flask-login stores its token in the
    # session and remember-me cookies, so the cookies name a revocable server-side record, not the user.
    current_session = None  # UserSession
    current_session_token = None  # str

    def get_id(self) -> str | None:
        return self.current_session_token

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class Conversation(db.Model):
    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200), default="New chat")
    model_id: Mapped[str] = mapped_column(String(200))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    user: Mapped[User] = relationship(back_populates="conversations")
    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation",
        order_by="Message.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class Message(db.Model):
    """A user's turn. The assistant's reply to it is the latest of its generations.

    Messages form a tree: ``parent_id`` is the user message before this one (None for the
    first). Editing a message adds a sibling (same parent) with its own replies; of each
    group of siblings the ``selected`` one is on the visible path (see webapp.conversations).
    """

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    # No foreign key: messages go with their conversation (its cascade), and the deletion order of
    # rows in one table would otherwise matter.
    parent_id: Mapped[int | None] = mapped_column(index=True)
    selected: Mapped[bool] = mapped_column(default=True)
    role: Mapped[str] = mapped_column(String(16), default="user")
    content: Mapped[str] = mapped_column(Text)
    # One-time token of the form that created it: a resubmitted form finds this row instead of adding another.
    submission_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Whether files were attached: a page or a reply's history looks their links up only then, so a
    # text-only chat costs no query for files (set by webapp.attachments).
    has_files: Mapped[bool] = mapped_column(default=False, server_default=false())

    conversation: Mapped[Conversation] = relationship(back_populates="messages")
    generations: Mapped[list[Generation]] = relationship(
        back_populates="message",
        order_by="Generation.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @property
    def reply(self) -> Generation | None:
        return self.generations[-1] if self.generations else None


class GenerationStatus:
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    ACTIVE = (QUEUED, RUNNING)
    FINISHED = (SUCCEEDED, FAILED, CANCELLED)


class Generation(db.Model):
    """The record of one LLM call and its reply."""

    __tablename__ = "generations"
    __table_args__ = (Index("ix_generations_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(16), default="web")
    status: Mapped[str] = mapped_column(String(16), default=GenerationStatus.QUEUED)
    model_id: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(64))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    # The turns an API request sent (user/assistant, the last one the user's); None for chat messages.
    request_messages: Mapped[list | None] = mapped_column(JSON)
    # Whether its client reads the reply as it grows (a page, a streaming API call); if not, the worker asks
    # the provider for the whole answer at once and writes it in one piece.
    streams: Mapped[bool] = mapped_column(default=True)
    text: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))
    input_tokens: Mapped[int | None] = mapped_column()
    output_tokens: Mapped[int | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(default=0)
    # Every provider call, in order (webapp.fallbacks.attempt): model, time, wait before it, error kind.
    # model_id is the model that answered (the last one asked); the first entry names the one requested.
    attempt_log: Mapped[list | None] = mapped_column(JSON)
    # Times the recovery sweep queued a new job for it (a lost worker or job); bounded by recovery.MAX_REQUEUES.
    requeues: Mapped[int] = mapped_column(default=0, server_default="0")
    enqueued_at: Mapped[datetime | None] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    message: Mapped[Message | None] = relationship(back_populates="generations")

    @property
    def is_finished(self) -> bool:
        return self.status in GenerationStatus.FINISHED


class ProviderSetting(db.Model):
    """An admin's settings for one LLM provider. The API key is Fernet-encrypted (see webapp.site_settings)."""

    __tablename__ = "provider_settings"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    base_url: Mapped[str | None] = mapped_column(String(500))
    api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    api_key_last4: Mapped[str | None] = mapped_column(String(4))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SiteSetting(db.Model):
    """Admin-managed settings that are not per provider (default model, disabled models, role allow-lists)."""

    __tablename__ = "site_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict | list | str | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEvent(db.Model):
    """One admin change: who, what, on what, before and after (secrets masked)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    actor_name: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(200), default="")
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ApiKey(db.Model):
    """A personal key for the JSON and OpenAI-compatible APIs. Shown once; only its SHA-256 is stored."""

    __tablename__ = "api_keys"
    # A user tells their keys apart by name.
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_api_keys_user_id_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))  # the key's first characters, to tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class UserSession(db.Model):
    """One sign-in: a browser (the session and remember-me cookies carry its token) or an API token
    family (every refresh token descended from one POST /api/token/). Revoking it ends that sign-in."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8), default="web")  # "web" or "api"
    # SHA-256 of the random token the client holds: a copy of the database gives no usable cookie.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    # API families: the jti of the one refresh token that may still be used; any other is a replay.
    refresh_jti: Mapped[str | None] = mapped_column(String(64))
    # When refresh_jti was last rotated: within REFRESH_REUSE_GRACE_SECONDS of it, the token it replaced
    # gets the same new pair again (webapp.api.tokens).
    refreshed_at: Mapped[datetime | None] = mapped_column()
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship()

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None and self.expires_at > utcnow()


class Group(db.Model):
    """A team: its members may use the models it allows, within its limits (webapp.groups, webapp.limits).

    Limits: None means the group does not set that limit, 0 means unlimited. ``member_*`` apply to each
    member; ``pooled_*`` to everything charged to the group (the primary group of its members).
    """

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # Model ids its members may use on top of their role's allow-list.
    models: Mapped[list] = mapped_column(JSON, default=list)
    member_requests_per_minute: Mapped[int | None] = mapped_column()
    member_tokens_per_day: Mapped[int | None] = mapped_column()
    member_monthly_budget: Mapped[float | None] = mapped_column()
    pooled_requests_per_minute: Mapped[int | None] = mapped_column()
    pooled_tokens_per_day: Mapped[int | None] = mapped_column()
    pooled_monthly_budget: Mapped[float | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    memberships: Mapped[list[GroupMember]] = relationship(
        back_populates="group", cascade="all, delete-orphan", passive_deletes=True
    )


class GroupMember(db.Model):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    group: Mapped[Group] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship()


class UsageRecord(db.Model):
    """What one generation used and cost, written when it is settled. Kept when its conversation (or its
    record) is deleted: usage is a record of money spent (webapp.usage reads it).

    A reply continued by a fallback (Continue with) has a row per part: 0 for the reply as first asked,
    1, 2, ... for each continuation, each naming the model that wrote it."""

    __tablename__ = "usage_records"
    __table_args__ = (UniqueConstraint("generation_id", "part", name="uq_usage_records_generation_id_part"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # No foreign keys to the generation or the user: the record outlives both.
    generation_id: Mapped[int] = mapped_column()
    part: Mapped[int] = mapped_column(default=0, server_default="0")
    user_id: Mapped[int] = mapped_column(index=True)
    username: Mapped[str] = mapped_column(String(64))
    # The group its pooled spending was charged to (the user's primary group then), by id and name.
    group_id: Mapped[int | None] = mapped_column(index=True)
    group_name: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16), default="web")
    model_id: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    input_tokens: Mapped[int] = mapped_column(default=0)
    output_tokens: Mapped[int] = mapped_column(default=0)
    # USD at the prices of the time; None when no price is known for the model.
    cost: Mapped[float | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class SharedLink(db.Model):
    """A read-only snapshot of one conversation's visible branch, opened at /s/<token> (webapp.sharing)."""

    __tablename__ = "shared_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    # [{"content": ..., "reply": ... | None, "model": ... | None}], the branch as it was when shared or refreshed.
    turns: Mapped[list] = mapped_column(JSON, default=list)
    system_prompt: Mapped[str | None] = mapped_column(Text)  # only when the owner ticked it
    include_system_prompt: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    snapshot_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()

    owner: Mapped[User] = relationship()

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None


class StoredFile(db.Model):
    """An attached file's bytes, stored once per content (SHA-256) in the database, so every web process and
    worker on any host reads it with no shared disk. Rows no link uses are deleted (webapp.attachments)."""

    __tablename__ = "stored_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    content_type: Mapped[str] = mapped_column(String(100))  # read from the bytes, never the client's word
    size: Mapped[int] = mapped_column()
    width: Mapped[int | None] = mapped_column()
    height: Mapped[int | None] = mapped_column()
    pages: Mapped[int | None] = mapped_column()
    # Deferred: pages list attachments by their metadata without loading the bytes.
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Attachment(db.Model):
    """A file as attached to one user message (chat) or one API request (generation), with the name it had."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("stored_files.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    generation_id: Mapped[int | None] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    file: Mapped[StoredFile] = relationship(lazy="joined", innerjoin=True)
    # Message.attachments, in the order they were attached. Links go with their message or generation
    # (deleted by webapp.attachments, as SQLite does not enforce the foreign keys), never set to NULL.
    message: Mapped[Message | None] = relationship(
        backref=backref("attachments", order_by="Attachment.position", passive_deletes="all")
    )

    @property
    def is_image(self) -> bool:
        return self.file.content_type.startswith("image/")


class Invitation(db.Model):
    """A single-use sign-up link an admin made (sign-up policy "invite"); only its SHA-256 is stored."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    # When set, only a sign-up giving this address may use it.
    email: Mapped[str | None] = mapped_column(String(254))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
    used_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    revoked_at: Mapped[datetime | None] = mapped_column()

    @property
    def is_usable(self) -> bool:
        return self.used_at is None and self.revoked_at is None and self.expires_at > utcnow()
