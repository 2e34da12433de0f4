"""``make bench``: end-to-end figures for Switchboard against a fake provider, each beside its floor.

Starts its own Valkey, database, fake OpenAI-format provider, gunicorn and ONE
worker process, signs simulated users up through the real forms and has them
chat as the page script does. Prints a table and writes bench/results.json.
Runs on a temp SQLite file, then again on a throwaway PostgreSQL cluster when Debian's
postgresql is installed and this runs as root (BENCH_POSTGRES=0 skips that pass).
Environment: BENCH_DATABASE_URL (one run on that database instead), BENCH_TPS,
BENCH_TTFT, BENCH_TOKENS (latency phases), BENCH_QUICK=1 (a short run),
BENCH_SSE_STREAMS (open event streams on one web process, default 1000).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path

from webapp.paths import PROJECT_ROOT

from .fairness import fairness_rows
from .phases import run, run_only_counts, run_only_fairness
from .postgres import Unavailable, throwaway_cluster
from .report import table
from .stack import Stack

RESULTS = Path(__file__).with_name("results.json")


def main(argv=None) -> int:
    quick = os.environ.get("BENCH_QUICK") == "1"
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,10,50,100" if not quick else "1,10")
    parser.add_argument("--turns", type=int, default=2, help="turns per user at each latency level")
    parser.add_argument("--ttft", type=float, default=float(os.environ.get("BENCH_TTFT", "0.2")))
    parser.add_argument("--tps", type=float, default=float(os.environ.get("BENCH_TPS", "20")))
    parser.add_argument("--tokens", type=int, default=int(os.environ.get("BENCH_TOKENS", "30")))
    parser.add_argument("--zero-tokens", type=int, default=20, help="tokens per reply in the zero-delay phases")
    parser.add_argument("--throughput-seconds", type=float, default=15.0 if not quick else 5.0)
    parser.add_argument("--jobs", type=int, default=500 if not quick else 100)
    parser.add_argument("--rest-requests", type=int, default=200)
    parser.add_argument("--capacity-tokens", type=int, default=10, help="tokens (2 a second) per capacity-phase reply")
    parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2")))
    parser.add_argument("--worker-concurrency", type=int, default=100)
    parser.add_argument(
        "--sse-streams",
        type=int,
        default=int(os.environ.get("BENCH_SSE_STREAMS", "1000")),
        help="event streams held open on one web process",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs) afterwards")
    parser.add_argument(
        "--only",
        choices=["fairness", "counts"],
        help="run only this phase (fairness: SQLite or BENCH_DATABASE_URL; counts: SQLite and PostgreSQL); printed, not saved",
    )
    args = parser.parse_args(argv)
    args.quick = quick
    args.levels = [int(x) for x in args.levels.split(",")]
    if args.only == "fairness":
        with Stack(
            web_workers=args.web_workers,
            worker_concurrency=args.worker_concurrency,
            keep=args.keep,
            database_url=os.environ.get("BENCH_DATABASE_URL"),
        ) as stack:
            entry = asyncio.run(run_only_fairness(stack, args))
        print(json.dumps(entry, indent=2))
        for row in fairness_rows(entry):
            print("  ".join(str(cell) for cell in row))
        return 0
    if args.only == "counts":
        return only_counts(args)

    logging.basicConfig(level=logging.WARNING)  # before create_app() (jobs phase) would set INFO
    started = time.monotonic()
    # SQLite (the default a team starts with; or BENCH_DATABASE_URL), then PostgreSQL when one can be had.
    results = bench_on(os.environ.get("BENCH_DATABASE_URL"), args)
    if not os.environ.get("BENCH_DATABASE_URL") and os.environ.get("BENCH_POSTGRES", "1") == "1":
        try:
            with throwaway_cluster() as postgres_url:
                results["per_database"] = {"postgresql": bench_on(postgres_url, args)}
        except Unavailable as exc:
            print(f"\nPostgreSQL pass skipped: {exc}", flush=True)
        except Exception as exc:  # keep the SQLite figures; say what failed
            print(f"\nPostgreSQL pass failed: {type(exc).__name__}: {str(exc)[-1500:]}", flush=True)
            results["per_database"] = {"postgresql": {"error": f"{type(exc).__name__}: {str(exc)[-1500:]}"}}
    results["total_seconds"] = time.monotonic() - started
    results["note"] = (
        "Shared 2-core machine: other work on it (test suites) skews these figures; "
        "the simulated users, the fake provider and the baseline run on the same cores."
    )
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"\n{results['config']['database']}:")
    print(table(results))
    for database, figures in results.get("per_database", {}).items():
        print(f"\n{database}:")
        print(table(figures) if "error" not in figures else f"failed: {figures['error'][-300:]}")
    print(f"\nwritten {RESULTS.relative_to(PROJECT_ROOT)} in {results['total_seconds']:.0f}s")
    return 0


def only_counts(args) -> int:
    def on(database_url):
        with Stack(
            web_workers=args.web_workers, worker_concurrency=args.worker_concurrency, database_url=database_url
        ) as stack:
            return asyncio.run(run_only_counts(stack, args))

    entries = {"sqlite": on(None)}
    try:
        with throwaway_cluster() as postgres_url:
            entries["postgresql"] = on(postgres_url)
    except Unavailable as exc:
        print(f"PostgreSQL pass skipped: {exc}")
    print(json.dumps(entries, indent=2))
    return 0


def bench_on(database_url: str | None, args) -> dict:
    """Every phase against one database (None: a temp SQLite file)."""
    started = time.monotonic()
    with Stack(
        web_workers=args.web_workers,
        worker_concurrency=args.worker_concurrency,
        keep=args.keep,
        database_url=database_url,
    ) as stack:
        print(f"stack up in {time.monotonic() - started:.1f}s (logs in {stack.tmp})", flush=True)
        results = asyncio.run(run(stack, args))
    results["seconds"] = time.monotonic() - started
    return results


if __name__ == "__main__":
    sys.exit(main())
