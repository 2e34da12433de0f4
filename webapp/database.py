"""Storage rules every writer follows: SQLite tuned for many writers, and a write retried when it meets a lock.

SQLite lets one writer at a time. WAL lets readers carry on beside it, ``synchronous=NORMAL``
makes a commit cost no fsync (WAL stays durable across a process crash; a power cut may lose the
last commits, never corrupt), and ``busy_timeout`` makes a writer wait for the lock instead of
failing at once. A write that still meets a lock (or, on PostgreSQL, a deadlock or serialization
failure) is rolled back and run again, whole, by :func:`write`, so each unit of work given to it
must be safe to repeat: it reads what it needs inside, by id.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

from .extensions import db

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a unit of work keeps trying after lock errors, and the backoff between tries.
WRITE_RETRY_SECONDS = 30.0
_FIRST_DELAY, _MAX_DELAY = 0.005, 0.5
# PostgreSQL SQLSTATEs worth a second try: serialization failure, deadlock, lock not available.
_TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03"}
_SQLITE_LOCK_MESSAGES = ("database is locked", "database table is locked", "database schema has changed")


# Under gevent (gunicorn's gevent workers) SQLite's busy wait blocks the whole process, every open
# stream with it: wait only this long there, and let write() back off cooperatively instead.
COOPERATIVE_BUSY_TIMEOUT_MS = 50


def cooperative() -> bool:
    """True when gevent has patched the standard library (a blocking C call would stall every greenlet)."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey is not None and monkey.is_module_patched("socket"))


def tune_sqlite(engine, busy_timeout_ms: int) -> None:
    """WAL (a setting of the file, kept), plus busy timeout and synchronous=NORMAL on every connection."""
    if engine.dialect.name != "sqlite":
        return
    if cooperative():
        busy_timeout_ms = min(busy_timeout_ms, COOPERATIVE_BUSY_TIMEOUT_MS)

    @event.listens_for(engine, "connect")
    def sqlite_pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        # WAL needs no lock once set; setting it on an in-memory database is a harmless no-op.
        if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def is_transient(exc: BaseException) -> bool:
    """A lock or conflict that goes away by itself: the same write may succeed a moment later."""
    if not isinstance(exc, DBAPIError):
        return False
    if getattr(exc.orig, "sqlstate", None) in _TRANSIENT_SQLSTATES:
        return True
    message = str(exc.orig).lower()
    return any(text in message for text in _SQLITE_LOCK_MESSAGES)


def write(work: Callable[[], T], *, retry_seconds: float = WRITE_RETRY_SECONDS) -> T:
    """Run ``work`` and commit; on a lock error roll back and run it again with backoff.

    ``work`` must be repeatable: everything it changed is rolled back before the next try,
    and ORM objects it was handed are expired (reloaded on use), never half-written.
    """
    deadline = time.monotonic() + retry_seconds
    delay = _FIRST_DELAY
    tries = 0
    while True:
        tries += 1
        try:
            result = work()
            db.session.commit()
            return result
        except DBAPIError as exc:
            db.session.rollback()
            if not is_transient(exc) or time.monotonic() + delay > deadline:
                raise
            log.info("database busy (%s); try %d again in %.0f ms", exc.orig.__class__.__name__, tries, delay * 1000)
        except BaseException:
            db.session.rollback()  # nothing half-done stays in the session
            raise
        time.sleep(random.uniform(delay / 2, delay))  # jitter: writers that collided do not collide again
        delay = min(delay * 2, _MAX_DELAY)


def rollback_quietly() -> None:
    """Leave the session usable whatever state it was left in (an error handler's first step)."""
    try:
        db.session.rollback()
    except Exception:  # the connection itself is gone: drop it, the pool makes a new one
        log.debug("rollback failed; removing the session", exc_info=True)
        try:
            db.session.remove()
        except Exception:
            log.debug("session remove failed", exc_info=True)
