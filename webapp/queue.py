"""The Redis connection and the RQ queue that carries every LLM call."""

from __future__ import annotations

import redis
from flask import current_app
from rq import Queue, Worker

# Timeouts keep a page from hanging when Redis is gone; the error is then caught
# and shown as "queue unavailable" instead. The read timeout must outlast the
# longest blocking read (the status endpoint's ?wait, at most 10 s).
_CONNECT_TIMEOUT = 2.0
_READ_TIMEOUT = 20.0


# A gevent web process serves thousands of requests at once; a burst of them (every open reply
# stream waking at a chunk, hundreds of long polls) wants more connections than redis-py's default
# pool of 100, which then fails at once. There, the pool grows further and, when full, waits.
# Thread-based processes (the workers) keep the default pool.
_GREEN_MAX_CONNECTIONS = 2000
_GREEN_POOL_WAIT = 10.0


def _green() -> bool:
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("socket")


def connect(url: str, socket_timeout: float = _READ_TIMEOUT) -> redis.Redis:
    options = dict(socket_connect_timeout=_CONNECT_TIMEOUT, socket_timeout=socket_timeout, health_check_interval=30)
    if _green():
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=_GREEN_MAX_CONNECTIONS, timeout=_GREEN_POOL_WAIT, **options
        )
        return redis.Redis(connection_pool=pool)
    return redis.Redis.from_url(url, **options)


def get_redis() -> redis.Redis:
    ext = current_app.extensions
    if "switchboard_redis" not in ext:
        ext["switchboard_redis"] = connect(current_app.config["REDIS_URL"])
    return ext["switchboard_redis"]


def get_queue() -> Queue:
    return Queue(current_app.config["RQ_QUEUE_NAME"], connection=get_redis())


def job_id_for(generation_id: int) -> str:
    return f"generation-{generation_id}"


def worker_alive_key(worker_name: str) -> str:
    """Kept fresh by each worker process (workers.recovery.Liveness); gone within its TTL when the process dies."""
    return f"switchboard:worker:{worker_name}:alive"


def live_worker_names(connection: redis.Redis) -> list[str]:
    """Workers registered with RQ whose process is alive (RQ keeps a killed worker registered for minutes)."""
    names = [worker.name for worker in Worker.all(connection=connection)]
    if not names:
        return []
    pipe = connection.pipeline(transaction=False)
    for name in names:
        pipe.exists(worker_alive_key(name))
    return [name for name, alive in zip(names, pipe.execute(), strict=True) if alive]
