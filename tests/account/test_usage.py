"""Everyone sees their own usage: the Usage page (linked from the top bar, no script needed) and
GET /api/usage/ (token or API key); the admin Usage page filters by group and gives a CSV by group."""

import csv
import io

from sqlalchemy import select

from tests.support.chat import send
from webapp import groups, site_settings
from webapp.accounts import create_user
from webapp.accounts.api_keys import create_key
from webapp.extensions import db
from webapp.models import User


def setup_team(app):
    """alice (budget $0.50) in Team (pooled $2); echo priced at $30 per million output tokens."""
    with app.app_context():
        site_settings.set_site(site_settings.MODEL_PRICES, {"echo": [0, 30]})
        alice = db.session.scalar(select(User).where(User.username == "alice"))
        alice.monthly_budget, alice.tokens_per_day = 0.5, 5000
        team = groups.create_group(None, "Team")
        groups.set_rules(None, team, [], {"pooled_monthly_budget": 2})
        groups.add_member(None, team, alice)
        _key, raw = create_key(alice, "usage")
        db.session.commit()
        return raw


def test_the_usage_page_and_the_api_show_the_same_figures(app, client, auth, run_jobs):
    auth.signup("alice")
    api_key = setup_team(app)
    send(client, "one two three four five")
    run_jobs()
    page = client.get("/chat/").get_data(as_text=True)
    assert 'href="/settings/usage"' in page  # linked from the top bar

    response = client.get("/settings/usage")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "<script" not in text.split("<main", 1)[1]  # all drawn by the server
    assert "<svg" in text and "<rect" in text
    topbar = text.split('<nav aria-label="Account">', 1)[1].split("</nav>", 1)[0]
    assert topbar.count('aria-current="page"') == 1 and 'aria-current="page">Usage</a>' in topbar
    assert "of $0.50" in text and "Pooled in Team" in text and "of $2.00" in text
    assert "<code>echo</code>" in text

    anonymous = app.test_client()
    assert anonymous.get("/api/usage/").status_code == 401
    reply = anonymous.get("/api/usage/", headers={"Authorization": f"Bearer {api_key}"})
    assert reply.status_code == 200
    report = reply.get_json()
    assert report["user"] == "alice" and report["groups"] == ["Team"]
    month = report["month"]
    assert month["requests"] == 1 and month["output_tokens"] == 5
    assert abs(month["cost"] - 5 * 30e-6) < 1e-9 and month["budget"] == 0.5
    assert month["resets_at"].endswith("-01T00:00:00Z")
    assert report["pool"] == {
        "group": "Team",
        "cost": round(5 * 30e-6, 6),
        "budget": 2.0,
        "tokens_per_day": None,
        "requests_per_minute": None,
    }
    assert report["today"]["limit"] == 5000 and report["today"]["tokens"] == month["input_tokens"] + 5
    assert [m["model"] for m in report["by_model"]] == ["echo"]
    assert len(report["by_day"]) == 30 and report["by_day"][-1]["tokens"] == report["today"]["tokens"]


def test_admin_usage_filters_by_group_and_gives_a_csv_by_group(app, client, auth, run_jobs):
    auth.signup("alice")
    setup_team(app)
    send(client, "from the team")
    auth.logout()
    auth.signup("solo")
    send(client, "on my own")
    run_jobs()
    auth.logout()
    with app.app_context():
        create_user("root", "correct horse", role="admin")
        db.session.commit()
        team_id = db.session.scalar(select(groups.Group.id))
    auth.login("root")
    everyone = client.get("/admin/usage").get_data(as_text=True)
    assert "alice" in everyone and "solo" in everyone and "(no group)" in everyone
    team_only = client.get(f"/admin/usage?group={team_id}").get_data(as_text=True)
    assert "alice" in team_only and "solo" not in team_only.split('id="by-group"')[1]
    response = client.get("/admin/usage-by-group.csv")
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    table = {r["group"]: r for r in csv.DictReader(io.StringIO(response.get_data(as_text=True)))}
    assert set(table) == {"Team", "(no group)"}
    assert table["Team"]["requests"] == "1" and float(table["Team"]["estimated_cost_usd"]) > 0
    rows = list(csv.DictReader(io.StringIO(client.get(f"/admin/usage.csv?group={team_id}").get_data(as_text=True))))
    assert [(r["user"], r["group"]) for r in rows] == [("alice", "Team")]
