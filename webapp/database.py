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
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from .extensions import db

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a unit of work keeps trying after lock errors, and the backoff between tries.
WRITE_RETRY_SECONDS = 30.0
_FIRST_DELAY, _MAX_DELAY = 0.005, 0.5
# PostgreSQL SQLSTATEs worth a second try: serialization failure, deadlock, lock not available.
_TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03"}
_SQLITE_LOCK_MESSAGES = ("database is locked", "database table is locked", "database schema has changed")
# A write that must not be lost (a reply's final record) waits out an outage with this backoff.
_OUTAGE_FIRST_DELAY, _OUTAGE_MAX_DELAY = 0.25, 2.0


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


def is_disconnect(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (a restart, the network), not a lock."""
    if not isinstance(exc, DBAPIError) or is_transient(exc):
        return False
    return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)


def write(
    work: Callable[[], T],
    *,
    retry_seconds: float = WRITE_RETRY_SECONDS,
    outage_seconds: float = 0.0,
    keep_loaded: bool = False,
) -> T:
    """Run ``work`` and commit; on a lock error roll back and run it again with backoff.

    With ``outage_seconds``, a lost or refused connection is tried again too, for that long
    (a write that must survive a database restart). ``work`` must be repeatable: everything it
    changed is rolled back before the next try, and ORM objects it was handed are expired
    (reloaded on use), never half-written.

    ``keep_loaded``: the commit leaves the session's objects as they are instead of expiring them, for a
    caller that reads them again right after and knows nothing else changed them (each would be reloaded,
    one query apiece, otherwise).
    """
    started = time.monotonic()
    delay, outage_delay = _FIRST_DELAY, _OUTAGE_FIRST_DELAY
    tries = 0
    while True:
        tries += 1
        try:
            result = work()
            _commit(keep_loaded)
            return result
        except DBAPIError as exc:
            rollback_quietly()
            waited = time.monotonic() - started
            if is_transient(exc) and waited + delay <= retry_seconds:
                log.info(
                    "database busy (%s); try %d again in %.0f ms", exc.orig.__class__.__name__, tries, delay * 1000
                )
                pause, delay = random.uniform(delay / 2, delay), min(delay * 2, _MAX_DELAY)
            elif is_disconnect(exc) and waited + outage_delay <= outage_seconds:
                log.warning(
                    "database unreachable (%s); try %d again in %.1f s",
                    exc.orig.__class__.__name__,
                    tries,
                    outage_delay,
                )
                pause, outage_delay = outage_delay, min(outage_delay * 2, _OUTAGE_MAX_DELAY)
            else:
                raise
        except BaseException:
            db.session.rollback()  # nothing half-done stays in the session
            raise
        time.sleep(pause)  # jitter on locks: writers that collided do not collide again


def _commit(keep_loaded: bool) -> None:
    session = db.session()
    if not keep_loaded:
        session.commit()
        return
    expiring, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expiring


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
