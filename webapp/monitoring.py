"""What /readyz and /metrics report: database, Redis, workers, queue and generations."""
from __future__ import annotations

from datetime import timedelta

import redis
from rq import Queue
from rq.registry import FailedJobRegistry, StartedJobRegistry
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from .extensions import db
from .models import Generation, utcnow
from .observability import LATENCY_BUCKETS, METRICS_KEY
from .queue import get_queue, get_redis, live_worker_names


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


def _line(name: str, value, labels: dict | None = None) -> str:
    if labels:
        rendered = ",".join(f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                            for k, v in labels.items())
        return f"{name}{{{rendered}}} {value}"
    return f"{name} {value}"


def _http_metrics(connection: redis.Redis) -> list[str]:
    raw = {k.decode(): v.decode() for k, v in connection.hgetall(METRICS_KEY).items()}
    lines = ["# TYPE switchboard_http_requests_total counter"]
    buckets: dict[str, dict[str, int]] = {}
    sums: dict[str, float] = {}
    for key, value in sorted(raw.items()):
        kind, _, rest = key.partition("|")
        if kind == "count":
            method, route, status = rest.split(" ", 2)
            lines.append(_line("switchboard_http_requests_total", value,
                               {"method": method, "route": route, "status": status}))
        elif kind == "sum":
            sums[rest] = float(value)
        elif kind == "bucket":
            series, _, bucket = rest.rpartition("|")
            buckets.setdefault(series, {})[bucket] = int(value)
    lines.append("# TYPE switchboard_http_request_duration_seconds histogram")
    for series, counts in sorted(buckets.items()):
        method, route = series.split(" ", 1)
        labels = {"method": method, "route": route}
        running = 0
        for bound in LATENCY_BUCKETS:
            running += counts.get(str(bound), 0)
            lines.append(_line("switchboard_http_request_duration_seconds_bucket", running, {**labels, "le": bound}))
        running += counts.get("+Inf", 0)
        lines.append(_line("switchboard_http_request_duration_seconds_bucket", running, {**labels, "le": "+Inf"}))
        lines.append(_line("switchboard_http_request_duration_seconds_count", running, labels))
        lines.append(_line("switchboard_http_request_duration_seconds_sum", sums.get(series, 0.0), labels))
    return lines


def metrics_text() -> str:
    lines: list[str] = []
    lines.append("# TYPE switchboard_generations gauge")
    for status, count in db.session.execute(select(Generation.status, func.count()).group_by(Generation.status)):
        lines.append(_line("switchboard_generations", count, {"status": status}))

    since = utcnow() - timedelta(hours=1)
    finished = db.session.execute(
        select(Generation.provider, Generation.started_at, Generation.finished_at, Generation.error_code)
        .where(Generation.finished_at >= since, Generation.started_at.is_not(None))
    ).all()
    per_provider: dict[str, list[float]] = {}
    errors: dict[tuple[str, str], int] = {}
    for provider, started, ended, error_code in finished:
        per_provider.setdefault(provider, []).append((ended - started).total_seconds())
        if error_code:
            errors[(provider, error_code)] = errors.get((provider, error_code), 0) + 1
    lines.append("# TYPE switchboard_provider_latency_seconds summary")
    for provider, durations in sorted(per_provider.items()):
        lines.append(_line("switchboard_provider_latency_seconds_sum", round(sum(durations), 6), {"provider": provider}))
        lines.append(_line("switchboard_provider_latency_seconds_count", len(durations), {"provider": provider}))
    lines.append("# TYPE switchboard_provider_errors_last_hour gauge")
    for (provider, code), count in sorted(errors.items()):
        lines.append(_line("switchboard_provider_errors_last_hour", count, {"provider": provider, "code": code}))

    try:
        connection = get_redis()
        queue: Queue = get_queue()
        lines.append("# TYPE switchboard_queue_depth gauge")
        lines.append(_line("switchboard_queue_depth", queue.count, {"queue": queue.name}))
        lines.append("# TYPE switchboard_jobs_running gauge")
        lines.append(_line("switchboard_jobs_running", StartedJobRegistry(queue=queue).count, {"queue": queue.name}))
        lines.append("# TYPE switchboard_jobs_failed gauge")
        lines.append(_line("switchboard_jobs_failed", FailedJobRegistry(queue=queue).count, {"queue": queue.name}))
        lines.append("# TYPE switchboard_workers gauge")
        lines.append(_line("switchboard_workers", len(live_worker_names(connection))))
        lines.extend(_http_metrics(connection))
        lines.append(_line("switchboard_redis_up", 1))
    except redis.RedisError:
        lines.append(_line("switchboard_redis_up", 0))
    return "\n".join(lines) + "\n"
