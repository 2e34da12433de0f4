"""The group admin pages: create, rename, delete, members, primary group, model allow-list and
limits; per-user and default budgets; model prices. Bad input is a 400 page that keeps what was typed."""

from sqlalchemy import select

from tests.support.admin import make_user, post
from webapp import limits, prices
from webapp.extensions import db
from webapp.models import AuditEvent, Group, GroupMember, User


def group_id(app, name):
    with app.app_context():
        return db.session.scalar(select(Group.id).where(Group.name == name))


def test_groups_are_created_renamed_filled_and_deleted(app, client, admin):
    bob = make_user(app, "bob")
    response = post(client, "/admin/groups", {"name": "Research"}, page="/admin/groups")
    assert response.status_code == 302
    research = group_id(app, "Research")
    page = f"/admin/groups/{research}"
    assert response.headers["Location"].endswith(page)
    assert post(client, f"{page}/rename", {"name": "Lab"}, page=page).status_code == 302
    assert post(client, f"{page}/members", {"username": "BOB"}, page=page).status_code == 302
    rules = {
        "models": ["gpt-4o-mini"],
        "member_requests_per_minute": "7",
        "member_monthly_budget": "2.50",
        "pooled_monthly_budget": "100",
    }
    assert post(client, f"{page}/rules", rules, page=page).status_code == 302
    shown = client.get(page).get_data(as_text=True)
    assert "Lab" in shown and "bob" in shown and 'value="gpt-4o-mini" checked' in shown
    with app.app_context():
        group = db.session.get(Group, research)
        assert group.models == ["gpt-4o-mini"] and group.member_requests_per_minute == 7
        assert group.member_monthly_budget == 2.5 and group.member_tokens_per_day is None
        effective = limits.effective_limits(db.session.get(User, bob))
        assert (effective.requests_per_minute, effective.monthly_budget, effective.pool.monthly_budget) == (7, 2.5, 100)
    listing = client.get("/admin/groups").get_data(as_text=True)
    assert "Lab" in listing and "$100/month" in listing
    user_page = client.get(f"/admin/users/{bob}").get_data(as_text=True)
    assert "Lab" in user_page and "primary" in user_page and "$2.5 a month" in user_page

    post(client, f"/admin/users/{bob}/primary-group", {"group": str(research)}, page=f"/admin/users/{bob}")
    with app.app_context():
        assert db.session.get(User, bob).primary_group_id == research
    assert post(client, f"{page}/members/{bob}/remove", {}, page=page).status_code == 302
    with app.app_context():
        assert db.session.scalars(select(GroupMember)).all() == []
        assert db.session.get(User, bob).primary_group_id is None
    assert post(client, f"{page}/delete", {}, page=page).status_code == 302
    assert client.get(page).status_code == 404
    with app.app_context():
        actions = set(db.session.scalars(select(AuditEvent.action)))
    assert {"group.create", "group.rename", "group.member_add", "group.rules", "group.member_remove"} <= actions
    assert {"user.primary_group", "group.delete"} <= actions


def test_bad_input_is_a_400_that_says_why_and_keeps_the_input(app, client, admin):
    post(client, "/admin/groups", {"name": "Ops"}, page="/admin/groups")
    ops = group_id(app, "Ops")
    page = f"/admin/groups/{ops}"
    taken = post(client, "/admin/groups", {"name": "ops"}, page="/admin/groups")
    assert taken.status_code == 400 and "already a group named Ops" in taken.get_data(as_text=True)
    nobody = post(client, f"{page}/members", {"username": "ghost"}, page=page)
    assert nobody.status_code == 400 and "no user named ghost" in nobody.get_data(as_text=True)
    negative = post(client, f"{page}/rules", {"member_monthly_budget": "-1", "member_tokens_per_day": "500"}, page=page)
    text = negative.get_data(as_text=True)
    assert negative.status_code == 400 and "from 0 to 10,000,000" in text and 'value="500"' in text
    words = post(client, f"{page}/rules", {"pooled_monthly_budget": "lots"}, page=page)
    assert words.status_code == 400
    unknown_model = post(client, f"{page}/rules", {"models": ["no-such-model"]}, page=page)
    assert unknown_model.status_code == 400
    assert client.get("/admin/groups/999999").status_code == 404


def test_user_and_default_budgets_and_model_prices(app, client, admin):
    bob = make_user(app, "bob")
    post(
        client,
        f"/admin/users/{bob}/limits",
        {"requests_per_minute": "", "tokens_per_day": "", "monthly_budget": "0.75"},
        page=f"/admin/users/{bob}",
    )
    post(client, "/admin/users/default-limits", {"defaults-monthly_budget": "3"}, page="/admin/users")
    with app.app_context():
        assert db.session.get(User, bob).monthly_budget == 0.75
        root = db.session.scalar(select(User).where(User.username == "root"))
        assert limits.effective_limits(root).monthly_budget == 3.0

    response = post(
        client,
        "/admin/models/prices",
        {"model": "echo", "input_price": "1.5", "output_price": "6"},
        page="/admin/models",
    )
    assert response.status_code == 302
    with app.app_context():
        assert prices.unit_prices("echo", "echo") == (1.5e-6, 6e-6)
    assert "set here" in client.get("/admin/models").get_data(as_text=True)
    bad = post(client, "/admin/models/prices", {"model": "echo", "input_price": "-2"}, page="/admin/models")
    assert bad.status_code == 400
    post(client, "/admin/models/prices", {"model": "echo", "input_price": "", "output_price": ""}, page="/admin/models")
    with app.app_context():
        assert prices.unit_prices("echo", "echo") == (0.0, 0.0)  # free again
