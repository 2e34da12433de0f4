"""The composer in a conversation: with scripting it posts with fetch (static/composer.js, loaded on first use),
the page is never reloaded and the reply streams in place; a refusal shows beside the composer with the text
kept. Without scripting the form posts and the page refreshes itself until the reply is done."""

import pytest
from playwright.sync_api import expect

from tests.support.browser import LONG, refreshes_until_done, send, sign_up, wait_done

# Marks this page (a reload would lose it) and records the lengths the newest reply takes, to see it grow.
RECORD_GROWTH = """() => {
  window.__samePage = true;
  window.__lengths = [];
  new MutationObserver(() => {
    const replies = document.querySelectorAll(".message.assistant .content");
    if (replies.length) window.__lengths.push(replies[replies.length - 1].textContent.length);
  }).observe(document.querySelector("ol.messages"), {childList: true, subtree: true, characterData: true});
}"""


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_a_message_in_a_conversation(browser, live_server, javascript):
    context = browser.new_context(java_script_enabled=javascript)
    page = context.new_page()
    try:
        sign_up(page, live_server, f"composer{int(javascript)}")
        send(page, "the first message")  # a new chat: its own page
        if javascript:
            wait_done(page.locator(".message.assistant").last)
        else:
            refreshes_until_done(page)
        words = " ".join(f"piece{i}" for i in range(12))
        if javascript:
            page.evaluate(RECORD_GROWTH)
            reply = send(page, words)
            wait_done(reply)
            expect(reply.locator(".content")).to_contain_text(words)
            assert page.evaluate("window.__samePage") is True, "the page was reloaded"
            lengths = sorted({n for n in page.evaluate("window.__lengths") if n > 0})
            assert len(lengths) >= 3, f"the reply did not stream in place: {lengths}"
            # The next message goes the same way (a fresh one-time token came with the fragments).
            wait_done(send(page, "and a third"))
            assert page.evaluate("window.__samePage") is True, "the page was reloaded"
            expect(page.locator(".message.user .content")).to_have_text(["the first message", words, "and a third"])
            expect(page.locator("#latest")).to_have_count(1)
            expect(page.get_by_role("button", name="Regenerate")).to_have_count(1)  # the last reply's only
            page.reload()  # what was appended is what the server kept
            expect(page.locator(".message.user .content")).to_have_text(["the first message", words, "and a third"])
        else:
            page.get_by_label("Message").fill(words)
            page.get_by_role("button", name="Send").click()
            expect(page.locator(".message.user .content").last).to_have_text(words, timeout=LONG)
            refreshes_until_done(page)
            expect(page.locator(".message.assistant").last.locator(".content")).to_contain_text(words)
    finally:
        context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_a_message_too_long_is_refused_with_its_text_kept(browser, app, live_server, javascript):
    app.config["MAX_MESSAGE_CHARS"] = 40
    context = browser.new_context(java_script_enabled=javascript)
    page = context.new_page()
    try:
        sign_up(page, live_server, f"toolong{int(javascript)}")
        send(page, "short enough")
        if javascript:
            page.evaluate("() => { window.__samePage = true; }")
        too_long = "this message is much longer than forty characters"
        page.get_by_label("Message").fill(too_long)
        page.get_by_role("button", name="Send").click()
        error = page.locator(".composer .errors")  # the page's list of the field's errors, or the script's line
        expect(error).to_contain_text("40", timeout=LONG)
        expect(page.get_by_label("Message")).to_have_value(too_long)
        expect(page.locator(".message.user")).to_have_count(1)
        if javascript:
            assert page.evaluate("window.__samePage") is True, "the page was reloaded"
            page.get_by_label("Message").fill("now short")  # the composer still sends, the error goes
            page.get_by_role("button", name="Send").click()
            expect(page.locator(".message.user .content").last).to_have_text("now short", timeout=LONG)
            expect(error).to_have_count(0)
            assert page.evaluate("window.__samePage") is True, "the page was reloaded"
    finally:
        context.close()
