"""Fallback chains through a real worker, against the fake providers in their real wire formats: a failure
before any text moves on to the next fallback the user may use, within the same reply; every attempt is
kept; a break after some text keeps the text and never restarts elsewhere."""

import html
import re

import pytest
import redis
from sqlalchemy import select

from tests.support.admin import save_models
from tests.support.fallback import chat_once, latest, set_chain, signed_up
from tests.support.forms import post_form
from tests.support.queue import run_queued_jobs
from webapp import live, scheduling
from webapp.queue import get_redis


def kinds(generation):
    return [(a["model"], a["kind"]) for a in generation.attempt_log]


@pytest.mark.parametrize(
    ("fault", "kind"), [("rate_limit", "rate_limited"), ("unavailable", "provider_down")], ids=["429", "503"]
)
def test_a_failure_before_any_text_moves_on_to_the_fallback(make_app, servers, fault, kind):
    openai_server, gemini_server = servers
    app = make_app()
    set_chain(app, "gpt-4o", ["gemini-1.5-pro"])
    client = signed_up(app, "gpt-4o")
    openai_server.fail_next(fault, path="chat", retry_after=None)
    generation = chat_once(app, client)
    assert generation.status == "succeeded", generation.error
    assert "Venus" in generation.text
    assert generation.model_id == "gemini-1.5-pro" and generation.provider == "gemini"
    assert kinds(generation) == [("gpt-4o", kind), ("gemini-1.5-pro", None)]
    assert len(openai_server.chat_requests) == 1  # moved on at once, no retry of the failing model first
    assert generation.attempt_log[0]["waited"] == 0 and generation.attempt_log[0]["at"]
    with app.app_context():  # usage is charged to the model that answered
        from webapp.extensions import db
        from webapp.models import UsageRecord

        ledger = db.session.scalar(select(UsageRecord).where(UsageRecord.generation_id == generation.id))
        assert (ledger.model_id, ledger.provider) == ("gemini-1.5-pro", "gemini")
        # Followers of the reply read a fallback event where it happened (webapp.reply_events).
        moves = live.read_since(get_redis(), generation.id, 0).fallbacks
        assert moves == [{"from": "gpt-4o", "to": "gemini-1.5-pro", "kind": kind}]
    page = html.unescape(client.get(f"/chat/{generation.conversation_id}").get_data(as_text=True))
    said = "was rate limited" if kind == "rate_limited" else "was unavailable"
    assert f"<summary>Answered by gemini-1.5-pro after gpt-4o {said}.</summary>" in page
    assert re.search(r"<li><code>gpt-4o</code>.*?</li>\s*<li><code>gemini-1.5-pro</code>.*?answered</li>", page, re.S)


def test_a_hang_past_the_timeout_moves_on(make_app, servers):
    openai_server, _gemini = servers
    app = make_app(LLM_REQUEST_TIMEOUT=0.5)
    set_chain(app, "gpt-4o", ["gemini-1.5-pro"])
    client = signed_up(app, "gpt-4o")
    openai_server.fail_next("timeout", path="chat")
    generation = chat_once(app, client)
    assert generation.status == "succeeded", generation.error
    assert kinds(generation) == [("gpt-4o", "provider_down"), ("gemini-1.5-pro", None)]
    assert generation.attempt_log[0]["error"] == "provider_timeout"


def test_context_window_exceeded_moves_on_to_the_larger_model(make_app, servers):
    openai_server, _gemini = servers
    app = make_app()
    set_chain(app, "gpt-3.5-turbo", ["gpt-4o"])
    client = signed_up(app, "gpt-3.5-turbo")
    openai_server.fail_next("context_window", path="chat")
    generation = chat_once(app, client)
    assert generation.status == "succeeded", generation.error
    assert kinds(generation) == [("gpt-3.5-turbo", "context_window"), ("gpt-4o", None)]
    assert [r.json["model"] for r in openai_server.chat_requests] == ["gpt-3.5-turbo", "gpt-4o"]


def test_gemini_context_window_is_recognised(make_app, servers):
    _openai, gemini_server = servers
    app = make_app()
    set_chain(app, "gemini-1.5-flash", ["gemini-1.5-pro"])
    client = signed_up(app, "gemini-1.5-flash")
    gemini_server.fail_next("context_window", path="enerateContent")
    generation = chat_once(app, client)
    assert generation.status == "succeeded", generation.error
    assert kinds(generation) == [("gemini-1.5-flash", "context_window"), ("gemini-1.5-pro", None)]


def test_a_refused_key_does_not_move_on_by_default(make_app, servers):
    openai_server, gemini_server = servers
    app = make_app()
    set_chain(app, "gpt-4o", ["gemini-1.5-pro"])
    client = signed_up(app, "gpt-4o")
    openai_server.fail_next("unauthorized", path="chat")
    generation = chat_once(app, client)
    assert generation.status == "failed" and generation.error_code == "authentication_failed"
    assert kinds(generation) == [("gpt-4o", "key_refused")]
    assert not [r for r in gemini_server.requests if "enerateContent" in r.path]


def test_a_refused_key_moves_on_when_the_admin_says_so(make_app, servers):
    openai_server, _gemini = servers
    app = make_app()
    set_chain(app, "gpt-4o", ["gemini-1.5-pro"], on=["key_refused"])
    client = signed_up(app, "gpt-4o")
    openai_server.fail_next("unauthorized", path="chat")
    generation = chat_once(app, client)
    assert generation.status == "succeeded" and generation.model_id == "gemini-1.5-pro"


def test_a_fallback_the_user_may_not_use_is_skipped(make_app, servers):
    openai_server, gemini_server = servers
    app = make_app()
    admin = signed_up(app, "gpt-4o", username="root")
    with app.app_context():
        from webapp.accounts import find_user
        from webapp.extensions import db

        find_user("root").role = "admin"
        db.session.commit()
    assert save_models(
        admin,
        enabled=["gpt-4o", "gpt-4o-mini", "gemini-1.5-pro", "echo"],
        user_models=["gpt-4o", "gpt-4o-mini"],
    ).status_code in (302, 303)
    set_chain(app, "gpt-4o", ["gemini-1.5-pro", "gpt-4o-mini"])
    client = signed_up(app, "gpt-4o")
    openai_server.fail_next("rate_limit", path="chat", retry_after=None)
    generation = chat_once(app, client)
    assert generation.status == "succeeded", generation.error
    assert kinds(generation) == [("gpt-4o", "rate_limited"), ("gpt-4o-mini", None)]
    assert not [r for r in gemini_server.requests if "enerateContent" in r.path]


def test_without_a_fallback_the_model_is_retried_as_before(make_app, servers):
    openai_server, _gemini = servers
    app = make_app(RETRY_BACKOFF_BASE=1.0)  # a wait of up to 1 s: rounded to the millisecond, it is almost never 0
    client = signed_up(app, "gpt-4o")
    openai_server.fail_next("unavailable", path="chat")
    generation = chat_once(app, client)
    assert generation.status == "succeeded" and generation.model_id == "gpt-4o"
    assert kinds(generation) == [("gpt-4o", "provider_down"), ("gpt-4o", None)]
    assert generation.attempt_log[1]["waited"] > 0  # the backoff before the retry


def broken_reply(make_app, servers):
    """A gpt-4o reply, with gemini-1.5-pro as its fallback, that broke off after its first five words:
    the app, its user's client and the generation."""
    openai_server, _gemini = servers
    openai_server.reply = "one two three four five six seven eight nine ten"
    app = make_app()
    set_chain(app, "gpt-4o", ["gemini-1.5-pro"])
    client = signed_up(app, "gpt-4o")
    openai_server.fail_next("cut", after=5, path="chat")
    return app, client, chat_once(app, client)


def test_a_break_after_some_text_keeps_it_and_never_restarts_elsewhere(make_app, servers):
    _openai, gemini_server = servers
    _app, _client, generation = broken_reply(make_app, servers)
    assert generation.status == "failed" and generation.error_code == "content_cut_off"
    assert generation.text == "one two three four five "
    assert generation.model_id == "gpt-4o"
    assert kinds(generation) == [("gpt-4o", "provider_down")]
    assert not [r for r in gemini_server.requests if "enerateContent" in r.path]


PRICES = {"gpt-4o": (2.5, 10.0), "gemini-1.5-pro": (1.25, 5.0)}  # USD per million tokens, set by an admin


def test_continue_with_the_fallback_appends_to_the_same_reply(make_app, servers):
    _openai, gemini_server = servers
    gemini_server.reply = "six seven eight nine ten."
    app, client, broken = broken_reply(make_app, servers)
    with app.app_context():
        from webapp import site_settings
        from webapp.extensions import db

        site_settings.set_site(site_settings.MODEL_PRICES, {m: list(p) for m, p in PRICES.items()})
        db.session.commit()
    page = html.unescape(client.get(f"/chat/{broken.conversation_id}").get_data(as_text=True))
    assert "The answer was cut off before it was complete." in page
    assert "The part written before the failure is kept above." in page
    assert "Continue with gemini-1.5-pro</button>" in page

    response = post_form(
        client,
        f"/chat/generations/{broken.id}/continue",
        {"model": "gemini-1.5-pro"},
        page=f"/chat/{broken.conversation_id}",
    )
    assert response.status_code == 302
    run_queued_jobs(app)
    continued = latest(app)
    assert continued.id == broken.id  # the same reply
    assert continued.status == "succeeded", continued.error
    assert continued.text == "one two three four five six seven eight nine ten."
    assert continued.model_id == "gemini-1.5-pro"
    assert [(a["model"], a.get("continues", False), a.get("part")) for a in continued.attempt_log] == [
        ("gpt-4o", False, None),
        ("gemini-1.5-pro", True, 1),
    ]
    sent = [r.json for r in gemini_server.requests if "enerateContent" in r.path][-1]["contents"]
    assert sent[-2] == {"role": "model", "parts": [{"text": "one two three four five "}]}  # the text so far
    assert continued.output_tokens > broken.output_tokens  # the reply's tokens: both parts'
    with app.app_context():  # each part's usage is charged to the model that wrote it, at its prices
        from webapp import usage
        from webapp.extensions import db
        from webapp.models import UsageRecord

        first, continuation = db.session.scalars(
            select(UsageRecord).where(UsageRecord.generation_id == broken.id).order_by(UsageRecord.part)
        )
        assert (first.part, first.model_id, first.status, first.output_tokens) == (
            0,
            "gpt-4o",
            "failed",
            broken.output_tokens,
        )
        assert (continuation.part, continuation.model_id, continuation.provider, continuation.status) == (
            1,
            "gemini-1.5-pro",
            "gemini",
            "succeeded",
        )
        assert continuation.input_tokens == continued.input_tokens - broken.input_tokens
        assert continuation.output_tokens == continued.output_tokens - broken.output_tokens
        input_price, output_price = PRICES["gemini-1.5-pro"]
        assert continuation.cost == pytest.approx(
            (continuation.input_tokens * input_price + continuation.output_tokens * output_price) / 1e6
        )
        assert (continuation.user_id, continuation.source) == (first.user_id, first.source)
        per_model = {m["model"]: (m["requests"], m["output_tokens"]) for m in usage.by_model(usage.usage_rows())}
        assert per_model == {
            "gpt-4o": (1, broken.output_tokens),
            "gemini-1.5-pro": (1, continuation.output_tokens),
        }
    page = html.unescape(client.get(f"/chat/{broken.conversation_id}").get_data(as_text=True))
    assert "Continued by gemini-1.5-pro after the answer from gpt-4o broke off." in page
    assert "Continue with" not in page


def test_a_continuation_that_breaks_off_may_be_continued_again_each_part_its_own_ledger_row(make_app, servers):
    openai_server, gemini_server = servers
    openai_server.reply = "one two three four five six seven eight nine ten"
    app = make_app()
    set_chain(app, "gpt-4o", ["gemini-1.5-pro", "gpt-4o-mini"])
    client = signed_up(app, "gpt-4o")
    openai_server.fail_next("cut", after=5, path="chat")
    broken = chat_once(app, client)

    def continue_with(model_id):
        url, page = f"/chat/generations/{broken.id}/continue", f"/chat/{broken.conversation_id}"
        assert post_form(client, url, {"model": model_id}, page=page).status_code == 302
        run_queued_jobs(app)

    gemini_server.reply = "six seven eight"
    gemini_server.fail_next("cut", after=2, path="enerateContent")
    continue_with("gemini-1.5-pro")  # breaks off too: the next fallback is offered
    openai_server.queue_reply("eight nine ten.")
    continue_with("gpt-4o-mini")

    again = latest(app)
    assert again.status == "succeeded", again.error
    assert again.text.startswith("one two three four five six seven") and again.text.endswith("eight nine ten.")
    assert [a.get("part") for a in again.attempt_log] == [None, 1, 2]
    with app.app_context():
        from webapp.extensions import db
        from webapp.models import UsageRecord

        rows = db.session.scalars(
            select(UsageRecord).where(UsageRecord.generation_id == broken.id).order_by(UsageRecord.part)
        )
        assert [(r.part, r.model_id, r.status) for r in rows] == [
            (0, "gpt-4o", "failed"),
            (1, "gemini-1.5-pro", "failed"),
            (2, "gpt-4o-mini", "succeeded"),
        ]


def test_only_the_owner_may_continue_a_reply(make_app, servers):
    app, _owner, broken = broken_reply(make_app, servers)
    other = signed_up(app, "gpt-4o", username="mallory")
    response = post_form(other, f"/chat/generations/{broken.id}/continue", {"model": "gemini-1.5-pro"})
    assert response.status_code == 404
    assert latest(app).status == "failed"


def test_continue_with_a_model_not_offered_is_refused(make_app, servers):
    app, client, broken = broken_reply(make_app, servers)
    response = post_form(
        client,
        f"/chat/generations/{broken.id}/continue",
        {"model": "gpt-4o-mini"},
        page=f"/chat/{broken.conversation_id}",
    )
    assert response.status_code == 302
    assert "cannot be continued with gpt-4o-mini" in html.unescape(
        client.get(f"/chat/{broken.conversation_id}").get_data(as_text=True)
    )
    again = latest(app)
    assert again.status == "failed" and again.text == "one two three four five "


def test_a_fallback_whose_provider_is_not_set_up_is_skipped(make_app, servers):
    openai_server, _gemini = servers
    app = make_app()  # the in-house provider has no base URL here
    set_chain(app, "gpt-4o", ["inhouse", "gpt-4o-mini"])
    client = signed_up(app, "gpt-4o")
    openai_server.fail_next("unavailable", path="chat")
    generation = chat_once(app, client)
    assert generation.status == "succeeded", generation.error
    assert kinds(generation) == [("gpt-4o", "provider_down"), ("gpt-4o-mini", None)]


def capped(app, caps: dict[str, int]):
    """Provider caps set as an admin does; the fair queue's busy sets, readable from any thread."""
    with app.app_context():
        from webapp.extensions import db

        scheduling.set_provider_caps(caps)
        db.session.commit()
        fair = scheduling.fair_queue(redis.Redis.from_url(app.config["REDIS_URL"]))

    def busy(provider):
        return {int(g) for g in fair.connection.smembers(f"{fair.prefix}busy:{provider}")}

    return fair, busy


def test_a_fallback_whose_provider_is_at_its_cap_is_skipped(make_app, servers):
    openai_server, gemini_server = servers
    app = make_app()
    set_chain(app, "gpt-4o", ["gemini-1.5-pro", "gpt-4o-mini"])
    client = signed_up(app, "gpt-4o")
    fair, busy = capped(app, {"gemini": 1})
    fair.connection.sadd(f"{fair.prefix}busy:gemini", 999)  # someone else's reply runs on gemini
    fair.connection.sadd(f"{fair.prefix}providers", "gemini")
    openai_server.fail_next("rate_limit", path="chat", retry_after=None)
    generation = chat_once(app, client)
    assert generation.status == "succeeded", generation.error
    assert kinds(generation) == [("gpt-4o", "rate_limited"), ("gemini-1.5-pro", "at_capacity"), ("gpt-4o-mini", None)]
    assert not gemini_server.generate_requests
    assert busy("gemini") == {999} and busy("openai") == set()
    page = html.unescape(client.get(f"/chat/{generation.conversation_id}").get_data(as_text=True))
    assert "Answered by gpt-4o-mini after gpt-4o was rate limited and gemini-1.5-pro was at its provider's cap." in page


def test_a_fallback_of_another_provider_takes_its_slot_and_frees_the_first(make_app, servers):
    openai_server, gemini_server = servers
    app = make_app()
    set_chain(app, "gpt-4o", ["gemini-1.5-pro"])
    client = signed_up(app, "gpt-4o")
    _fair, busy = capped(app, {"openai": 1, "gemini": 1})
    seen = {}

    def answer(request):  # while the fallback is asked
        seen.update(openai=busy("openai"), gemini=busy("gemini"))
        return "Hot."

    gemini_server.reply = answer
    openai_server.fail_next("rate_limit", path="chat", retry_after=None)
    generation = chat_once(app, client)
    assert generation.status == "succeeded" and generation.model_id == "gemini-1.5-pro", generation.error
    assert seen == {"openai": set(), "gemini": {generation.id}}
    assert busy("openai") == set() and busy("gemini") == set(), "the end frees the slot it moved to"
