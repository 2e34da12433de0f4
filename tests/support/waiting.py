"""Waiting on a condition with a deadline: the one way tests wait for work (never a fixed sleep)."""

import time


def wait_for(predicate, timeout: float = 20.0, what: str = "condition", interval: float = 0.02):
    """Poll ``predicate`` until it returns a truthy value (returned) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout:g}s")
