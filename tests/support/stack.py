"""The app as `make run` serves it, started from a test or the bench: gunicorn and `python -m workers` processes
around one database and one Redis, each in its own process group with its log in the stack's folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from supervisor import gunicorn_command
from tests.support.ports import free_port
from tests.support.waiting import wait_for
from webapp.config import ENV_KEYS
from webapp.paths import PROJECT_ROOT

# gunicorn's log line for each web process it starts.
GUNICORN_CHILD_RE = re.compile(r"Booting worker with pid: (\d+)")


def app_env(instance: Path, database_url: str, redis_url: str, queue: str, **extra: str) -> dict[str, str]:
    """This process's environment without the developer's settings, plus what every process of one stack shares."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env.update(
        {
            "SWITCHBOARD_INSTANCE_PATH": str(instance),
            # Every process gets the same key, so any web process accepts any session.
            "SECRET_KEY": "test-stack-secret-key-0123456789abcdef",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "RQ_QUEUE_NAME": queue,
            "DEFAULT_REQUESTS_PER_MINUTE": "0",  # simulated users send far more than a person would
            "DEFAULT_TOKENS_PER_DAY": "0",
            "SIGNUP_MAX_PER_HOUR": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env


def migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"flask db upgrade failed ({done.returncode}):\n{done.stderr[-3000:]}")


def worker_command(queue: str | None = None, concurrency: int | None = None, name: str | None = None) -> list[str]:
    """`python -m workers` with the given options (the environment supplies the rest)."""
    args = [sys.executable, "-m", "workers"]
    if concurrency is not None:
        args += ["--concurrency", str(concurrency)]
    if queue is not None:
        args += ["--queue", queue]
    if name is not None:
        args += ["--name", name]
    return args


def start_process(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """A child in its own process group (so stopping it stops its children), output to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            args, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_process(proc: subprocess.Popen | None, timeout: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL it after ``timeout``."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, 15)
        except ProcessLookupError:
            return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(5)


def stop_worker(proc: subprocess.Popen, log_path: Path, timeout: float = 15.0) -> None:
    """SIGTERM a `python -m workers` process and wait for it. One still running after ``timeout`` is killed (a
    leftover process would warn in a later test) and fails the test with the end of its log."""
    proc.terminate()
    try:
        proc.wait(timeout)
        return
    except subprocess.TimeoutExpired:
        proc.kill()
    proc.wait(5)
    tail = log_path.read_text(errors="replace")[-20000:]
    raise AssertionError(f"the worker did not stop within {timeout:g}s of SIGTERM; the end of its log:\n{tail}")


class Stack:
    """``servers`` gunicorns of ``web_processes`` gevent processes each, and ``workers`` workers of ``concurrency``
    threads, around ``database_url`` and ``redis_url``; ``env`` adds or overrides settings."""

    def __init__(
        self,
        tmp: Path,
        database_url: str,
        redis_url: str,
        *,
        servers: int = 1,
        web_processes: int = 2,
        workers: int = 1,
        concurrency: int | None = None,
        env: dict | None = None,
        access_log_format: str | None = None,
        queue: str | None = None,
    ):
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.queue = queue or f"stack-{uuid.uuid4().hex[:8]}"
        self.env = app_env(self.tmp / "instance", database_url, redis_url, self.queue, **(env or {}))
        self.servers, self.web_processes = servers, web_processes
        self.workers, self.concurrency = workers, concurrency
        self.access_log_format = access_log_format
        self.procs: dict[str, subprocess.Popen] = {}
        self.urls = [f"http://127.0.0.1:{free_port()}" for _ in range(servers)]

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

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
        migrate(self.env)
        for index, url in enumerate(self.urls):
            self.start_web(f"web{index}", url)
        for index in range(self.workers):
            self.start_worker(f"worker{index}")
        for url in self.urls:
            wait_for(lambda: self._answers(f"{url}/auth/login"), 60, f"web at {url}")
        self.wait_for_workers(self.workers)

    def start_web(self, name: str, url: str) -> subprocess.Popen:
        bind = url.removeprefix("http://")
        options = {"access_log": str(self.tmp / f"access-{name}.log")}
        if self.access_log_format:
            options["access_log_format"] = self.access_log_format
        return self._start(name, gunicorn_command(bind, self.web_processes, **options))

    def start_worker(self, name: str) -> subprocess.Popen:
        return self._start(name, worker_command(self.queue, self.concurrency, f"{self.queue}-{name}"))

    def wait_for_workers(self, count: int) -> None:
        import redis
        from rq import Queue, Worker

        connection = redis.Redis.from_url(self.env["REDIS_URL"])
        queue = Queue(self.queue, connection=connection)
        wait_for(lambda: self.check_alive() or Worker.count(connection=connection, queue=queue) >= count, 60, "workers")

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        self.procs[name] = start_process(args, self.env, self.tmp / f"{name}.log")
        return self.procs[name]

    def _answers(self, url: str) -> bool:
        self.check_alive()
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def check_alive(self) -> bool:
        """Raise with its log if a process has exited; else False (so it can sit in a wait condition)."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited:\n{self.log(name)[-3000:]}")
        return False

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, 15)
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            stop_process(proc, 20)


def worker_env(app_config: dict, instance_path: Path, **extra) -> dict[str, str]:
    """The environment of a `python -m workers` process serving a test's app: its database, Redis and queue."""
    env = {
        **os.environ,
        "SWITCHBOARD_INSTANCE_PATH": str(instance_path),
        "DATABASE_URL": app_config["DATABASE_URL"],
        "REDIS_URL": app_config["REDIS_URL"],
        "RQ_QUEUE_NAME": app_config["RQ_QUEUE_NAME"],
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


@contextmanager
def running_worker(env: dict[str, str], **options) -> Iterator[subprocess.Popen]:
    """A `python -m workers` process (its output dropped) for the length of the ``with`` block."""
    worker = subprocess.Popen(
        worker_command(**options), cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield worker
    finally:
        worker.terminate()
        worker.wait(timeout=20)
