"""Effective rules for a user in zero, one and two groups, with and without their own override:
model access (webapp.access, the one rule) and each limit (webapp.limits)."""

import pytest
from sqlalchemy import select

from tests.support.queries import counting_statements
from webapp import access, groups, limits, site_settings
from webapp.accounts import create_user
from webapp.extensions import db
from webapp.models import AuditEvent, GroupMember, User

GROUP_MODELS = {"small": ["gpt-4o-mini"], "large": ["gpt-4o", "gpt-4o-mini"]}


@pytest.fixture
def app_config(app_config):
    return {**app_config, "OPENAI_API_KEY": "sk-test-groups", "DEFAULT_REQUESTS_PER_MINUTE": 60}


@pytest.fixture
def team(app):
    """Users in 0, 1 and 2 groups; the user role may use only echo; the groups add OpenAI models."""
    with app.app_context():
        site_settings.set_site(site_settings.ROLE_MODELS, {"user": ["echo"], "admin": None})
        small = groups.create_group(None, "Small")
        large = groups.create_group(None, "Large")
        groups.set_rules(
            None,
            small,
            GROUP_MODELS["small"],
            {"member_requests_per_minute": 5, "member_tokens_per_day": 1000, "member_monthly_budget": 1.0},
        )
        groups.set_rules(
            None,
            large,
            GROUP_MODELS["large"],
            {"member_requests_per_minute": 20, "member_tokens_per_day": 0, "pooled_monthly_budget": 50.0},
        )
        ids = {}
        for name, member_of in (("none", []), ("one", [small]), ("two", [small, large])):
            user = create_user(name, "correct horse")
            db.session.flush()
            for group in member_of:
                groups.add_member(None, group, user)
            ids[name] = user.id
        db.session.commit()
        return {"users": ids, "small": small.id, "large": large.id}


def user(name):
    return db.session.scalar(select(User).where(User.username == name))


def usable(name, model_id):
    try:
        access.check_model_usable(user(name), model_id)
    except access.ModelNotAllowed:
        return False
    return True


def test_a_model_is_usable_when_the_role_or_any_group_allows_it(app, team):
    with app.app_context():
        assert [usable("none", m) for m in ("echo", "gpt-4o-mini", "gpt-4o")] == [True, False, False]
        assert [usable("one", m) for m in ("echo", "gpt-4o-mini", "gpt-4o")] == [True, True, False]
        assert [usable("two", m) for m in ("echo", "gpt-4o-mini", "gpt-4o")] == [True, True, True]
        # Pickers and the API's model list come from the same rule.
        assert {m.model_id for m in access.allowed_models(user("two"))} >= {"echo", "gpt-4o", "gpt-4o-mini"}
        assert "gpt-4o" not in {m.model_id for m in access.allowed_models(user("one"))}
        # A model an admin disabled stays refused whatever the groups say.
        site_settings.set_site(site_settings.DISABLED_MODELS, ["gpt-4o"])
        db.session.commit()
        assert not usable("two", "gpt-4o")


def test_each_limit_is_the_override_else_the_most_generous_group_else_the_default(app, team):
    with app.app_context():
        none, one, two = (limits.effective_limits(user(n)) for n in ("none", "one", "two"))
        # Zero groups: the site defaults (60 requests a minute from the configuration, the rest unlimited).
        assert (none.requests_per_minute, none.tokens_per_day, none.monthly_budget, none.pool) == (60, 0, 0.0, None)
        # One group: its per-member limits.
        assert (one.requests_per_minute, one.tokens_per_day, one.monthly_budget) == (5, 1000, 1.0)
        # Two groups: the most generous of each (0 is unlimited and wins); a limit only one sets is that one's.
        assert (two.requests_per_minute, two.tokens_per_day, two.monthly_budget) == (20, 0, 1.0)

        for name in ("none", "one", "two"):  # the user's own override beats every group
            person = user(name)
            person.requests_per_minute, person.tokens_per_day, person.monthly_budget = 3, 300, 0.25
        db.session.commit()
        for name in ("none", "one", "two"):
            mine = limits.effective_limits(user(name))
            assert (mine.requests_per_minute, mine.tokens_per_day, mine.monthly_budget) == (3, 300, 0.25)
        user("two").monthly_budget = 0  # an override of 0 is unlimited, not "unset"
        db.session.commit()
        assert limits.effective_limits(user("two")).monthly_budget == 0


def test_pooled_limits_are_the_primary_groups_first_joined_unless_an_admin_chose(app, team):
    with app.app_context():
        assert limits.effective_limits(user("one")).pool.name == "Small"
        assert limits.effective_limits(user("two")).pool.name == "Small"  # the first joined
        two = user("two")
        large = db.session.get(groups.Group, team["large"])
        groups.set_primary(None, two, large)
        db.session.commit()
        pool = limits.effective_limits(user("two")).pool
        assert (pool.name, pool.monthly_budget) == ("Large", 50.0)
        # Leaving the primary group falls back to the next one; deleting a group keeps its members.
        groups.remove_member(None, large, user("two"))
        db.session.commit()
        assert limits.effective_limits(user("two")).pool.name == "Small"
        groups.delete_group(None, db.session.get(groups.Group, team["small"]))
        db.session.commit()
        assert limits.effective_limits(user("two")).pool is None
        assert user("two") is not None and db.session.scalars(select(GroupMember)).all() == []
        assert not usable("one", "gpt-4o-mini")
        actions = db.session.scalars(select(AuditEvent.action)).all()
        assert {"group.create", "group.rules", "group.member_add", "user.primary_group", "group.delete"} <= set(actions)


def test_names_are_unique_and_a_primary_group_must_be_one_of_the_users(app, team):
    with app.app_context():
        with pytest.raises(groups.GroupError, match="already a group named Small"):
            groups.create_group(None, " small ")
        with pytest.raises(groups.GroupError, match="needs a name"):
            groups.create_group(None, "   ")
        with pytest.raises(groups.GroupError, match="not in Large"):
            groups.set_primary(None, user("one"), db.session.get(groups.Group, team["large"]))
        with pytest.raises(groups.GroupError, match="already in Small"):
            groups.add_member(None, db.session.get(groups.Group, team["small"]), user("one"))


def test_a_request_reads_a_users_groups_once_and_sees_its_own_changes(app):
    with app.app_context():
        ada = create_user("ada", "a long password")
        first = groups.create_group(None, "First")
        db.session.commit()
        groups.add_member(None, first, ada)
        db.session.commit()
        ada_id = ada.id
    with app.test_request_context(), counting_statements(app) as statements:
        ada = db.session.get(User, ada_id)
        read = len(statements)
        assert [g.name for g in groups.user_groups(ada)] == ["First"]
        assert [g.name for g in groups.user_groups(ada)] == ["First"]  # the model check, then the limits
        assert len(statements) == read + 1
        second = groups.create_group(None, "Second")
        groups.add_member(None, second, ada)
        groups.set_primary(None, ada, second)
        assert [g.name for g in groups.user_groups(ada)] == ["Second", "First"]
        groups.set_rules(None, second, ["echo"], {})
        assert groups.user_groups(ada)[0].models == frozenset({"echo"})
        groups.remove_member(None, second, ada)
        assert [g.name for g in groups.user_groups(ada)] == ["First"]
    with app.test_request_context():  # a new request reads again
        db.session.execute(db.delete(GroupMember))
        assert groups.user_groups(db.session.get(User, ada_id)) == []
