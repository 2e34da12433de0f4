"""Usage (tokens, requests, cost, SVG chart, CSV), the audit log and the queue summary."""

import csv
import io
from datetime import timedelta

from sqlalchemy import select

from tests.support.admin import make_user, post, save_provider
from webapp import prices, usage
from webapp.extensions import db
from webapp.models import AuditEvent, Generation, User, utcnow


def add_generation(app, username, model_id, provider, input_tokens, output_tokens, days_ago=0):
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        db.session.add(
            Generation(
                user_id=user.id,
                model_id=model_id,
                provider=provider,
                status="succeeded",
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                created_at=utcnow() - timedelta(days=days_ago),
            )
        )
        db.session.commit()


def test_usage_page_totals_costs_chart_and_csv(app, client, admin):
    make_user(app, "bob")
    add_generation(app, "bob", "gpt-4o", "openai", 1000, 500)
    add_generation(app, "bob", "gpt-4o", "openai", 1000, 500)
    add_generation(app, "root", "echo", "echo", 10, 10, days_ago=2)
    add_generation(app, "bob", "inhouse/private", "inhouse", 7, 3, days_ago=1)
    add_generation(app, "bob", "gpt-unpriced-test", "openai", 4, 4, days_ago=1)
    add_generation(app, "bob", "gpt-4o", "openai", 99999, 99999, days_ago=40)  # outside 30 days

    with app.app_context():
        rows = usage.usage_rows(30)
    by_model = {r.model_id: r for r in rows}
    assert by_model["gpt-4o"].requests == 2 and by_model["gpt-4o"].input_tokens == 2000
    unit = prices.unit_prices("gpt-4o", "openai")
    assert unit is not None and unit[0] > 0
    assert abs(by_model["gpt-4o"].cost - (2000 * unit[0] + 1000 * unit[1])) < 1e-12
    assert by_model["echo"].cost == 0
    assert by_model["inhouse/private"].cost == 0  # in-house costs nothing unless an admin sets a price
    assert by_model["gpt-unpriced-test"].cost is None

    page = client.get("/admin/usage").get_data(as_text=True)
    assert "<svg" in page and "<rect" in page and "gpt-4o" in page and "no price known" in page
    assert "99999" not in page
    only_root = client.get("/admin/usage?user=root").get_data(as_text=True)
    assert "gpt-4o" not in only_root.split("<table>")[-1]

    response = client.get("/admin/usage.csv?days=90")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert {r["model"] for r in table} == {"gpt-4o", "echo", "inhouse/private", "gpt-unpriced-test"}
    assert sum(int(r["requests"]) for r in table) == 6


def test_csv_neutralises_spreadsheet_formulas(app):
    row = usage.UsageRow("2026-01-01", "=cmd()", "+model", "p", 1, 1, 1, None)
    text = usage.to_csv([row])
    assert "'=cmd()" in text and "'+model" in text


def test_audit_log_records_changes_with_secrets_masked(app, client, admin):
    save_provider(client, "openai", api_key="sk-audit-secret-value-12345678", base_url="http://127.0.0.1:9/v1")
    bob_id = make_user(app, "bob")
    post(client, f"/admin/users/{bob_id}/role", {"role": "admin"}, page=f"/admin/users/{bob_id}")
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        actions = [e.action for e in events]
        assert "provider.update" in actions and "user.role" in actions
        provider_event = events[actions.index("provider.update")]
        assert provider_event.actor_name == "root"
        assert provider_event.after["api_key"] == "…5678"
        assert provider_event.after["base_url"] == "http://127.0.0.1:9/v1"
        role_event = events[actions.index("user.role")]
        assert role_event.before["role"] == "user" and role_event.after["role"] == "admin"
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "provider.update" in page and "user.role" in page
    assert "sk-audit-secret-value-12345678" not in page
    filtered = client.get("/admin/audit?q=user.role").get_data(as_text=True)
    assert "user.role" in filtered and "provider.update" not in filtered


def test_queue_summary_on_admin_home(app, client, admin, run_jobs):
    from webapp.queue import get_queue

    with app.app_context():
        get_queue().enqueue("builtins.int", "not a number")
        run_jobs()
        get_queue().enqueue("workers.admin.check_provider_connection", "echo")
    page = client.get("/admin/").get_data(as_text=True)
    assert '<dd id="queued">1</dd>' in page
    assert '<dd id="running">0</dd>' in page
    assert '<dd id="failed">1</dd>' in page
    assert "rq-dashboard" in page


def test_queue_summary_when_redis_is_down(app, client, admin):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    app.extensions.pop("switchboard_redis", None)
    page = client.get("/admin/").get_data(as_text=True)
    assert "The job queue (Redis) is unavailable right now." in page
