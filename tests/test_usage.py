"""The ledger row of a reply (``usage.record``): who, which group, written once, in one statement."""

from sqlalchemy import select

from tests.support.queries import counting_statements
from webapp import groups, usage
from webapp.accounts import create_user
from webapp.extensions import db
from webapp.models import UsageRecord, User


def settle(generation_id, user_id, part=0, output_tokens=3):
    usage.record(generation_id, user_id, "echo", "echo", "api", "succeeded", 2, output_tokens, part=part)
    db.session.commit()


def row(generation_id, part=0):
    record = db.session.scalar(
        select(UsageRecord).where(UsageRecord.generation_id == generation_id, UsageRecord.part == part)
    )
    return record.username, record.group_id, record.group_name, record.output_tokens


def test_the_row_names_the_user_and_their_primary_group(app):
    with app.app_context():
        ada, bo = create_user("ada", "a long password"), create_user("bo", "a long password")
        first, second = groups.create_group(None, "First"), groups.create_group(None, "Second")
        db.session.commit()
        groups.add_member(None, first, ada)
        db.session.commit()
        groups.add_member(None, second, ada)
        db.session.commit()
        settle(1, bo.id)
        settle(2, ada.id)
        groups.set_primary(None, ada, second)
        db.session.commit()
        settle(3, ada.id)
        assert row(1) == ("bo", None, None, 3)
        assert row(2) == ("ada", first.id, "First", 3)  # no primary chosen: the first group joined
        assert row(3) == ("ada", second.id, "Second", 3)
        assert [g.id for g in groups.user_groups(db.session.get(User, ada.id))][0] == second.id  # the same rule


def test_written_once_in_one_statement(app):
    with app.app_context():
        ada = create_user("ada", "a long password")
        db.session.commit()
        ada_id = ada.id
        settle(6, ada_id)  # the first settles read the prices' settings
    with counting_statements(app) as statements, app.app_context():
        settle(7, ada_id)
    assert len(statements) == 1, statements
    with app.app_context():
        settle(7, ada_id, output_tokens=99)  # settled again (the conversation deleted as the worker ends)
        settle(7, ada_id, part=1, output_tokens=5)  # a continuation is its own row
        assert row(7) == ("ada", None, None, 3)
        assert row(7, part=1) == ("ada", None, None, 5)
        assert db.session.query(UsageRecord).count() == 3


def test_a_user_who_is_gone_is_kept_by_number(app):
    with app.app_context():
        settle(9, 4242)
        assert row(9) == ("#4242", None, None, 3)
        settle(9, 4242, output_tokens=1)
        assert db.session.query(UsageRecord).count() == 1
