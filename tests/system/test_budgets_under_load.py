"""A monthly budget under load, through real gunicorn and a real worker process: 50 requests at once
against a $0.10 per-member budget, with gpt-4o (priced by LiteLLM's map) served by the fake OpenAI
server. Nothing goes over the budget by more than one reply's estimate, the refusals name the budget
and its reset time, nothing refused reaches the provider, and settlement replaces every estimate
with the real cost (issue 24)."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import httpx
import pytest
import redis
from sqlalchemy import func, select

from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.stack import Stack
from tests.support.waiting import wait_for
from webapp import create_app, limits, prices
from webapp.accounts import create_user
from webapp.accounts.api_keys import create_key
from webapp.extensions import db
from webapp.models import Generation, UsageRecord, User

pytestmark = pytest.mark.slow

SENDS = 50
BUDGET = 0.10
MAX_TOKENS = 400  # the reply's cap, and so its output estimate
REPLY_WORDS = 200  # what the fake answers: half the estimate, so settlement has something to correct
PROMPT = "Summarise everything about Venus weather please"  # words of 4+ characters: no more tokens than estimated


@pytest.fixture
def provider():
    # A short wait before answering, so the 50 requests are in flight together.
    with FakeOpenAIServer(reply=" ".join(["word"] * REPLY_WORDS), ttft=0.5) as server:
        yield server


@pytest.fixture
def stack(tmp_path, redis_url, provider):
    redis.Redis.from_url(redis_url).flushdb()
    app_stack = Stack(
        tmp_path,
        f"sqlite:///{tmp_path / 'budget.db'}",
        redis_url,
        web_processes=1,
        concurrency=50,
        env={"OPENAI_API_KEY": "sk-test-budget", "OPENAI_BASE_URL": provider.base_url},
    )
    app = create_app(
        {"DATABASE_URL": app_stack.env["DATABASE_URL"], "REDIS_URL": redis_url, "RQ_QUEUE_NAME": app_stack.queue}
    )
    try:
        app_stack.start()
        yield app_stack.url, app
    finally:
        app_stack.stop()
        with app.app_context():
            db.engine.dispose()


def test_fifty_sends_against_a_ten_cent_budget(stack, provider):
    url, app = stack
    with app.app_context():
        user = create_user("spender", "correct horse battery")
        user.monthly_budget = BUDGET
        _key, api_key = create_key(user, "load")
        db.session.commit()
        user_id = user.id
        input_price, output_price = prices.unit_prices("gpt-4o", "openai")  # LiteLLM's price map
    assert input_price > 0 and output_price > 0
    estimate = (len(PROMPT) // 4) * input_price + MAX_TOKENS * output_price
    body = {"model": "gpt-4o", "max_tokens": MAX_TOKENS, "messages": [{"role": "user", "content": PROMPT}]}
    headers = {"Authorization": f"Bearer {api_key}"}
    barrier = threading.Barrier(SENDS)

    def send(_index):
        barrier.wait()
        return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=120)

    with concurrent.futures.ThreadPoolExecutor(SENDS) as pool:
        replies = list(pool.map(send, range(SENDS)))
    statuses = [r.status_code for r in replies]
    answered = statuses.count(200)
    assert set(statuses) <= {200, 429} and answered + statuses.count(429) == SENDS, statuses
    # Reserved estimates never pass the budget, so at most this many run at once.
    assert 1 <= answered <= int(BUDGET // estimate), (answered, estimate)
    refused = [r for r in replies if r.status_code == 429]
    assert refused, "some sends must be refused"
    reset = limits.month_reset(time.time())
    for reply in refused:
        error = reply.json()["error"]
        assert (error["code"], error["type"]) == ("insufficient_quota", "insufficient_quota")
        assert "your monthly budget of $0.10" in error["message"]
        assert f"It resets on {reset:%Y-%m-%d} at 00:00 UTC" in error["message"]
        assert abs(int(reply.headers["Retry-After"]) - (reset.timestamp() - time.time())) < 120
    assert len(provider.chat_requests) == answered  # nothing refused reached the provider

    connection = redis.Redis.from_url(app.config["REDIS_URL"])
    month_key = limits._keys(str(user_id), time.time())[2]

    def settled():
        with app.app_context():
            records = db.session.scalar(select(func.count(UsageRecord.id)).where(UsageRecord.user_id == user_id))
            spent = db.session.scalar(select(func.sum(UsageRecord.cost)).where(UsageRecord.user_id == user_id))
        counter = int(connection.get(month_key) or 0) / limits.MICRO
        return records == answered and abs(counter - spent) < 1e-5 and (spent, counter)

    spent, counter = wait_for(settled, 60, "every reply settled with its real cost")
    print(
        f"budget ${BUDGET}: {answered} answered, {SENDS - answered} refused; estimate ${estimate:.6f} each, "
        f"settled ${spent:.6f} in all (${spent / answered:.6f} each), month counter ${counter:.6f}"
    )
    assert spent <= BUDGET + estimate  # over the budget by at most one reply's estimate
    real_each = spent / answered
    assert real_each < estimate * 0.75  # the real cost (200 of 400 output tokens) replaced each estimate
    with app.app_context():
        refusals = db.session.scalar(
            select(func.count(Generation.id)).where(
                Generation.user_id == user_id, Generation.error_code == "insufficient_quota"
            )
        )
        assert refusals == SENDS - answered and db.session.get(User, user_id).monthly_budget == BUDGET
    # With the estimates given back, the room they held is there again.
    again = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60)
    assert again.status_code == 200, again.text
