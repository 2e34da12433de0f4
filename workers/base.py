"""RQ's worker classes as this project runs them: RQ's own, except that shutdown never waits long on the
worker's command listener.

Every RQ worker listens for commands (stop-job, shutdown) on a pub/sub channel, in a thread that reads
with RQ's 60 s timeout. On shutdown RQ sends UNSUBSCRIBE, then stops that thread and joins it for 1 s.
Since redis-py 8.2 stopping also waits for the thread, with no bound; a thread that read the UNSUBSCRIBE
reply before it was told to stop is by then waiting up to 60 s for a subscription, so a worker's shutdown
could take a minute on a busy machine (seen in CI). Here the wait is bounded again, at RQ's 1 s; a listener
still waiting after that is a daemon thread that ends by itself.

(Telling the thread to stop before UNSUBSCRIBE would avoid the wait, but a thread that had not yet begun
to read would then close the pub/sub connection while this one sends on it.)
"""

from __future__ import annotations

import rq

LISTENER_STOP_SECONDS = 1.0  # RQ's own join timeout


class BoundedUnsubscribe:
    """Mixin for an RQ worker class: ``unsubscribe`` waits at most LISTENER_STOP_SECONDS for the listener."""

    def unsubscribe(self):
        if self.pubsub_thread:
            self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
            self.pubsub.unsubscribe()
            self.pubsub_thread.stop(timeout=LISTENER_STOP_SECONDS)
            self.pubsub.close()


class Worker(BoundedUnsubscribe, rq.Worker):
    """RQ's forking worker (a process per job)."""


class SimpleWorker(BoundedUnsubscribe, rq.SimpleWorker):
    """RQ's worker that runs jobs one at a time in its own process, no fork (tests, burst runs)."""
