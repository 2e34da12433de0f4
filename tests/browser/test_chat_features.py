"""Stop, regenerate, browse versions, rename, search and export in Chromium; the same flows with JavaScript off."""

from pathlib import Path

from playwright.sync_api import expect

from tests.support.browser import refreshes_until_done


def sign_up(page, base, name):
    page.goto(base + "/auth/signup")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password", exact=True).fill("correct horse battery")
    page.get_by_label("Repeat password").fill("correct horse battery")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("Welcome to Switchboard.")).to_be_visible()


def test_stop_regenerate_versions_rename_search_export(page, live_server, screenshot, tmp_path):
    sign_up(page, live_server, "skyler")
    words = " ".join(f"w{i}" for i in range(80))  # about six seconds at the echo's pace
    page.get_by_label("Message").fill(words)
    page.get_by_role("button", name="Send").click()
    reply = page.locator(".message.assistant")
    expect(reply.locator(".content")).to_contain_text("w3 ", timeout=20_000)
    reply.get_by_role("button", name="Stop").click()
    expect(reply).to_have_attribute("data-status", "cancelled", timeout=10_000)
    expect(reply.locator(".state")).to_have_text("Stopped.")
    stopped_text = reply.locator(".content").inner_text()
    assert "w3" in stopped_text and "w79" not in stopped_text
    expect(page.locator("#chat-announcer")).to_have_text("Reply stopped.")
    screenshot("stopped")

    reply.get_by_role("button", name="Regenerate").click()
    reply = page.locator(".message.assistant")
    expect(reply).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(reply.locator(".content")).to_contain_text("w79")
    expect(reply.locator(".version-count")).to_have_text("2/2")
    reply.get_by_role("link", name="Previous version").click()
    expect(page.locator(".message.assistant .version-count")).to_have_text("1/2")
    expect(page.locator(".message.assistant .state")).to_have_text("Stopped.")

    page.locator("summary", has_text="Rename").click()
    page.locator("#rename-title").fill("Counting words")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("heading", name="Counting words")).to_be_visible()

    page.get_by_role("link", name="New chat").click()
    page.get_by_label("Message").fill("a different topic: otters")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".message.assistant")).to_have_attribute("data-status", "succeeded", timeout=20_000)
    page.get_by_label("Search conversations").fill("w42")
    page.get_by_role("button", name="Search").click()
    sidebar = page.locator(".conversations")
    expect(sidebar.get_by_role("link")).to_have_count(1)
    expect(sidebar).to_contain_text("Counting words")
    sidebar.get_by_role("link", name="Counting words").click()

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export Markdown").click()
    target = tmp_path / "export.md"
    download_info.value.save_as(target)
    exported = Path(target).read_text()
    assert exported.startswith("# Counting words") and "w79" in exported
    screenshot("features")


def test_the_same_flows_with_javascript_off(browser, live_server):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        sign_up(page, live_server, "marie")
        page.get_by_label("Message").fill("no script here, just forms")
        page.get_by_role("button", name="Send").click()
        # Chromium with scripting off follows the page's <noscript> meta refresh by itself.
        navigations = refreshes_until_done(page)
        assert navigations, "the page never refreshed itself"
        expect(page.locator(".message.assistant .content")).to_contain_text("no script here, just forms")
        # Without the script: no keyboard promises, a plain textarea, and the reply's details are still there.
        expect(page.locator(".composer-hint .js-only")).to_be_hidden()
        expect(page.locator(".composer-hint")).to_contain_text("Replies can be wrong")
        expect(page.get_by_label("Message")).to_have_attribute("rows", "3")
        expect(page.locator(".message.assistant .model-name")).to_have_text("echo")
        expect(page.locator(".message.assistant .role time")).to_contain_text("UTC")
        expect(page.locator(".message.assistant .usage")).to_contain_text("out tokens")
        page.get_by_role("button", name="Regenerate").click()
        refreshes_until_done(page)
        expect(page.locator(".message.assistant .version-count")).to_have_text("2/2")
        page.get_by_label("Message").fill(" ".join(f"n{i}" for i in range(80)))
        page.get_by_role("button", name="Send").click()
        page.locator(".message.assistant").last.get_by_role("button", name="Stop").click()
        expect(page.locator(".message.assistant").last.locator(".state")).to_have_text("Stopped.")
        page.get_by_role("link", name="Delete").click()
        expect(page.get_by_role("heading", name="Delete this conversation?")).to_be_visible()
        page.get_by_role("button", name="Delete conversation").click()
        expect(page.get_by_text("No conversations yet.")).to_be_visible()
    finally:
        context.close()
