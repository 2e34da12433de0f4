"""Chat fixtures: a fake OpenAI server the app and a real `python -m workers` process both use."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.fakes import FakeOpenAIServer
from tests.support.stack import worker_command
from webapp.paths import PROJECT_ROOT

FAKE_KEY = "sk-test-chat-0000"


@pytest.fixture
def fake_openai():
    # 40 pieces a second: a long reply takes seconds, so there is time to stop it half-way.
    with FakeOpenAIServer(require_key=FAKE_KEY, tokens_per_second=40) as server:
        yield server


@pytest.fixture
def app_config(app_config, fake_openai):
    return {**app_config, "OPENAI_BASE_URL": fake_openai.base_url, "OPENAI_API_KEY": FAKE_KEY}


@pytest.fixture
def start_worker(app_config, instance_path, tmp_path):
    """Start real worker processes (``concurrency=1``: RQ's forking worker; more: the threaded one)."""
    processes = []

    def start(concurrency: int = 1):
        env = {
            **os.environ,
            "SWITCHBOARD_INSTANCE_PATH": str(instance_path),
            "DATABASE_URL": app_config["DATABASE_URL"],
            "REDIS_URL": app_config["REDIS_URL"],
            "RQ_QUEUE_NAME": app_config["RQ_QUEUE_NAME"],
            "OPENAI_BASE_URL": app_config["OPENAI_BASE_URL"],
            "OPENAI_API_KEY": FAKE_KEY,
            "ECHO_DELAY": "0.05",
            "WORKER_CONCURRENCY": str(concurrency),
        }
        # Output to a file, not a pipe: a forking worker's job process (its own process group)
        # can outlive the worker and would hold a pipe open, hanging the teardown.
        log = open(tmp_path / f"worker-{len(processes)}.log", "wb")
        process = subprocess.Popen(
            worker_command(concurrency=concurrency),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append((process, log))
        return process

    yield start
    for process, _log in processes:
        process.terminate()
    for process, log in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        log.close()
