"""Chat details in Chromium: refused messages keep their text and notices never cover the controls."""
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from webapp import admin_settings
from webapp.extensions import db
from webapp.models import User

from .helpers import LONG, sign_up

# For each control: is the element at its centre the control itself (or inside it)? False = covered.
UNCOVERED = """(selectors) => selectors.map((selector) => {
  const el = document.querySelector(selector);
  if (!el) return [selector, "missing"];
  const box = el.getBoundingClientRect();
  const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
  return [selector, !!hit && (el === hit || el.contains(hit))];
})"""
CONTROLS = [".thread-title", ".thread-actions details.rename summary", ".thread-actions a[href$='export.md']",
            ".thread-actions a[href$='export.json']", ".thread-actions a.danger"]


def assert_controls_uncovered(page):
    page.evaluate("window.scrollTo(0, 0)")
    results = page.evaluate(UNCOVERED, CONTROLS)
    assert all(ok is True for _selector, ok in results), results


def set_user(app, username, **values):
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        for name, value in values.items():
            setattr(user, name, value)
        db.session.commit()


def allow_models(app, models):
    with app.app_context():
        admin_settings.set_site(admin_settings.ROLE_MODELS, {"user": models, "admin": None})
        db.session.commit()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_a_refused_message_keeps_its_text(browser, web_server, app, javascript):
    context = browser.new_context(java_script_enabled=javascript)
    page = context.new_page()
    name = f"refused{int(javascript)}"
    try:
        sign_up(page, web_server, name)
        set_user(app, name, requests_per_minute=1)
        page.get_by_label("Message").fill("the first message")
        page.get_by_role("button", name="Send").click()
        expect(page.locator(".message.user .content")).to_have_text("the first message", timeout=LONG)

        # Over the per-user limit: the message is saved, its reply says why, and the text is back in the box.
        page.get_by_label("Message").fill("over the limit")
        page.get_by_role("button", name="Send").click()
        expect(page.locator(".message.assistant").last).to_have_attribute("data-status", "failed", timeout=LONG)
        expect(page.get_by_label("Message")).to_have_value("over the limit")
        expect(page.locator(".flash-error")).to_contain_text("requests per minute")
        assert_controls_uncovered(page)

        # A model the account may no longer use: nothing is saved, and the text stays.
        set_user(app, name, requests_per_minute=None)
        allow_models(app, [])
        page.get_by_label("Message").fill("a refused model")
        page.get_by_role("button", name="Send").click()
        expect(page.locator(".composer-error")).to_contain_text("Not sent", timeout=LONG)
        expect(page.get_by_label("Message")).to_have_value("a refused model")
        expect(page.locator(".message.user")).to_have_count(2)
        assert_controls_uncovered(page)
    finally:
        allow_models(app, None)
        context.close()
