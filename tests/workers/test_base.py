"""The worker classes' shutdown: the command listener never holds it up."""

import threading

import pytest
import redis

from tests.support.waiting import wait_for
from workers.base import SimpleWorker, Worker
from workers.threaded import ThreadedWorker


@pytest.mark.parametrize("worker_class", [Worker, SimpleWorker, ThreadedWorker])
def test_unsubscribe_is_not_held_up_by_a_listener_that_already_saw_its_reply(redis_url, worker_class):
    worker = worker_class(["listener-test"], connection=redis.Redis.from_url(redis_url))
    worker.subscribe()
    wait_for(lambda: worker.pubsub.subscribed, 10, "the listener subscribed")
    # The order a loaded machine can produce: the listener reads the UNSUBSCRIBE reply before the worker
    # tells it to stop, and then waits (RQ's 60 s read timeout) for a subscription that never comes.
    worker.pubsub.unsubscribe()
    wait_for(lambda: not worker.pubsub.subscribed, 10, "the listener read the reply")
    stopped = threading.Event()
    threading.Thread(target=lambda: (worker.unsubscribe(), stopped.set()), daemon=True).start()
    assert stopped.wait(10), "the worker's shutdown waited on its command listener"
