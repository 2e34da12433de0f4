"""Steps the browser tests share."""

from playwright.sync_api import expect

from webapp.paths import PROJECT_ROOT

ARTIFACTS = PROJECT_ROOT / "test-artifacts"

PASSWORD = "correct horse battery"
LONG = 30_000  # ms: a loaded 2-core machine runs the server, a worker and Chromium at once


def sign_up(page, base, name):
    page.goto(base + "/auth/signup")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("Welcome to Switchboard.")).to_be_visible(timeout=LONG)
    page.wait_for_load_state()  # the page's scripts have run: a file pasted or picked now reaches them


def sign_in(page, base, name, password=PASSWORD):
    page.goto(base + "/auth/login")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".topbar .whoami")).to_contain_text(name, timeout=LONG)
    page.wait_for_load_state()


def send(page, text):
    page.get_by_label("Message").fill(text)
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".message.user .content").last).to_have_text(text, timeout=LONG)
    return page.locator(".message.assistant").last


def wait_done(reply, status="succeeded"):
    expect(reply).to_have_attribute("data-status", status, timeout=LONG)


def refreshes_until_done(page, timeout=LONG):
    """With scripting off the page reloads itself (its <noscript> meta refresh) until the reply is done.

    Nothing here reloads: the test only watches the page's own navigations and waits for the
    finished reply, then checks the page landed at the latest message.
    """
    navigations = []

    def navigated(frame):
        if frame == page.main_frame:
            navigations.append(frame.url)

    page.on("framenavigated", navigated)
    try:
        expect(page.locator(".message.assistant").last).to_have_attribute("data-status", "succeeded", timeout=timeout)
    finally:
        page.remove_listener("framenavigated", navigated)
    assert page.url.endswith("#latest")
    expect(page.locator("#latest")).to_be_in_viewport()
    return navigations


UNLABELLED = """() => Array.from(document.querySelectorAll(
    "input:not([type=hidden]), select, textarea, button")).filter((el) => {
  const named = (el.labels && el.labels.length) || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")
    || (el.tagName === "BUTTON" && el.textContent.trim()) || (el.type === "submit" && el.value);
  return !named;
}).map((el) => el.outerHTML.slice(0, 120))"""


def unlabelled_controls(page):
    """Form controls on the page without a label or an accessible name."""
    return page.evaluate(UNLABELLED)


def account_menu(page):
    """The account menu in the top bar (Usage, API keys, Sessions, Theme, Sign out), opened; a <details>: no script needed."""
    menu = page.locator(".topbar details.account-menu")
    if menu.get_attribute("open") is None:
        menu.locator("summary").click()
    return menu.locator(".menu")


def shoot_both_themes(page, name, full_page=False):
    """Screenshots of the page in the light and the dark theme: NAME-light.png, NAME-dark.png in test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{scheme}.png"), full_page=full_page)
    page.emulate_media(color_scheme="light")
