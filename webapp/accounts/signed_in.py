"""The sign-ins a web process has just looked up, kept for a moment so most requests load their user without SQL.

An entry lives at most ``SIGNED_IN_CACHE_SECONDS`` (1 s), and only while nothing about users or sign-ins has
changed anywhere: every committed change to a user or a sign-in (sign-out, "sign out everywhere", ending a
sign-in on the sessions page, an admin's disable, a password change, a profile edit) moves one counter in
Redis before its request answers, and each request served from the cache reads that counter first (one GET,
no SQL). So a revoked sign-in is refused on its very next request on every process, whichever it reaches.
(A pub/sub message would reach the other processes' readers a moment later, not before their next request.)
Without Redis the cache is not used.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass

import redis
from flask import current_app, has_app_context
from sqlalchemy import event, inspect
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from ..extensions import db
from ..models import User, UserSession
from ..queue import get_redis

log = logging.getLogger(__name__)

VERSION_KEY = "switchboard:accounts:version"  # moves on every committed change to users or sign-ins
_PENDING = "switchboard_changed_users"  # Session.info key: users changed in the open transaction
_EXTENSION = "switchboard_signed_in"


@dataclass
class Entry:
    user: dict  # the row's column values
    record: dict
    until: float  # time.monotonic() past which it is not served
    version: bytes | None  # VERSION_KEY when it was read, before the database

    @property
    def user_id(self) -> int:
        return self.user["id"]


def _columns(model) -> tuple[str, ...]:
    return tuple(attr.key for attr in inspect(model).column_attrs)


class SignedInCache:
    """One per app in each process: token hash -> the live sign-in and its user, as plain values."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self._user_columns, self._record_columns = _columns(User), _columns(UserSession)

    def get(self, token_hash: str, version: bytes | None) -> Entry | None:
        entry = self._entries.get(token_hash)
        if entry is not None and entry.until > time.monotonic() and entry.version == version:
            return entry
        return None

    def put(self, token_hash: str, record: UserSession, version: bytes | None) -> None:
        """Keep ``record`` (read after ``version`` was: a change committed meanwhile has moved the counter)."""
        user_values, record_values = record.user.__dict__, record.__dict__
        if any(key not in user_values for key in self._user_columns) or any(
            key not in record_values for key in self._record_columns
        ):
            return  # not every column loaded: reading one now would be a query
        entry = Entry(
            user={key: user_values[key] for key in self._user_columns},
            record={key: record_values[key] for key in self._record_columns},
            until=time.monotonic() + self.seconds,
            version=version,
        )
        with self._lock:
            if len(self._entries) > 10_000:  # bound it: drop what has run out
                now = time.monotonic()
                self._entries = {key: kept for key, kept in self._entries.items() if kept.until > now}
            self._entries[token_hash] = entry

    def forget(self, user_ids: set[int] | None) -> None:
        """Forget these users' entries (None: everyone's)."""
        with self._lock:
            if user_ids is None:
                self._entries = {}
            else:
                self._entries = {key: kept for key, kept in self._entries.items() if kept.user_id not in user_ids}

    @staticmethod
    def attach(entry: Entry) -> tuple[User, UserSession]:
        """The entry's user and sign-in as records of this request's session, read from no database."""
        return _attached(User, entry.user), _attached(UserSession, entry.record)


def _attached(model, values: dict):
    existing = db.session.identity_map.get(identity_key(model, values["id"]))
    if existing is not None:  # this request has loaded it already: that copy is as fresh as ours
        return existing
    instance = model.__mapper__.class_manager.new_instance()
    # As the ORM's own loader fills a row's record: straight into its dict, with no history. JSON columns are
    # copied: a view may change the dict in place, and the entry must keep its own.
    instance.__dict__.update(
        {key: copy.deepcopy(value) if isinstance(value, dict | list) else value for key, value in values.items()}
    )
    make_transient_to_detached(instance)
    db.session.add(instance)
    return instance


class Unavailable(Exception):
    """Redis cannot say whether anything changed: the sign-in is read from the database."""


def for_this_process() -> SignedInCache | None:
    """The app's cache in this process, or None when it is turned off (SIGNED_IN_CACHE_SECONDS = 0)."""
    seconds = current_app.config.get("SIGNED_IN_CACHE_SECONDS") or 0
    if seconds <= 0:
        return None
    cache = current_app.extensions.get(_EXTENSION)
    if cache is None:
        cache = current_app.extensions[_EXTENSION] = SignedInCache(seconds)
    return cache


def version() -> bytes | None:
    """The change counter now (None: nothing has changed since Redis started); ``Unavailable`` without Redis."""
    try:
        return get_redis().get(VERSION_KEY)
    except redis.RedisError as exc:
        raise Unavailable() from exc


def invalidate() -> None:
    """Forget this process's entries (tests that count a request's queries compare like with like)."""
    cache = current_app.extensions.get(_EXTENSION)
    if cache is not None:
        cache.forget(None)


def note_changed(session, user_ids: set[int] | None) -> None:
    """Users whose sign-ins change when ``session`` commits (None: possibly anyone's); statements name
    theirs with the execution option ``users_changed`` instead."""
    pending = session.info.get(_PENDING, set())
    session.info[_PENDING] = None if pending is None or user_ids is None else pending | user_ids


def _announce(user_ids: set[int] | None) -> None:
    """Forget the users here, and move the counter every process checks before serving an entry."""
    if not has_app_context():
        return
    cache = current_app.extensions.get(_EXTENSION)
    if cache is not None:
        cache.forget(user_ids)
    try:
        get_redis().incr(VERSION_KEY)
    except redis.RedisError:
        # The other processes cannot read the counter either, so they serve no entry until Redis is back.
        log.warning("sign-in cache: could not announce a change of user(s) %s", user_ids or "(any)")


@event.listens_for(db.session, "after_flush")
def _note_flushed_changes(session, _flush_context):
    changed = set()
    for instance in (*session.dirty, *session.deleted):
        if isinstance(instance, User) and session.is_modified(instance, include_collections=False):
            changed.add(instance.id)
        elif isinstance(instance, UserSession) and session.is_modified(instance, include_collections=False):
            changed.add(instance.user_id)
    for instance in session.deleted:
        if isinstance(instance, User | UserSession):
            changed.add(instance.id if isinstance(instance, User) else instance.user_id)
    if changed:
        note_changed(session, changed)


@event.listens_for(db.session, "do_orm_execute")
def _note_bulk_changes(state):
    # An UPDATE or DELETE of users or sign-ins by statement, not through records: the statement names whose
    # sign-ins it changes (execution option ``users_changed``, a frozenset of user ids), else anyone's.
    if (state.is_update or state.is_delete) and any(
        mapper.class_ in (User, UserSession) for mapper in state.all_mappers if mapper is not None
    ):
        changed = state.execution_options.get("users_changed")
        if changed is None or changed:
            note_changed(state.session, None if changed is None else set(changed))


@event.listens_for(db.session, "after_commit")
def _announce_committed_changes(session):
    if _PENDING in session.info:
        _announce(session.info.pop(_PENDING))


@event.listens_for(db.session, "after_rollback")
def _drop_rolled_back_changes(session):
    session.info.pop(_PENDING, None)
