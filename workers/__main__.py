"""Run a worker: ``python -m workers [--burst]``. Loads the app once, then forks a horse per job."""
from __future__ import annotations

import argparse
import logging

from rq import Worker

from webapp.queue import connect

from .app_context import worker_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers", description="Run a Switchboard worker.")
    parser.add_argument("--burst", action="store_true", help="Quit when the queue is empty.")
    parser.add_argument("--name", help="Worker name (default: RQ's).")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Loaded once here; each forked job pushes its own app context (see app_context.py).
    app = worker_app()
    worker = Worker([app.config["RQ_QUEUE_NAME"]], connection=connect(app.config["REDIS_URL"]), name=args.name)
    worker.work(burst=args.burst, with_scheduler=True)


if __name__ == "__main__":
    main()
