"""Metrics: what /readyz and /metrics report (database, Redis, workers, queue, generations), and the request
counts and latency histograms every web process records in Redis, so /metrics sees every process and host,
not only the one that answers the scrape."""

from __future__ import annotations

import time
from datetime import timedelta

import redis
from flask import Flask, g, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector
from rq import Queue
from rq.registry import FailedJobRegistry, StartedJobRegistry
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from .extensions import db
from .models import Generation, utcnow
from .queue import get_queue, get_redis, live_worker_names

# Prometheus histogram buckets (seconds) for request latency.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METRICS_KEY = "switchboard:metrics:http"


def record_request(connection: redis.Redis, route: str, method: str, status: int, seconds: float) -> None:
    bucket = next((b for b in LATENCY_BUCKETS if seconds <= b), "+Inf")
    field = f"{method} {route} {status // 100}xx"
    pipe = connection.pipeline(transaction=False)
    pipe.hincrby(METRICS_KEY, f"count|{field}", 1)
    pipe.hincrbyfloat(METRICS_KEY, f"sum|{method} {route}", seconds)
    pipe.hincrby(METRICS_KEY, f"bucket|{method} {route}|{bucket}", 1)
    pipe.execute()


def init_request_metrics(app: Flask) -> None:
    """Count every request and its time by route, method and status class (static files excepted)."""

    @app.before_request
    def start_timer():
        g.request_started = time.perf_counter()

    @app.after_request
    def count_request(response):
        started = g.get("request_started")
        if started is not None and request.endpoint != "static":
            route = request.url_rule.rule if request.url_rule is not None else "unmatched"
            try:
                record_request(get_redis(), route, request.method, response.status_code, time.perf_counter() - started)
            except redis.RedisError:
                pass  # metrics must never break a page
        return response


def readiness() -> dict:
    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
    except SQLAlchemyError as exc:
        db.session.rollback()
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    try:
        connection = get_redis()
        connection.ping()
        checks["redis"] = {"ok": True}
        workers = live_worker_names(connection)
        checks["workers"] = {"ok": bool(workers), "count": len(workers)}
    except redis.RedisError as exc:
        checks["redis"] = {"ok": False, "error": type(exc).__name__}
        checks["workers"] = {"ok": False, "count": None}
    return checks


class SwitchboardCollector(Collector):
    """The figures /metrics exposes, read fresh at each scrape.

    prometheus_client writes the exposition format; the figures themselves come from the
    database and from Redis (request counts and latency histograms are kept there, so every
    web process on every host adds to the same series), not from this process's memory.
    """

    def collect(self):
        yield from self._generations()
        try:
            connection = get_redis()
            yield from self._queue(connection)
            yield from self._http(connection)
            up = 1
        except redis.RedisError:
            up = 0
        yield GaugeMetricFamily("switchboard_redis_up", "Whether Redis answered this scrape.", value=up)

    def _generations(self):
        by_status = GaugeMetricFamily("switchboard_generations", "Generations by status.", labels=["status"])
        for status, count in db.session.execute(select(Generation.status, func.count()).group_by(Generation.status)):
            by_status.add_metric([status], count)
        yield by_status

        since = utcnow() - timedelta(hours=1)
        finished = db.session.execute(
            select(Generation.provider, Generation.started_at, Generation.finished_at, Generation.error_code).where(
                Generation.finished_at >= since, Generation.started_at.is_not(None)
            )
        ).all()
        durations: dict[str, list[float]] = {}
        errors: dict[tuple[str, str], int] = {}
        for provider, started, ended, error_code in finished:
            durations.setdefault(provider, []).append((ended - started).total_seconds())
            if error_code:
                errors[(provider, error_code)] = errors.get((provider, error_code), 0) + 1
        latency = SummaryMetricFamily(
            "switchboard_provider_latency_seconds",
            "Time from a worker taking a reply to its end, last hour.",
            labels=["provider"],
        )
        for provider, values in sorted(durations.items()):
            latency.add_metric([provider], count_value=len(values), sum_value=round(sum(values), 6))
        yield latency
        failures = GaugeMetricFamily(
            "switchboard_provider_errors_last_hour", "Failed replies in the last hour.", labels=["provider", "code"]
        )
        for (provider, code), count in sorted(errors.items()):
            failures.add_metric([provider, code], count)
        yield failures

    def _queue(self, connection: redis.Redis):
        queue: Queue = get_queue()
        for name, doc, value in (
            ("switchboard_queue_depth", "Jobs waiting in the queue.", queue.count),
            ("switchboard_jobs_running", "Jobs running now.", StartedJobRegistry(queue=queue).count),
            ("switchboard_jobs_failed", "Jobs in the failed registry.", FailedJobRegistry(queue=queue).count),
        ):
            family = GaugeMetricFamily(name, doc, labels=["queue"])
            family.add_metric([queue.name], value)
            yield family
        yield GaugeMetricFamily(
            "switchboard_workers", "Workers whose process is alive.", value=len(live_worker_names(connection))
        )

    def _http(self, connection: redis.Redis):
        raw = {k.decode(): v.decode() for k, v in connection.hgetall(METRICS_KEY).items()}
        requests = CounterMetricFamily(
            "switchboard_http_requests", "HTTP requests answered.", labels=["method", "route", "status"]
        )
        buckets: dict[str, dict[str, int]] = {}
        sums: dict[str, float] = {}
        for key, value in sorted(raw.items()):
            kind, _, rest = key.partition("|")
            if kind == "count":
                requests.add_metric(rest.split(" ", 2), float(value))
            elif kind == "sum":
                sums[rest] = float(value)
            elif kind == "bucket":
                series, _, bucket = rest.rpartition("|")
                buckets.setdefault(series, {})[bucket] = int(value)
        yield requests
        latency = HistogramMetricFamily(
            "switchboard_http_request_duration_seconds", "Time to answer a request.", labels=["method", "route"]
        )
        for series, counts in sorted(buckets.items()):
            running, cumulative = 0, []
            for bound in LATENCY_BUCKETS:
                running += counts.get(str(bound), 0)
                cumulative.append((str(bound), running))
            cumulative.append(("+Inf", running + counts.get("+Inf", 0)))
            latency.add_metric(series.split(" ", 1), cumulative, sum_value=sums.get(series, 0.0))
        yield latency


def metrics_text() -> bytes:
    """The Prometheus exposition text (a registry per scrape: the collector reads the current app's data)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SwitchboardCollector())
    return generate_latest(registry)
