"""Running a test app's queued jobs in a real RQ worker, in the test's own process."""

from __future__ import annotations

from webapp.queue import get_queue
from workers.base import SimpleWorker


def run_queued_jobs(app) -> None:
    """Run every job queued for ``app`` in a SimpleWorker (burst mode: it returns when the queue is empty)."""
    with app.app_context():
        queue = get_queue()
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
