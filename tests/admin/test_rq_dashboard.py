"""rq-dashboard at /admin/rq/: every action that changes the queue needs a same-origin POST.

The state-changing routes of rq-dashboard 0.9 (rq_dashboard/web.py) are listed here; each is tried by GET,
by a cross-origin POST (Origin, or only Referer, of another site) and by a POST carrying neither header.
All are refused with a JSON 403 and the Redis state is unchanged; a same-origin POST still works."""

import pytest
from rq.job import Job

from webapp.admin import RQ_DASHBOARD_READ_ONLY
from webapp.queue import get_queue
from workers.base import SimpleWorker

QUEUE = "switchboard-test"
FAILED, WAITING = "failed-probe", "waiting-probe"
ORIGIN = "http://localhost"  # the test client's own origin

# endpoint -> (URL, what "changed" means: a check of the Redis state that is True before the action)
STATE_CHANGING = {
    "requeue_all": f"/admin/rq/requeue/{QUEUE}",
    "requeue_job_view": f"/admin/rq/job/{FAILED}/requeue",
    "delete_job_view": f"/admin/rq/job/{FAILED}/delete",
    "empty_queue": f"/admin/rq/queue/{QUEUE}/failed/empty",
    "compact_queue": f"/admin/rq/queue/{QUEUE}/compact",
}
ATTACKS = {
    "GET": dict(method="GET"),
    "GET with our own Referer": dict(method="GET", headers={"Referer": ORIGIN + "/admin/rq/"}),
    "cross-origin POST": dict(method="POST", headers={"Origin": "http://evil.example"}),
    "cross-origin POST, Referer only": dict(method="POST", headers={"Referer": "http://evil.example/page"}),
    "POST from a look-alike host": dict(method="POST", headers={"Origin": "http://localhost.evil.example"}),
    "POST with Origin null": dict(method="POST", headers={"Origin": "null"}),
    "POST with neither Origin nor Referer": dict(method="POST"),
}


@pytest.fixture
def jobs(app):
    """One failed job and one waiting job in the (flushed) test queue, with a dead, compactable id in it too."""
    with app.app_context():
        queue = get_queue()
        queue.enqueue("tests.workers.jobs.fail", job_id=FAILED)
        SimpleWorker([queue], connection=queue.connection).work(burst=True, logging_level="WARNING")
        queue.enqueue("tests.workers.jobs.fail", job_id=WAITING)
        queue.connection.rpush(queue.key, "no-such-job")  # what compact removes
    return app


def redis_state(app):
    with app.app_context():
        queue = get_queue()
        return {
            "failed": sorted(queue.failed_job_registry.get_job_ids()),
            "queued": queue.connection.lrange(queue.key, 0, -1),
            "failed job exists": Job.exists(FAILED, connection=queue.connection),
        }


def test_every_dashboard_route_is_listed_as_read_only_or_state_changing(app):
    endpoints = {
        rule.endpoint.split(".", 1)[1] for rule in app.url_map.iter_rules() if rule.endpoint.startswith("rq_dashboard.")
    }
    assert endpoints == set(RQ_DASHBOARD_READ_ONLY - {"static"}) | set(STATE_CHANGING) | {"static"}


@pytest.mark.parametrize("endpoint", sorted(STATE_CHANGING))
def test_state_changing_actions_refuse_anything_but_a_same_origin_post(client, admin, jobs, endpoint):
    before = redis_state(jobs)
    assert before["failed"] == [FAILED] and len(before["queued"]) == 2 and before["failed job exists"]
    for attack, request in ATTACKS.items():
        response = client.open(STATE_CHANGING[endpoint], method=request["method"], headers=request.get("headers", {}))
        assert response.status_code == 403, attack
        assert response.is_json and response.get_json()["error"]["code"] == 403, attack
        assert redis_state(jobs) == before, attack  # nothing changed: the failed job still failed, the queue as it was


@pytest.mark.parametrize("endpoint", sorted(STATE_CHANGING))
@pytest.mark.parametrize("headers", [{"Origin": ORIGIN}, {"Referer": ORIGIN + "/admin/rq/"}], ids=["Origin", "Referer"])
def test_a_same_origin_post_still_works(client, admin, jobs, endpoint, headers):
    before = redis_state(jobs)
    response = client.post(STATE_CHANGING[endpoint], headers=headers)
    assert response.status_code == 200 and response.get_json()["status"] == "OK"
    assert redis_state(jobs) != before


def test_the_read_only_views_still_answer_get(client, admin, jobs):
    for path in (
        "/admin/rq/",
        "/admin/rq/0/data/queues.json",
        f"/admin/rq/0/data/job/{FAILED}.json",
        "/admin/rq/0/data/workers.json",
        f"/admin/rq/0/view/job/{FAILED}",
    ):
        assert client.get(path).status_code == 200, path


def test_the_exact_attack_of_the_finding_is_refused(client, admin, jobs):
    # GET /admin/rq/requeue/<queue> with a foreign Referer answered 200 {"count": N} and requeued.
    response = client.get(f"/admin/rq/requeue/{QUEUE}", headers={"Referer": "http://evil.example/"})
    assert response.status_code == 403
    assert redis_state(jobs)["failed"] == [FAILED]
