"""Taking calls in: one credential's chat calls are taken in a few at a time per web process.

Taking a call in (the caller looked up, the request checked, the generation recorded and queued) is the
part of a call that costs the web CPU; waiting for the answer costs next to nothing. A script with 200
calls in flight would otherwise keep 200 of them taking their turns at the CPU, and a colleague's chat
request would queue behind them all. Here the script's calls wait their turn before any database work
(no CPU, no connection), so every other caller shares the CPU with at most ``API_CALLS_TAKEN_IN_AT_ONCE`` of
them. Nothing is refused, and one caller alone still uses every CPU the process has. How many run at
once per user, and in what order, is decided later by the fair queue (``webapp.scheduling``).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_turns: dict[str, list] = {}  # credential digest -> [semaphore, calls holding or waiting for it]


@contextmanager
def in_turn(credential: str, at_once: int) -> Iterator[None]:
    """Hold one of the credential's ``at_once`` slots for the block (waiting for one if all are taken).

    ``credential``: the Authorization header as sent; only its digest is kept, and only while calls of it
    are being taken in. (Threads here are gevent's in gunicorn: waiting costs a greenlet, not a thread.)
    ``at_once`` 0: no limit.
    """
    if at_once <= 0:
        yield
        return
    key = hashlib.blake2b(credential.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    with _lock:
        entry = _turns.get(key)
        if entry is None:
            entry = _turns[key] = [threading.BoundedSemaphore(at_once), 0]
        entry[1] += 1
    try:
        with entry[0]:
            yield
    finally:
        with _lock:
            entry[1] -= 1
            if entry[1] == 0:
                del _turns[key]


def waiting_or_taken_in() -> int:
    """Calls being taken in or waiting for their turn, in this process (for tests and metrics)."""
    with _lock:
        return sum(entry[1] for entry in _turns.values())
