"""Generations whose worker died are finished or re-queued, never left running."""

import signal
import subprocess
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.support.chat import send
from tests.support.queue import run_queued_jobs
from tests.support.stack import worker_command, worker_env
from tests.support.waiting import wait_for
from webapp import live
from webapp.extensions import db
from webapp.models import Generation, UsageRecord, User, utcnow
from webapp.paths import PROJECT_ROOT
from webapp.queue import get_queue, get_redis
from workers import recovery


def make_orphan(app, started_ago=timedelta(minutes=2)):
    with app.app_context():
        generation = db.session.scalar(select(Generation))
        # What a SIGKILLed worker leaves behind: "running", its job gone from the queue.
        get_queue().empty()
        generation.status = "running"
        generation.started_at = utcnow() - started_ago
        db.session.commit()
        return generation.id


def test_orphan_with_no_text_is_requeued_and_then_answered(client, auth, app, run_jobs):
    auth.signup()
    send(client, "please answer me")
    generation_id = make_orphan(app)
    with app.app_context():
        assert recovery.sweep(get_redis()) == {generation_id: "requeued"}
        generation = db.session.get(Generation, generation_id)
        assert generation.status == "queued" and generation.job_id.endswith("-r1")
    run_jobs()
    with app.app_context():
        generation = db.session.get(Generation, generation_id)
        assert generation.status == "succeeded" and "please answer me" in generation.text


def test_orphan_with_partial_text_fails_and_keeps_it(client, auth, app):
    auth.signup()
    send(client, "half of this")
    generation_id = make_orphan(app)
    with app.app_context():
        live.LiveWriter(get_redis(), generation_id).append("Echo (offline model): half")
        assert recovery.sweep(get_redis()) == {generation_id: "failed"}
        generation = db.session.get(Generation, generation_id)
        assert generation.status == "failed" and generation.error_code == "worker_lost"
        assert generation.text == "Echo (offline model): half"
        assert "stopped unexpectedly" in generation.error
        # Charged in the ledger as the text so far, about four characters a token (its usage was never reported).
        ledger_row = db.session.scalar(select(UsageRecord).where(UsageRecord.generation_id == generation_id))
        assert (ledger_row.status, ledger_row.model_id, ledger_row.output_tokens) == ("failed", "echo", 6)
    status = client.get(f"/chat/generations/{generation_id}/status").get_json()
    assert status["done"] and status["status"] == "failed"


def test_a_just_started_generation_is_left_alone(client, auth, app):
    auth.signup()
    send(client, "starting")
    generation_id = make_orphan(app, started_ago=timedelta(seconds=1))
    with app.app_context():
        generation = db.session.get(Generation, generation_id)
        generation.job_id = None
        db.session.commit()
        assert recovery.sweep(get_redis()) == {}


@pytest.mark.slow
@pytest.mark.parametrize("fault", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "hung"])
def test_worker_lost_mid_stream_then_another_worker_finishes_the_record(
    fault, client, auth, app, app_config, instance_path
):
    env = worker_env(
        app_config,
        instance_path,
        ECHO_DELAY="0.2",
        WORKER_ALIVE_TTL="2",
        WORKER_SWEEP_INTERVAL="0.5",
    )

    def start_worker():
        return subprocess.Popen(
            worker_command(),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    auth.signup()
    send(client, " ".join(f"word{i}" for i in range(40)))
    with app.app_context():
        generation_id = db.session.scalar(select(Generation.id))
        connection = get_redis()
    first = start_worker()
    wait_for(lambda: len(live.read_all(connection, generation_id)) > 30)
    first.send_signal(fault)
    if fault == signal.SIGKILL:
        first.wait(timeout=10)
    partial = live.read_all(connection, generation_id)

    second = start_worker()
    try:

        def finished():
            with app.app_context():
                generation = db.session.get(Generation, generation_id)
                return generation if generation.status != "running" else None

        generation = wait_for(finished, timeout=30)
        assert generation.status == "failed" and generation.error_code == "worker_lost"
        assert generation.text.startswith(partial[:30]) and len(generation.text) >= len(partial)
    finally:
        second.terminate()
        second.wait(timeout=15)
        first.kill()  # a stopped (hung) process still needs ending
        first.wait(timeout=10)


# -- queued generations whose job will never run them -------------------------------------------
def age(app, generation_id):
    """As if the web's grace for queueing the job had passed."""
    with app.app_context():
        generation = db.session.get(Generation, generation_id)
        generation.enqueued_at = utcnow() - recovery.queued_grace() - timedelta(seconds=1)
        db.session.commit()


def assert_requeued_and_answered(app, generation_id, run_jobs):
    """Past its grace, the sweep queues the generation again, and the new job answers it."""
    age(app, generation_id)
    with app.app_context():
        assert recovery.sweep(get_redis()) == {generation_id: "requeued"}
    run_jobs()
    with app.app_context():
        assert db.session.get(Generation, generation_id).status == "succeeded"


def only_generation_id(app):
    with app.app_context():
        return db.session.scalar(select(Generation.id))


def test_queued_generation_whose_job_is_gone_is_requeued_and_answered(client, auth, app, run_jobs):
    auth.signup()
    send(client, "my job vanished")
    generation_id = only_generation_id(app)
    with app.app_context():
        get_queue().empty()  # Redis lost the job (or never got it)
        assert recovery.sweep(get_redis()) == {}, "within the grace the web may still be queueing it"
    age(app, generation_id)
    with app.app_context():
        assert recovery.sweep(get_redis()) == {generation_id: "requeued"}
        assert recovery.sweep(get_redis()) == {}, "its new job is waiting: left alone"
    run_jobs()
    with app.app_context():
        generation = db.session.get(Generation, generation_id)
        assert generation.status == "succeeded" and "my job vanished" in generation.text
        assert generation.requeues == 1 and generation.job_id == f"generation-{generation_id}-r1"


def test_job_that_failed_before_its_claim_leaves_the_generation_queued_and_is_requeued(
    client, auth, app, app_config, tmp_path, run_jobs
):
    from rq.registry import FailedJobRegistry

    from webapp import create_app

    auth.signup()
    send(client, "the database was away")
    generation_id = only_generation_id(app)
    # A worker whose database cannot be reached: the claim fails, the job fails.
    unreachable = create_app({**app_config, "DATABASE_URL": f"sqlite:///{tmp_path / 'gone' / 'nowhere.db'}"})
    run_queued_jobs(unreachable)
    with unreachable.app_context():
        queue = get_queue()
        assert FailedJobRegistry(queue=queue).get_job_ids() == [f"generation-{generation_id}"]
    with app.app_context():
        generation = db.session.get(Generation, generation_id)
        assert generation.status == "queued" and generation.started_at is None  # consistent: untouched
    assert_requeued_and_answered(app, generation_id, run_jobs)


def test_requeueing_is_bounded(client, auth, app):
    auth.signup()
    send(client, "never runs")
    generation_id = only_generation_id(app)
    with app.app_context():
        for count in range(1, recovery.MAX_REQUEUES + 1):
            get_queue().empty()
            age(app, generation_id)
            assert recovery.sweep(get_redis()) == {generation_id: "requeued"}
            assert db.session.get(Generation, generation_id).requeues == count
            db.session.rollback()
        get_queue().empty()
        age(app, generation_id)
        assert recovery.sweep(get_redis()) == {generation_id: "failed"}
        generation = db.session.get(Generation, generation_id)
        assert generation.status == "failed" and generation.error_code == "not_started"
        assert "Retry to ask again" in generation.error
    page = client.get(f"/chat/{generation.conversation_id}").get_data(as_text=True)
    assert "The reply could not be started." in page


def test_a_finished_job_whose_generation_is_still_queued_is_requeued(client, auth, app, run_jobs):
    auth.signup()
    send(client, "claimed by nobody")
    generation_id = only_generation_id(app)
    with app.app_context():
        # What a job leaves when it ended without claiming: e.g. it found the row still
        # being written by another process and returned. Here: it ran for a generation that was
        # cancelled, then the row was put back to queued by hand.
        generation = db.session.get(Generation, generation_id)
        generation.status = "cancelled"
        db.session.commit()
    run_jobs()
    with app.app_context():
        generation = db.session.get(Generation, generation_id)
        generation.status = "queued"
        db.session.commit()
    assert_requeued_and_answered(app, generation_id, run_jobs)


def test_a_final_record_the_worker_kept_in_redis_is_saved_by_the_sweep(client, auth, app):
    """The reply finished while the database was down past FINAL_WRITE_RETRY_SECONDS: the worker left its
    record in Redis, and the sweep saves it as it was (not "worker lost")."""
    auth.signup()
    send(client, "finished in the dark")
    generation_id = make_orphan(app)
    with app.app_context():
        generation = db.session.get(Generation, generation_id)
        ledger = {"user_id": generation.user_id, "provider": "echo", "source": "web", "model_id": "echo"}
        final = {"text": "Echo: all of it", "status": "succeeded", "error": None, "error_code": None}
        final.update(attempts=1, input_tokens=3, output_tokens=4, job_id=generation.job_id, ledger=ledger)
        recovery.keep_final(get_redis(), generation_id, final)
        assert recovery.sweep(get_redis()) == {generation_id: "succeeded"}
        generation = db.session.get(Generation, generation_id)
        assert (generation.status, generation.text, generation.error) == ("succeeded", "Echo: all of it", None)
        assert (generation.input_tokens, generation.output_tokens) == (3, 4)
        assert live.read_since(get_redis(), generation_id, 0).statuses == ["succeeded"]
        assert not get_redis().exists(recovery.final_key(generation_id))
        ledger_row = db.session.scalar(select(UsageRecord).where(UsageRecord.generation_id == generation_id))
        assert (ledger_row.status, ledger_row.input_tokens, ledger_row.output_tokens) == ("succeeded", 3, 4)


def test_the_sweep_settles_the_tokens_reserved_for_a_reply_it_fails(client, auth, app):
    auth.signup()
    with app.app_context():
        user = db.session.scalar(select(User))
        user.tokens_per_day = 1_000_000
        db.session.commit()
        user_id = user.id
    send(client, "count my tokens")
    generation_id = make_orphan(app)
    with app.app_context():
        connection = get_redis()
        [day_key] = connection.keys(f"switchboard:limits:{user_id}:tpd:*")
        assert int(connection.get(day_key)) > 1000  # the estimate, with room for a whole reply
        live.LiveWriter(connection, generation_id).append("x" * 40)
        assert recovery.sweep(connection) == {generation_id: "failed"}
        assert int(connection.get(day_key)) == 10  # the text so far, about four characters a token
        assert not connection.keys("switchboard:limits:reservation:*")


@pytest.mark.parametrize(
    ("exc_string", "code"),
    [
        ("Traceback...\nRuntimeError: boom", "internal_error"),
        ("Work-horse terminated unexpectedly; waitpid returned 9 (signal 9); ", "worker_lost"),
    ],
    ids=["job raised", "horse killed"],
)
def test_the_sweep_names_the_true_reason_when_a_live_workers_job_failed(client, auth, app, exc_string, code):
    from rq.job import Job, JobStatus
    from rq.results import Result

    from webapp.queue import worker_alive_key

    auth.signup()
    send(client, "raise in the middle")
    generation_id = make_orphan(app)
    with app.app_context():
        connection = get_redis()
        job_id = db.session.get(Generation, generation_id).job_id
        job = Job.create("workers.generation.run_generation", args=(generation_id,), id=job_id, connection=connection)
        job.worker_name = "still-here"
        job.set_status(JobStatus.FAILED, pipeline=None)
        job.save()
        Result.create_failure(job, ttl=600, exc_string=exc_string)
        connection.set(worker_alive_key("still-here"), 1, ex=60)
        live.LiveWriter(connection, generation_id).append("Echo: part")
        assert recovery.sweep(connection) == {generation_id: "failed"}
        generation = db.session.get(Generation, generation_id)
        assert (generation.error_code, generation.text) == (code, "Echo: part")
        assert ("internal error" if code == "internal_error" else "stopped unexpectedly") in generation.error
