"""Continue with <fallback> in Chromium, with scripting on and off: a reply whose stream broke after five words
keeps them and says so, and the fallback's continuation is appended to the same reply."""

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests.support.browser import LONG, sign_up
from tests.support.fallback import set_chain
from webapp.extensions import db
from webapp.models import User


@pytest.fixture
def app_config(app_config, openai_server):
    return {**app_config, "OPENAI_API_KEY": "sk-test-browser-0123456789", "OPENAI_BASE_URL": openai_server.base_url}


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_continue_with_the_fallback_appends_to_the_broken_reply(browser, live_server, app, openai_server, javascript):
    set_chain(app, "gpt-4o", ["gpt-4o-mini"])
    openai_server.queue_reply("one two three four five six seven eight nine ten")
    openai_server.queue_reply("six seven eight nine ten.")
    openai_server.fail_next("cut", after=5, path="chat")
    context = browser.new_context(java_script_enabled=javascript)
    page = context.new_page()
    name = f"continuer{int(javascript)}"
    try:
        sign_up(page, live_server, name)
        with app.app_context():
            db.session.scalar(select(User).where(User.username == name)).default_model = "gpt-4o"
            db.session.commit()
        page.goto(live_server + "/chat/")
        page.get_by_label("Message").fill("Count to ten")
        page.get_by_role("button", name="Send").click()
        reply = page.locator(".message.assistant").last
        expect(reply).to_have_attribute("data-status", "failed", timeout=LONG)  # no-JS: the page refreshes itself
        expect(reply.locator(".content")).to_have_text("one two three four five", timeout=LONG)
        expect(reply).to_contain_text("The answer was cut off before it was complete.")
        expect(reply).to_contain_text("The part written before the failure is kept above.")

        reply.get_by_role("button", name="Continue with gpt-4o-mini").click()
        reply = page.locator(".message.assistant").last
        expect(reply).to_have_attribute("data-status", "succeeded", timeout=LONG)
        expect(reply.locator(".content")).to_have_text("one two three four five six seven eight nine ten.")
        expect(page.locator(".message.assistant")).to_have_count(1)  # the same reply, not a new one
        trail = reply.locator("details.fallback-trail")
        expect(trail.locator("summary")).to_have_text(
            "Continued by gpt-4o-mini after the answer from gpt-4o broke off."
        )
        trail.locator("summary").click()  # the attempts, one click away
        expect(trail.locator("li")).to_have_count(2)
        expect(reply.get_by_role("button", name="Continue with gpt-4o-mini")).to_have_count(0)
    finally:
        context.close()
