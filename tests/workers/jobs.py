"""Plain job functions the worker tests enqueue (importable by a worker process)."""

import time

from rq import get_current_job


def wait_for_go(number: int) -> int:
    """Runs until the test sets the Redis key 'go', then returns its number."""
    job = get_current_job()
    while not job.connection.exists("go"):
        time.sleep(0.01)
    return number


def fail() -> None:
    raise ValueError("this job fails on purpose")


def spin_forever() -> None:
    while True:
        time.sleep(0.01)
