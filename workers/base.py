"""RQ's worker classes as this project runs them: RQ's own, except that shutdown never waits on the
worker's command listener.

Every RQ worker listens for commands (stop-job, shutdown) on a pub/sub channel, in a thread that reads
with RQ's 60 s timeout. On shutdown RQ sends UNSUBSCRIBE and then stops that thread. Since redis-py 8.2
stopping also waits for the thread, and a thread that read the UNSUBSCRIBE reply before it was told to
stop is by then waiting up to 60 s for a subscription: a worker's shutdown, and its warm stop, could take
a minute on a busy machine (seen in CI). Telling the thread first lets the reply end its loop at once.
"""

from __future__ import annotations

import rq


class PromptUnsubscribe:
    """Mixin for an RQ worker class: ``unsubscribe`` stops the listener before UNSUBSCRIBE, not after."""

    def unsubscribe(self):
        if self.pubsub_thread:
            self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
            self.pubsub_thread.stop(timeout=0)  # only clears its run flag: the UNSUBSCRIBE reply then ends it
            self.pubsub.unsubscribe()
            self.pubsub_thread.join(timeout=1)
            self.pubsub.close()


class Worker(PromptUnsubscribe, rq.Worker):
    """RQ's forking worker (a process per job)."""


class SimpleWorker(PromptUnsubscribe, rq.SimpleWorker):
    """RQ's worker that runs jobs one at a time in its own process, no fork (tests, burst runs)."""
