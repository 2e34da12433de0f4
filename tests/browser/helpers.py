"""Steps the browser tests share."""
import time

from playwright.sync_api import expect

PASSWORD = "correct horse battery"
LONG = 30_000  # ms: a loaded 2-core machine runs the server, a worker and Chromium at once


def sign_up(page, base, name):
    page.goto(base + "/auth/signup")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("Welcome to Switchboard.")).to_be_visible(timeout=LONG)


def sign_in(page, base, name, password=PASSWORD):
    page.goto(base + "/auth/login")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".topbar .whoami")).to_contain_text(name, timeout=LONG)


def send(page, text):
    page.get_by_label("Message").fill(text)
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".message.user .content").last).to_have_text(text, timeout=LONG)
    return page.locator(".message.assistant").last


def wait_done(reply, status="succeeded"):
    expect(reply).to_have_attribute("data-status", status, timeout=LONG)


def reload_until_done(page, timeout=40.0):
    deadline = time.monotonic() + timeout
    while page.locator(".message.assistant").last.get_attribute("data-status") in ("queued", "running"):
        assert time.monotonic() < deadline, "the reply did not finish"
        page.wait_for_timeout(2000)  # the meta refresh interval
        page.reload()
    assert page.locator(".message.assistant").last.get_attribute("data-status") == "succeeded"


UNLABELLED = """() => Array.from(document.querySelectorAll(
    "input:not([type=hidden]), select, textarea, button")).filter((el) => {
  const named = (el.labels && el.labels.length) || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")
    || (el.tagName === "BUTTON" && el.textContent.trim()) || (el.type === "submit" && el.value);
  return !named;
}).map((el) => el.outerHTML.slice(0, 120))"""


def unlabelled_controls(page):
    """Form controls on the page without a label or an accessible name."""
    return page.evaluate(UNLABELLED)
