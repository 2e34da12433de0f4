"""The concurrent worker, as a real process: many jobs at once, one stopped, one timing out, one raising."""
import os
import subprocess
import sys

import pytest
import redis
from rq import Queue
from rq.command import send_stop_job_command
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from tests.waiting import wait_for
from webapp.paths import PROJECT_ROOT


@pytest.fixture
def worker_process(redis_url, instance_path):
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    env = {**os.environ, "SWITCHBOARD_INSTANCE_PATH": str(instance_path), "REDIS_URL": redis_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "workers", "--concurrency", "30", "--queue", "threaded-test"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    yield connection
    process.terminate()
    output = process.communicate(timeout=20)[0].decode(errors="replace")
    assert process.returncode == 0, output


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
    wait_for(lambda: stopped.get_status(refresh=True) == JobStatus.STARTED
             and sum(job.get_status(refresh=True) == JobStatus.STARTED for job in waiting) == 24)
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
