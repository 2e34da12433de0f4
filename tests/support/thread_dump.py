"""What every thread is doing, for a test that fails because something did not stop in time."""

from __future__ import annotations

import sys
import threading
import traceback


def thread_stacks() -> str:
    """The stack of every thread of this process, named, as text."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    parts = []
    for ident, frame in sys._current_frames().items():
        parts.append(f"--- thread {names.get(ident, ident)}\n{''.join(traceback.format_stack(frame))}")
    return "\n".join(parts)
