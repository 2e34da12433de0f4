"""Run a worker: ``python -m workers [--concurrency N] [--burst]``.

With a concurrency above 1 (the default comes from WORKER_CONCURRENCY) one
process runs that many jobs at once in threads (``workers.threaded``);
with 1 it is RQ's classic forking worker, a process per job.
"""
from __future__ import annotations

import argparse
import logging

from rq import Worker

from webapp.queue import connect

from .app_context import worker_app
from .threaded import ThreadedWorker


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers", description="Run a Switchboard worker.")
    parser.add_argument("--burst", action="store_true", help="Quit when the queue is empty.")
    parser.add_argument("--name", help="Worker name (default: RQ's).")
    parser.add_argument("--concurrency", type=int, help="Jobs run at once (default: WORKER_CONCURRENCY).")
    parser.add_argument("--queue", help="Queue name (default: RQ_QUEUE_NAME).")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Loaded once here; every job pushes its own app context (see app_context.py).
    app = worker_app()
    concurrency = args.concurrency or app.config["WORKER_CONCURRENCY"]
    queues = [args.queue or app.config["RQ_QUEUE_NAME"]]
    connection = connect(app.config["REDIS_URL"])
    if concurrency > 1:
        worker = ThreadedWorker(queues, connection=connection, name=args.name, concurrency=concurrency)
    else:
        worker = Worker(queues, connection=connection, name=args.name)
    logging.getLogger(__name__).info("worker %s: %s, concurrency %d", worker.name, type(worker).__name__, concurrency)
    worker.work(burst=args.burst, with_scheduler=True)


if __name__ == "__main__":
    main()
