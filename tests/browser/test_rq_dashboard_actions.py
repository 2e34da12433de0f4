"""rq-dashboard's queue actions in Chromium: the finding's attack (a top-level GET navigation, which carries
SameSite=Lax cookies) is refused and changes nothing; a POST made by the dashboard's own page works."""

from playwright.sync_api import expect

from tests.support.browser import LONG, sign_in
from webapp.queue import get_queue
from workers.base import SimpleWorker

QUEUE = "switchboard-test"


def failed_job_ids(app):
    with app.app_context():
        return get_queue().failed_job_registry.get_job_ids()


def test_a_get_navigation_is_refused_and_the_dashboards_own_post_works(page, app, web_server, make_user):
    make_user("root", role="admin")
    with app.app_context():
        queue = get_queue()
        queue.enqueue("tests.workers.jobs.fail", job_id="browser-failed")
        SimpleWorker([queue], connection=queue.connection).work(burst=True, logging_level="WARNING")
    assert failed_job_ids(app) == ["browser-failed"]
    sign_in(page, web_server, "root")

    response = page.goto(f"{web_server}/admin/rq/requeue/{QUEUE}", referer="http://evil.example/")
    assert response.status == 403 and response.json()["error"]["code"] == 403
    assert failed_job_ids(app) == ["browser-failed"]  # still failed: nothing was requeued

    page.goto(web_server + "/admin/rq/")
    expect(page.get_by_text("RQ-dashboard").first).to_be_visible(timeout=LONG)
    # What the dashboard's script does ($.post): a same-origin POST, which Chromium sends with Origin.
    result = page.evaluate(
        """async (url) => {
        const response = await fetch(url, {method: "POST"});
        return {status: response.status, body: await response.json()};
    }""",
        f"/admin/rq/requeue/{QUEUE}",
    )
    assert result == {"status": 200, "body": {"status": "OK", "count": 1}}
    assert failed_job_ids(app) == []
