"""The page follows a reply over server-sent events, and over the status endpoint when EventSource is missing."""

from playwright.sync_api import expect

from tests.support.browser import LONG, send, sign_up, wait_done

MESSAGE = "Please repeat these words back to me slowly, one small piece at a time, so they stream."


def follow_reply(page, base, name):
    """Send a message and watch its reply stream to the end; returns the follow URLs the page asked."""
    asked = []
    page.on("request", lambda request: asked.append(request.url))
    sign_up(page, base, name)
    reply = send(page, MESSAGE)
    # Part of the text is on the page while the reply is still running: it streams, not swapped in at the end.
    expect(reply).to_have_attribute("data-status", "running", timeout=LONG)
    expect(reply.locator(".content")).not_to_have_text("", timeout=LONG)
    partial = reply.locator(".content").text_content()
    wait_done(reply)
    final = page.locator(".message.assistant").last
    expect(final.locator(".content")).to_contain_text("slowly, one small piece", timeout=LONG)
    assert len(partial) < len(final.locator(".content").text_content())
    return [url for url in asked if "/chat/generations/" in url], reply


def test_the_page_streams_over_event_source(page, live_server):
    urls, reply = follow_reply(page, live_server, "eve")
    assert any(url.split("?")[0].endswith("/events") for url in urls), urls
    assert not any("/status" in url for url in urls), urls


def test_without_event_source_the_page_polls_the_status_endpoint(page, live_server):
    page.add_init_script("delete window.EventSource")
    urls, reply = follow_reply(page, live_server, "paul")
    assert any("/status?cursor=" in url for url in urls), urls
    assert not any(url.split("?")[0].endswith("/events") for url in urls), urls
