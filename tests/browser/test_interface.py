"""The interface itself: code blocks (language, copy), keyboard, the growing composer, live region, no jumping
while a reply streams, times and usage on replies, phone width; screenshots in both themes."""

import re

from playwright.sync_api import expect

from tests.support.browser import LONG, send, sign_up, unlabelled_controls, wait_done

RICH = """Here is a **short** answer with a list and some code:

- first point
- second point with `inline code`

```python
def greet(name):
    return f"hello {name}"
```

| model | speed |
| --- | --- |
| echo | fast |"""


def test_code_blocks_copy_and_reply_details(page, live_server, both_themes):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(live_server + "/")
    assert unlabelled_controls(page) == []
    both_themes("login")
    page.get_by_role("link", name="Sign up").last.click()
    both_themes("signup")
    sign_up(page, live_server, "ada")
    both_themes("chat-empty")

    reply = send(page, RICH)
    wait_done(reply)
    block = reply.locator(".code-block")
    expect(block).to_have_count(1)
    expect(block.locator(".code-lang")).to_have_text("python")
    expect(block.locator("pre > code.language-python")).to_contain_text("def greet(name):")
    block.get_by_role("button", name="Copy python code").click()
    expect(block.locator("button.copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == 'def greet(name):\n    return f"hello {name}"\n'
    expect(block.locator("button.copy")).to_have_text("Copy", timeout=LONG)

    # Each reply says which model answered, when, and the tokens it used; the user's turn has its time.
    expect(reply.locator(".model-name")).to_have_text("echo")
    expect(reply.locator(".role time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"))
    expect(reply.locator(".role time")).not_to_contain_text("UTC")  # shown in the reader's time zone
    expect(reply.locator(".usage")).to_have_text(re.compile(r"^\d+ in · \d+ out tokens$"))
    expect(page.locator(".message.user .role time")).to_have_count(1)
    page.locator("details.settings summary").click()
    page.locator("summary", has_text="Rename").click()
    assert unlabelled_controls(page) == []  # every control of the chat page, settings and rename open
    page.keyboard.press("Escape")
    page.reload()
    page.mouse.move(0, 0)
    both_themes("chat", full_page=False)  # what the reader sees: the newest turn above the composer

    page.set_viewport_size({"width": 390, "height": 844})
    both_themes("chat-phone", full_page=False)
    # Nothing wider than the phone's screen: the page never scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1920, "height": 1080})
    both_themes("chat-wide", full_page=False)


def test_keyboard_growing_composer_focus_and_live_region(page, live_server):
    sign_up(page, live_server, "grace")
    hint = page.locator("#composer-hint")
    expect(hint).to_contain_text("Enter sends · Shift+Enter adds a line · Esc stops a reply")
    box = page.get_by_label("Message")
    expect(box).to_have_attribute("aria-describedby", "composer-hint")
    expect(box).to_be_focused()
    height = box.bounding_box()["height"]
    box.type("line one")
    for n in ("two", "three", "four"):
        box.press("Shift+Enter")
        box.type(f"line {n}")
    assert box.input_value() == "line one\nline two\nline three\nline four"
    assert page.locator(".message").count() == 0  # Shift+Enter did not send
    assert box.bounding_box()["height"] > height + 30  # the composer grew with its text

    # Focus is visible on every control reached by keyboard.
    box.press("Tab")
    focused = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert page.evaluate("document.activeElement.value") == "Send" and focused != "none"

    box.fill(" ".join(f"k{i}" for i in range(80)))
    box.press("Enter")
    reply = page.locator(".message.assistant")
    # The reply streams inside a polite live region (the page's log of messages).
    expect(
        page.locator("[role=log][aria-live=polite] .message.assistant[aria-busy=true] .content.streaming")
    ).to_have_count(1, timeout=LONG)
    expect(reply.locator(".content")).to_contain_text("k3 ", timeout=LONG)
    page.keyboard.press("Escape")
    expect(reply).to_have_attribute("data-status", "cancelled", timeout=LONG)
    expect(reply.locator(".state")).to_have_text("Stopped.")
    assert "k79" not in reply.locator(".content").inner_text()
    expect(reply).not_to_have_attribute("aria-busy", "true")


# Records, on every change, the scroll position and where an earlier message sits on the screen.
RECORD_POSITIONS = """
window.__positions = [];
new MutationObserver(() => {
  const anchor = document.querySelector(".message.user");
  window.__positions.push([Math.round(window.scrollY), Math.round(anchor.getBoundingClientRect().top)]);
}).observe(document.querySelector(".messages"), {childList: true, subtree: true, characterData: true});
"""


def test_streaming_follows_at_the_bottom_and_never_jumps_a_reader_who_scrolled_up(page, live_server):
    page.set_viewport_size({"width": 1280, "height": 640})
    sign_up(page, live_server, "linus")
    wait_done(send(page, "\n".join(f"line-{i}" for i in range(40))))  # a tall page
    reply = send(page, " ".join(f"j{i}" for i in range(90)))
    expect(reply.locator(".content")).to_contain_text("j8 ", timeout=LONG)
    # At the bottom, the page follows the newest text.
    assert page.evaluate("innerHeight + scrollY >= document.documentElement.scrollHeight - 100")
    page.evaluate("window.scrollTo(0, 300)")
    page.evaluate(RECORD_POSITIONS)
    wait_done(reply)
    expect(reply.locator(".content.markdown")).to_contain_text("j89")
    positions = page.evaluate("window.__positions")
    assert len(positions) > 10, positions
    assert set(map(tuple, positions)) == {(300, positions[0][1])}, positions  # nothing moved while it streamed
    assert page.evaluate("Math.round(scrollY)") == 300


RECORD_STATES = """
window.__states = [];
document.addEventListener("DOMContentLoaded", () => {
  new MutationObserver(() => {
    const reply = document.querySelector(".message.assistant");
    if (!reply) return;
    const state = reply.querySelector(".state").textContent.trim();
    const text = reply.querySelector(".content").textContent.trim();
    const last = window.__states[window.__states.length - 1];
    const entry = text ? "text" : state;
    if (entry !== last) window.__states.push(entry);
  }).observe(document.body, {childList: true, subtree: true, characterData: true});
});
"""


def test_status_shows_queue_position_then_thinking_then_the_text(page, web_server, start_worker, app):
    from webapp.extensions import db
    from webapp.models import Generation

    page.add_init_script(RECORD_STATES)
    sign_up(page, web_server, "barbara")
    reply = send(page, "is anyone there?")  # no worker yet: it waits in the queue
    expect(reply.locator(".state")).to_have_text("Waiting in the queue (position 1)…", timeout=LONG)

    def set_status(status):
        with app.app_context():
            generation = db.session.scalars(db.select(Generation)).one()
            generation.status = status
            db.session.commit()

    set_status("running")  # a worker took it and the model has not written yet
    expect(reply.locator(".state")).to_have_text("Thinking…", timeout=LONG)
    expect(reply).to_have_attribute("data-status", "running")
    set_status("queued")
    start_worker()
    wait_done(reply)
    expect(reply.locator(".content")).to_contain_text("is anyone there?")
    states = page.evaluate("window.__states")
    assert "Thinking…" in states[: states.index("text")], states
