"""The admin's Queue page: provider caps (in Redis at once) and user weights."""

from tests.support.admin import make_user, post
from webapp import scheduling
from webapp.queue import get_redis


def test_caps_are_saved_checked_and_reach_the_dispatcher(client, app, admin):
    page = client.get("/admin/queue")
    assert page.status_code == 200 and 'name="cap-openai"' in page.get_data(as_text=True)
    bad = post(client, "/admin/queue/caps", {"cap-openai": "two"}, page="/admin/queue")
    assert bad.status_code == 400 and "A whole number" in bad.get_data(as_text=True)
    saved = post(client, "/admin/queue/caps", {"cap-openai": "2", "cap-echo": ""}, page="/admin/queue")
    assert saved.status_code == 302
    with app.app_context():
        assert scheduling.provider_caps() == {"openai": 2}
        assert scheduling.fair_queue(get_redis()).caps() == {"openai": 2}
        get_redis().flushdb()  # Redis restarted: the sweep gives the caps back
        scheduling.sync_provider_caps(get_redis())
        assert scheduling.fair_queue(get_redis()).caps() == {"openai": 2}
    assert 'value="2"' in client.get("/admin/queue").get_data(as_text=True)


def test_a_weight_is_set_by_username(client, app, admin):
    bob = make_user(app, "bob")
    assert (
        post(client, "/admin/queue/weights", {"username": "nobody", "weight": "2"}, page="/admin/queue").status_code
        == 400
    )
    assert (
        post(client, "/admin/queue/weights", {"username": "bob", "weight": "500"}, page="/admin/queue").status_code
        == 400
    )
    assert (
        post(client, "/admin/queue/weights", {"username": "bob", "weight": "2.5"}, page="/admin/queue").status_code
        == 302
    )
    with app.app_context():
        assert scheduling.user_weight(bob) == 2.5
    assert "bob" in client.get("/admin/queue").get_data(as_text=True)


def test_only_admins_see_the_queue_page(client, app, auth):
    make_user(app, "carol")
    auth.login("carol")
    assert client.get("/admin/queue").status_code == 403


def test_a_group_weight_applies_to_members_without_their_own(client, app, admin):
    from webapp.extensions import db
    from webapp.models import Group, GroupMember

    dana, erin = make_user(app, "dana"), make_user(app, "erin")
    with app.app_context():
        group = Group(name="research")
        db.session.add(group)
        db.session.flush()
        db.session.add_all([GroupMember(group_id=group.id, user_id=dana), GroupMember(group_id=group.id, user_id=erin)])
        db.session.commit()
    page = "/admin/queue"
    assert post(client, "/admin/queue/group-weights", {"group": "nope", "weight": "3"}, page=page).status_code == 400
    assert (
        post(client, "/admin/queue/group-weights", {"group": "research", "weight": "3"}, page=page).status_code == 302
    )
    assert post(client, "/admin/queue/weights", {"username": "erin", "weight": "0.5"}, page=page).status_code == 302
    with app.app_context():
        assert scheduling.user_weight(dana) == 3, "the group's weight"
        assert scheduling.user_weight(erin) == 0.5, "her own weight wins"
    assert "research" in client.get(page).get_data(as_text=True)
