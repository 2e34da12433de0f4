"""Run a worker: ``python -m workers [--concurrency N] [--queue Q] [--burst]``.

With a concurrency above 1 (the default comes from WORKER_CONCURRENCY) one
process runs that many jobs at once in threads (``workers.threaded``);
with 1 it is RQ's classic forking worker, a process per job. If Redis goes
away the worker waits for it and carries on: no restart needed.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import redis
from rq.defaults import DEFAULT_WORKER_TTL

from webapp.extensions import db
from webapp.logs import configure_logging
from webapp.queue import connect

from .app_context import worker_app
from .base import Worker
from .recovery import Liveness, Sweeper
from .threaded import ThreadedWorker

log = logging.getLogger("workers")
REDIS_RETRY_CAP_SECONDS = 10.0


def wait_for_redis(connection: redis.Redis) -> None:
    delay = 0.5
    while True:
        try:
            connection.ping()
            return
        except redis.RedisError:
            log.warning("Redis is unavailable; retrying in %.1fs", delay)
            time.sleep(delay)
            delay = min(delay * 2, REDIS_RETRY_CAP_SECONDS)


def _drop_inherited_connections(app) -> None:
    with app.app_context():
        db.engine.dispose(close=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers", description="Run a Switchboard worker.")
    parser.add_argument("--burst", action="store_true", help="Quit when the queue is empty.")
    parser.add_argument("--name", help="Worker name (default: RQ's).")
    parser.add_argument("--concurrency", type=int, help="Jobs run at once (default: WORKER_CONCURRENCY).")
    parser.add_argument("--queue", help="Queue name (default: RQ_QUEUE_NAME).")
    args = parser.parse_args(argv)

    configure_logging()
    # Loaded once here; every job pushes its own app context (see app_context.py).
    app = worker_app()
    concurrency = args.concurrency or app.config["WORKER_CONCURRENCY"]
    queues = [args.queue or app.config["RQ_QUEUE_NAME"]]
    # RQ blocks up to its dequeue timeout (worker TTL - 15 s) on BLPOP: reads must outlast it.
    connection = connect(app.config["REDIS_URL"], socket_timeout=DEFAULT_WORKER_TTL + 30)
    forking = concurrency <= 1
    if forking:
        # The start-up sweep uses the database in this process; a forked job must not reuse its
        # pooled connections (two processes on one socket corrupt the protocol).
        os.register_at_fork(after_in_child=lambda: _drop_inherited_connections(app))

    while True:
        wait_for_redis(connection)
        if concurrency > 1:
            worker = ThreadedWorker(queues, connection=connection, name=args.name, concurrency=concurrency)
        else:
            worker = Worker(queues, connection=connection, name=args.name)
        log.info("worker %s: %s, concurrency %d", worker.name, type(worker).__name__, concurrency)
        liveness = Liveness(connection, worker.name, app.config["WORKER_ALIVE_TTL"])
        liveness.start()
        # The first sweep finishes what a previous crash left running. A forking worker sweeps
        # only then, before any fork: a thread using the database while the process forks
        # could leave the child a lock that is never released. Threaded workers sweep on.
        sweeper = Sweeper(app, connection, once=forking)
        if forking:
            sweeper.run()
        else:
            sweeper.start()
        try:
            worker.work(burst=args.burst)  # no scheduler process: nothing here is scheduled for later
        except redis.RedisError as exc:
            log.warning("worker %s: lost Redis (%s); waiting for it", worker.name, exc.__class__.__name__)
        finally:
            sweeper.stopped.set()
            liveness.stopped.set()
            liveness.join(timeout=5)
        # RQ records a SIGINT/SIGTERM as a shutdown request; anything else ended the loop by accident.
        if args.burst or worker._stop_requested or worker._shutdown_requested_date is not None:
            break
        log.warning("worker %s: stopped without being asked (Redis trouble?); starting again", worker.name)


if __name__ == "__main__":
    main()
