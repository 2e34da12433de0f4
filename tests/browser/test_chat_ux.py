"""Chat details in Chromium: refused messages keep their text and notices never cover the controls."""

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests.support.browser import LONG, account_menu, refreshes_until_done, send, sign_up, wait_done
from webapp import site_settings
from webapp.extensions import db
from webapp.models import User

# For each control: is the element at its centre the control itself (or inside it)? False = covered.
UNCOVERED = """(selectors) => selectors.map((selector) => {
  const el = document.querySelector(selector);
  if (!el) return [selector, "missing"];
  const box = el.getBoundingClientRect();
  const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
  return [selector, !!hit && (el === hit || el.contains(hit))];
})"""
CONTROLS = [
    ".thread-title",
    ".thread-actions details.rename summary",
    ".thread-actions a[href$='export.md']",
    ".thread-actions a[href$='export.json']",
    ".thread-actions a.danger",
]


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
        site_settings.set_site(site_settings.ROLE_MODELS, {"user": models, "admin": None})
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


def test_edit_in_place_makes_a_branch_and_both_stay_browsable(page, live_server):
    sign_up(page, live_server, "editor")
    wait_done(send(page, "the first question"))
    wait_done(send(page, "a second question"))
    chat_url = page.url
    first = page.locator(".message.user").first
    first.get_by_role("link", name="Edit this message").click()
    box = first.get_by_label("Edit message")
    expect(box).to_have_value("the first question")  # edited in place: no other page
    assert page.url == chat_url
    box.fill("the better question")
    first.get_by_role("button", name="Save and send").click()
    wait_done(page.locator(".message.assistant").last)
    expect(page.locator(".message.user .content")).to_have_text(["the better question"])
    expect(page.locator(".message.assistant .content")).to_contain_text("the better question")
    expect(page.locator(".message.user .version-count")).to_have_text("2/2")
    page.get_by_role("button", name="Previous version of this message").click()
    expect(page.locator(".message.user .content")).to_have_text(["the first question", "a second question"])
    expect(page.locator(".message.user .version-count").first).to_have_text("1/2")
    # Esc leaves an edit without sending anything.
    page.locator(".message.user").last.get_by_role("link", name="Edit this message").click()
    expect(page.locator(".message.user").last.get_by_label("Edit message")).to_be_focused()  # (static/composer.js)
    page.keyboard.press("Escape")
    expect(page.locator("form.edit-form")).to_have_count(0)
    expect(page.locator(".message.user")).to_have_count(2)


def test_editing_without_javascript_uses_the_edit_page(browser, live_server):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        sign_up(page, live_server, "plainedit")
        page.get_by_label("Message").fill("typo heer")
        page.get_by_role("button", name="Send").click()
        refreshes_until_done(page)
        page.get_by_role("link", name="Edit this message").click()
        expect(page.get_by_role("heading", name="Edit and resend")).to_be_visible()
        page.get_by_label("Message").fill("typo here")
        page.get_by_role("button", name="Save and resend").click()
        expect(page.locator(".message.assistant").last).to_have_attribute("data-status", "succeeded", timeout=LONG)
        expect(page.locator(".message.user .content")).to_have_text(["typo here"])
        page.get_by_role("button", name="Previous version of this message").click()
        expect(page.locator(".message.user .content")).to_have_text(["typo heer"])
    finally:
        context.close()


def test_copy_reply_and_a_chat_opens_at_its_latest_message(browser, live_server):
    context = browser.new_context(viewport={"width": 1000, "height": 500})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    page = context.new_page()
    try:
        sign_up(page, live_server, "copier")
        for number in range(4):
            wait_done(send(page, f"message number {number} " + "with some words " * 12))
        reply = page.locator(".message.assistant").last
        reply.get_by_role("button", name="Copy reply").click()
        expect(reply.get_by_role("button", name="Copied")).to_be_visible()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert "message number 3" in copied and copied == reply.locator(".content").inner_text().strip()
        # Opened from its address alone, and from the sidebar: the latest message is in view.
        chat_path = page.url.split("#")[0]
        page.goto(live_server + "/chat/")
        page.goto(chat_path)
        expect(page.locator("#latest")).to_be_in_viewport()
        expect(page.locator(".message.user").first).not_to_be_in_viewport()
        page.goto(live_server + "/chat/")
        page.locator(".conversations a").first.click()
        expect(page.locator("#latest")).to_be_in_viewport()
    finally:
        context.close()


def test_theme_switch_is_remembered_and_needs_no_script(browser, live_server):
    context = browser.new_context(java_script_enabled=False, color_scheme="dark")
    page = context.new_page()
    background = "getComputedStyle(document.body).backgroundColor"
    try:
        sign_up(page, live_server, "themer")
        dark = page.evaluate(background)
        expect(account_menu(page).get_by_role("button", name="System", exact=True)).to_have_attribute(
            "aria-pressed", "true"
        )
        account_menu(page).get_by_role("button", name="Light", exact=True).click()  # system -> light
        expect(page.locator("html")).to_have_attribute("data-theme", "light")
        light = page.evaluate(background)
        assert light != dark and light == "rgb(245, 246, 248)"
        account_menu(page).get_by_role("link", name="API keys").click()  # remembered on every page
        expect(page.locator("html")).to_have_attribute("data-theme", "light")
        account_menu(page).get_by_role("button", name="Dark", exact=True).click()  # light -> dark
        expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        expect(page.get_by_role("heading", name="API keys")).to_be_visible()  # back on the same page
        page.emulate_media(color_scheme="light")
        assert page.evaluate(background) == dark  # the account's choice wins over the device's
    finally:
        context.close()
