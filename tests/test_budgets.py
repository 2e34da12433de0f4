"""Monthly budgets in dollars: reserved before a reply is queued (per member and pooled), refused with
which budget and when it resets, settled with the real cost, and kept in a ledger that outlives the
conversation (issue 24 items 1-2, issue 23 item 2)."""

import time
from datetime import UTC, datetime

from sqlalchemy import func, select

from tests.support.chat import send
from tests.support.forms import csrf_token
from webapp import groups, limits, site_settings, usage
from webapp.extensions import db
from webapp.models import Conversation, Generation, UsageRecord, User
from webapp.queue import get_redis

# Echo priced by an admin: nothing per input token, $30 per million output tokens. Echo's reply has as
# many output tokens as the message has words, and a reply is estimated at 1000 output tokens: $0.03.
ECHO_PRICE = [0, 30]
ESTIMATE = 0.03


def price_echo(app):
    with app.app_context():
        site_settings.set_site(site_settings.MODEL_PRICES, {"echo": ECHO_PRICE})
        db.session.commit()


def signup(auth, app, name):
    auth.signup(name)
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.username == name))


def refusals(app, user_id):
    with app.app_context():
        return db.session.scalars(
            select(Generation.error).where(Generation.user_id == user_id, Generation.error_code == "insufficient_quota")
        ).all()


def next_month_start() -> str:
    return f"{limits.month_reset(time.time()):%Y-%m-%d}"


def month_counter(app, owner) -> float:
    with app.app_context():
        value = get_redis().get(limits._keys(owner, time.time())[2])
        return int(value or 0) / limits.MICRO


def test_a_member_budget_refuses_what_does_not_fit_and_settles_with_the_real_cost(app, client, auth, run_jobs):
    price_echo(app)
    user_id = signup(auth, app, "bea")
    with app.app_context():
        db.session.get(User, user_id).monthly_budget = 0.10
        db.session.commit()
    for text in ("one", "two", "three", "four"):
        send(client, text)
    [refusal] = refusals(app, user_id)  # three estimates ($0.09) fit, a fourth would not
    assert "your monthly budget of $0.10" in refusal and "$0.09 used" in refusal
    assert "could cost up to $0.03" in refusal
    assert f"It resets on {next_month_start()} at 00:00 UTC" in refusal
    page = client.get("/chat/").get_data(as_text=True)
    assert "monthly budget" in page  # the chat shows why

    run_jobs()  # three one-word replies: $0.00003 each
    assert abs(month_counter(app, user_id) - 3 * 30e-6) < 1e-9  # estimates replaced by the real cost
    with app.app_context():
        ledger = db.session.scalars(select(UsageRecord).where(UsageRecord.user_id == user_id)).all()
        assert len(ledger) == 3 and abs(sum(r.cost for r in ledger) - 3 * 30e-6) < 1e-12
    send(client, "five")  # with the estimates given back, it fits again
    assert len(refusals(app, user_id)) == 1

    with app.app_context():  # an admin lowers the budget: the next request already sees it
        db.session.get(User, user_id).monthly_budget = 0.0001
        db.session.commit()
    send(client, "six")
    assert len(refusals(app, user_id)) == 2
    with app.app_context():  # ... and raises it
        db.session.get(User, user_id).monthly_budget = 5
        db.session.commit()
    send(client, "seven")
    assert len(refusals(app, user_id)) == 2
    with app.app_context():  # over budget, a model that costs nothing still runs: it spends nothing more
        db.session.get(User, user_id).monthly_budget = 0.00001
        site_settings.set_site(site_settings.MODEL_PRICES, {})
        db.session.commit()
    send(client, "eight")
    assert len(refusals(app, user_id)) == 2


def test_two_members_spend_the_pool_and_a_third_is_refused(app, client, auth, run_jobs):
    price_echo(app)
    long_message = " ".join(["word"] * 1000)  # a 1000-word echo: $0.03 of output, as much as its estimate
    members = []
    for name in ("ann", "ben", "cat"):
        members.append(signup(auth, app, name))
        auth.logout()
    with app.app_context():
        team = groups.create_group(None, "Team")
        groups.set_rules(None, team, [], {"pooled_monthly_budget": 0.06})
        for user_id in members:
            groups.add_member(None, team, db.session.get(User, user_id))
        db.session.commit()
        team_id = team.id
    for name in ("ann", "ben"):
        auth.login(name)
        send(client, long_message)
        auth.logout()
    run_jobs()
    assert abs(month_counter(app, f"group:{team_id}") - 0.06) < 1e-9  # spent together, settled
    auth.login("cat")
    send(client, "may I?")
    [refusal] = refusals(app, members[2])
    assert "the monthly budget your group Team shares of $0.06" in refusal and "$0.06 used" in refusal
    assert f"It resets on {next_month_start()}" in refusal
    with app.app_context():
        assert db.session.scalar(select(func.count(UsageRecord.id)).where(UsageRecord.group_name == "Team")) == 2


def test_a_missing_month_counter_starts_from_the_ledger(app, client, auth, run_jobs):
    """Redis emptied (or a budget set mid-month): the month's spend is read back from the ledger."""
    price_echo(app)
    user_id = signup(auth, app, "dee")
    send(client, " ".join(["word"] * 1000))  # $0.03, no budget yet
    run_jobs()
    with app.app_context():
        get_redis().flushdb()
        db.session.get(User, user_id).monthly_budget = 0.05
        db.session.commit()
    send(client, "over?")  # $0.03 spent + $0.03 estimated > $0.05
    [refusal] = refusals(app, user_id)
    assert "$0.03 used" in refusal


def test_usage_outlives_a_deleted_conversation(app, client, auth, run_jobs):
    user_id = signup(auth, app, "eve")
    send(client, "kept in the ledger")
    run_jobs()
    with app.app_context():
        rows = usage.usage_rows(30, user_id=user_id)
        conversation_id = db.session.scalar(select(Conversation.id).where(Conversation.user_id == user_id))
    assert [(r.requests, r.output_tokens) for r in rows] == [(1, 4)]
    token = csrf_token(client, f"/chat/{conversation_id}")
    assert client.post(f"/chat/{conversation_id}/delete", data={"csrf_token": token}).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count(Generation.id))) == 0
        after = usage.usage_rows(30, user_id=user_id)
        assert [(r.requests, r.output_tokens) for r in after] == [(1, 4)]
        assert "kept in the ledger" not in usage.to_csv(after)  # the text goes, the usage stays
        # Written once: a second writer (the worker settling as the conversation goes) changes nothing.
        usage.record(
            after_id := db.session.scalar(select(UsageRecord.generation_id)),
            user_id,
            "echo",
            "echo",
            "web",
            "succeeded",
            9,
            9,
        )
        db.session.commit()
        assert db.session.scalar(select(func.count(UsageRecord.id)).where(UsageRecord.generation_id == after_id)) == 1


def test_month_reset_is_the_first_of_next_month_utc():
    assert limits.month_reset(datetime(2026, 12, 31, 23, 59, tzinfo=UTC).timestamp()) == datetime(
        2027, 1, 1, tzinfo=UTC
    )
    assert limits.month_reset(datetime(2026, 2, 1, tzinfo=UTC).timestamp()) == datetime(2026, 3, 1, tzinfo=UTC)
