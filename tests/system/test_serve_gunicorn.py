"""gunicorn as ``make run`` starts it (supervisor.gunicorn_command): no control socket at a fixed path,
so two instances on one host, each with its own instance folder, start side by side and both serve."""

import os
import signal
import subprocess

import httpx

from supervisor import gunicorn_command
from tests.support.ports import free_port
from tests.support.waiting import wait_for
from webapp.config import ENV_KEYS
from webapp.paths import INSTANCE_ENV_VAR, PROJECT_ROOT


def serves(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_instances_start_side_by_side_and_both_serve(tmp_path, redis_url):
    home, runtime = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    runtime.mkdir()
    base_env = {key: value for key, value in os.environ.items() if key not in ENV_KEYS}
    # gunicorn 25+ would put its control socket here, the same path for every instance of this user.
    base_env.update(HOME=str(home), XDG_RUNTIME_DIR=str(runtime), REDIS_URL=redis_url)
    processes, urls = [], []
    try:
        for name in ("one", "two"):
            instance = tmp_path / name
            env = {**base_env, INSTANCE_ENV_VAR: str(instance), "DATABASE_URL": f"sqlite:///{instance}/sb.db"}
            port = free_port()
            log = open(tmp_path / f"{name}.log", "wb")
            processes.append(
                subprocess.Popen(
                    gunicorn_command(f"127.0.0.1:{port}", 1, access_log=str(tmp_path / f"{name}-access.log")),
                    cwd=PROJECT_ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()
            urls.append(f"http://127.0.0.1:{port}/healthz")
        for url, process in zip(urls, processes, strict=True):
            wait_for(lambda: serves(url) or process.poll() is not None, 60, f"gunicorn at {url}")
            assert process.poll() is None, (tmp_path / "one.log").read_text() + (tmp_path / "two.log").read_text()
        assert all(serves(url) for url in urls)
        assert not list(runtime.rglob("*.ctl")) and not (home / ".gunicorn").exists()
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
