"""The concurrent worker, as a real process: many jobs at once, one stopped, one timing out, one raising."""

import os
import signal
import subprocess

import pytest
import redis
from rq import Queue
from rq.command import send_stop_job_command
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from tests.support.stack import worker_command, worker_env
from tests.support.waiting import wait_for
from webapp.paths import PROJECT_ROOT


@pytest.fixture
def worker_process(redis_url, instance_path, tmp_path):
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    env = {**os.environ, "SWITCHBOARD_INSTANCE_PATH": str(instance_path), "REDIS_URL": redis_url}
    # Output to a file: a pipe read only at the end fills up, and the worker's logging then blocks every thread.
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            worker_command("threaded-test", 30), cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    yield connection
    process.terminate()
    try:
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, log_path.read_text(errors="replace")


@pytest.mark.slow
def test_many_jobs_at_once_with_stop_timeout_and_failure(worker_process):
    connection = worker_process
    queue = Queue("threaded-test", connection=connection)
    waiting = [queue.enqueue("tests.workers.jobs.wait_for_go", n, job_timeout=60) for n in range(24)]
    failing = queue.enqueue("tests.workers.jobs.fail")
    timing_out = queue.enqueue("tests.workers.jobs.spin_forever", job_timeout=1)
    stopped = queue.enqueue("tests.workers.jobs.spin_forever", job_timeout=60)
    registry = StartedJobRegistry(queue=queue)

    # All of them run at the same time in one process.
    wait_for(
        lambda: (
            stopped.get_status(refresh=True) == JobStatus.STARTED
            and sum(job.get_status(refresh=True) == JobStatus.STARTED for job in waiting) == 24
        )
    )
    assert registry.count >= 25

    send_stop_job_command(connection, stopped.id)
    wait_for(lambda: stopped.get_status(refresh=True) == JobStatus.STOPPED)
    wait_for(lambda: failing.get_status(refresh=True) == JobStatus.FAILED)
    wait_for(lambda: timing_out.get_status(refresh=True) == JobStatus.FAILED)
    assert "ValueError: this job fails on purpose" in Job.fetch(failing.id, connection).latest_result().exc_string
    assert "timeout" in Job.fetch(timing_out.id, connection).latest_result().exc_string.lower()

    # The others were unaffected and still finish normally.
    assert all(job.get_status(refresh=True) == JobStatus.STARTED for job in waiting)
    connection.set("go", 1)
    wait_for(lambda: all(job.get_status(refresh=True) == JobStatus.FINISHED for job in waiting))
    assert sorted(Job.fetch(job.id, connection).return_value() for job in waiting) == list(range(24))
    wait_for(lambda: registry.count == 0)
    assert queue.failed_job_registry.count == 3  # failed, timed out, stopped


def test_the_rq_internals_it_relies_on_are_there(redis_url):
    """An RQ upgrade that drops one of these must fail here, not in production (see workers/threaded.py)."""
    from workers.threaded import RQ_INTERNALS, ThreadedWorker

    worker = ThreadedWorker(["internals-test"], connection=redis.Redis.from_url(redis_url), concurrency=2)
    missing = [name for name in RQ_INTERNALS if not hasattr(worker, name)]
    assert not missing, f"RQ no longer has {missing}: check workers/threaded.py against this RQ version"


def start(redis_url, instance_path, tmp_path, queue):
    env = {**os.environ, "SWITCHBOARD_INSTANCE_PATH": str(instance_path), "REDIS_URL": redis_url}
    log = open(tmp_path / f"{queue}.log", "wb")
    process = subprocess.Popen(
        worker_command(queue, 8),
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return process


@pytest.mark.slow
def test_warm_shutdown_lets_running_jobs_finish(redis_url, instance_path, tmp_path):
    connection = redis.Redis.from_url(redis_url)
    connection.delete("go")
    queue = Queue("warm-test", connection=connection)
    jobs = [queue.enqueue("tests.workers.jobs.wait_for_go", n, job_timeout=60) for n in range(4)]
    process = start(redis_url, instance_path, tmp_path, "warm-test")
    try:
        wait_for(lambda: all(job.get_status(refresh=True) == JobStatus.STARTED for job in jobs), 30, "jobs running")
        process.send_signal(signal.SIGTERM)  # one Ctrl-C / SIGTERM: warm shutdown
        wait_for(lambda: b"warm shut down" in (tmp_path / "warm-test.log").read_bytes(), 10, "the request noticed")
        assert process.poll() is None, "it waits for its running jobs"
        assert all(job.get_status(refresh=True) == JobStatus.STARTED for job in jobs)
        connection.set("go", 1)
        assert process.wait(timeout=30) == 0, (tmp_path / "warm-test.log").read_text()
        assert sorted(job.return_value(refresh=True) for job in jobs) == [0, 1, 2, 3]
    finally:
        connection.delete("go")
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.mark.slow
def test_cold_shutdown_stops_running_jobs_and_exits(redis_url, instance_path, tmp_path):
    connection = redis.Redis.from_url(redis_url)
    queue = Queue("cold-test", connection=connection)
    jobs = [queue.enqueue("tests.workers.jobs.spin_forever", job_timeout=600) for _ in range(3)]
    process = start(redis_url, instance_path, tmp_path, "cold-test")
    try:
        wait_for(lambda: all(job.get_status(refresh=True) == JobStatus.STARTED for job in jobs), 30, "jobs running")
        process.send_signal(signal.SIGTERM)
        wait_for(lambda: b"warm shut down" in (tmp_path / "cold-test.log").read_bytes(), 10, "the first signal")
        assert process.poll() is None, "a warm shutdown waits for the jobs, which never end by themselves"
        process.send_signal(signal.SIGTERM)  # the second: cold shutdown
        assert process.wait(timeout=30) == 0, (tmp_path / "cold-test.log").read_text()
        assert "cold shut down" in (tmp_path / "cold-test.log").read_text()
        wait_for(
            lambda: all(job.get_status(refresh=True) in (JobStatus.STOPPED, JobStatus.FAILED) for job in jobs),
            10,
            "the running jobs stopped, not left started",
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.mark.slow
def test_cold_shutdown_mid_reply_keeps_the_text_and_says_why(client, auth, app, app_config, instance_path, tmp_path):
    from sqlalchemy import select

    from tests.support.chat import send
    from webapp.extensions import db
    from webapp.models import Generation

    env = worker_env(
        app_config,
        instance_path,
        ECHO_DELAY="0.05",
    )
    log = open(tmp_path / "worker.log", "wb")
    process = subprocess.Popen(worker_command(), cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        auth.signup()
        send(client, "a long message " + " ".join(f"word{n}" for n in range(200)))

        def streaming():
            with app.app_context():
                generation = db.session.scalar(select(Generation))
                return (
                    generation.status == "running"
                    and len(client.get(f"/chat/generations/{generation.id}/status").get_json()["text"]) > 20
                )

        wait_for(streaming, 30, "the reply streaming")
        process.send_signal(signal.SIGTERM)
        wait_for(lambda: b"warm shut down" in (tmp_path / "worker.log").read_bytes(), 10, "the first signal")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        with app.app_context():
            generation = db.session.scalar(select(Generation))
            assert generation.status == "failed" and generation.error_code == "worker_stopped", generation.error
            assert len(generation.text) > 20 and "text so far is kept" in generation.error
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
