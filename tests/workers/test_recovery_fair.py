"""The recovery sweep and Stop know the fair lines (webapp.scheduling): nothing waiting is lost or run twice."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.support.chat import send
from tests.support.forms import post_form
from webapp import scheduling
from webapp.extensions import db
from webapp.models import Generation, utcnow
from webapp.queue import get_queue, get_redis
from workers import recovery


@pytest.fixture
def app_config(app_config):
    return {**app_config, "FAIR_SHARE_DEPTH": 1}  # one of a user's in RQ at a time: the rest wait in line


def age(app, generation_id):
    """As if the web's grace for queueing the job had passed."""
    with app.app_context():
        generation = db.session.get(Generation, generation_id)
        generation.enqueued_at = utcnow() - recovery.queued_grace() - timedelta(seconds=1)
        db.session.commit()


def generation_ids(app):
    with app.app_context():
        return list(db.session.scalars(select(Generation.id).order_by(Generation.id)))


def states(app):
    with app.app_context():
        return {g.id: (g.status, g.requeues) for g in db.session.scalars(select(Generation))}


def test_work_waiting_in_line_is_left_there_and_answered_once(client, auth, app, run_jobs):
    auth.signup()
    send(client, "first")
    send(client, "second")
    first, second = generation_ids(app)
    with app.app_context():
        assert scheduling.fair_queue(get_redis()).place(second).state == "waiting"
        assert get_queue().count == 1, "only the first is in RQ"
    age(app, first)
    age(app, second)
    with app.app_context():
        assert recovery.sweep(get_redis()) == {}, "waiting in line is not lost"
    run_jobs()
    assert states(app) == {first: ("succeeded", 0), second: ("succeeded", 0)}


def test_a_job_a_dead_worker_took_off_the_queue_is_queued_again(client, auth, app, run_jobs):
    auth.signup()
    send(client, "taken and dropped")
    [generation_id] = generation_ids(app)
    with app.app_context():
        get_redis().lpop(get_queue().key)  # a worker took it and was killed before starting it
        fair = scheduling.fair_queue(get_redis())
        assert recovery.sweep(get_redis()) == {}, "within the grace a live worker is starting it"
        age(app, generation_id)
        get_redis().hset(f"{fair.prefix}gen:{generation_id}", "since", 0)  # handed out long ago
        assert recovery.sweep(get_redis()) == {generation_id: "requeued"}
    run_jobs()
    assert states(app) == {generation_id: ("succeeded", 1)}


def test_after_redis_lost_everything_each_waiting_reply_is_queued_again_and_answered_once(client, auth, app, run_jobs):
    auth.signup()
    for text in ("one", "two", "three"):
        send(client, text)
    ids = generation_ids(app)
    for generation_id in ids:
        age(app, generation_id)
    with app.app_context():
        get_redis().flushdb()  # a Redis restart without persistence
        assert recovery.sweep(get_redis()) == {generation_id: "requeued" for generation_id in ids}
        assert recovery.sweep(get_redis()) == {}, "back in line: left alone"
    run_jobs()
    assert states(app) == {generation_id: ("succeeded", 1) for generation_id in ids}


def test_stop_takes_a_waiting_reply_out_of_its_users_line(client, auth, app, run_jobs):
    auth.signup()
    send(client, "first")
    send(client, "second")
    send(client, "third")
    first, second, third = generation_ids(app)
    with app.app_context():
        fair = scheduling.fair_queue(get_redis())
        assert fair.place(third).ahead == 2
    assert post_form(client, f"/chat/generations/{second}/stop").status_code == 302
    with app.app_context():
        assert fair.place(second).state == "none"
        assert fair.place(third).ahead == 1, "one fewer ahead of the third"
    run_jobs()
    assert states(app) == {first: ("succeeded", 0), second: ("cancelled", 0), third: ("succeeded", 0)}
