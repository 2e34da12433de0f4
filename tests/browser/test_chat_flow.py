"""Sign up, send a message, watch the echo reply stream in, in headless Chromium."""

from playwright.sync_api import expect

# Records each length the reply's text takes, so the test can see it grow in pieces.
RECORD_GROWTH = """
window.__replyLengths = [];
document.addEventListener("DOMContentLoaded", () => {
  const observer = new MutationObserver(() => {
    const el = document.querySelector(".message.assistant .content");
    if (el) window.__replyLengths.push(el.textContent.length);
  });
  observer.observe(document.body, {childList: true, subtree: true, characterData: true});
});
"""


def test_sign_up_send_and_watch_the_reply_stream(page, live_server, screenshot):
    page.add_init_script(RECORD_GROWTH)
    page.goto(live_server + "/")
    expect(page).to_have_url(live_server + "/auth/login?next=/chat/")
    screenshot("login")
    page.get_by_role("link", name="Sign up").last.click()
    page.get_by_label("Username").fill("walter")
    page.get_by_label("Password", exact=True).fill("correct horse battery")
    page.get_by_label("Repeat password").fill("correct horse battery")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("Welcome to Switchboard.")).to_be_visible()

    words = " ".join(f"piece{i}" for i in range(15))
    page.get_by_label("Message").fill(words)
    page.get_by_role("button", name="Send").click()

    reply = page.locator(".message.assistant")
    expect(reply).to_have_attribute("data-status", "succeeded", timeout=20_000)
    expect(reply.locator(".content")).to_contain_text(words)
    expect(reply.locator(".content")).to_contain_text("echo", ignore_case=True)
    lengths = page.evaluate("window.__replyLengths")
    growth = sorted(set(length for length in lengths if length > 0))
    assert len(growth) >= 3, f"the reply did not arrive in pieces: {lengths}"
    screenshot("chat")


def test_enter_sends_and_empty_message_is_refused(page, live_server):
    page.goto(live_server + "/auth/signup")
    page.get_by_label("Username").fill("jesse")
    page.get_by_label("Password", exact=True).fill("correct horse battery")
    page.get_by_label("Repeat password").fill("correct horse battery")
    page.get_by_role("button", name="Create account").click()
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_text("Write a message first.")).to_be_visible()
    page.get_by_label("Message").fill("sent with enter")
    page.get_by_label("Message").press("Enter")
    expect(page.locator(".message.user .content")).to_have_text("sent with enter")
    expect(page.locator(".message.assistant")).to_have_attribute("data-status", "succeeded", timeout=20_000)
