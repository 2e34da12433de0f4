"""Sharing in Chromium: the owner makes a link from the Share menu; a colleague reads it with scripting off
and continues it in their own chats; the owner's list marks the chat and the Shared links page revokes it."""

import re

from playwright.sync_api import expect

from tests.support.browser import LONG, send, sign_in, wait_done


def test_share_read_without_scripting_continue_and_revoke(browser, page, live_server, make_user, both_themes):
    make_user("grace")
    make_user("linus")
    sign_in(page, live_server, "grace")
    wait_done(send(page, "Plan the **launch**"))
    page.locator("details.share summary").click()
    page.get_by_role("button", name="Create share link").click()
    expect(page.get_by_text("Share link ready")).to_be_visible(timeout=LONG)
    link = page.locator("#share-url").input_value()
    expect(page.locator(".conversations .shared-marker")).to_have_count(1)

    reader = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 800})
    other = reader.new_page()
    other.goto(link)
    expect(other).to_have_url(re.compile(r"/auth/login\?next="))
    sign_in(other, live_server, "linus")
    other.goto(link)
    expect(other.locator(".shared-by")).to_contain_text("Shared by grace")
    expect(other.locator(".message.assistant .content strong")).to_have_text("launch")
    expect(other.locator("textarea")).to_have_count(0)
    for scheme in ("light", "dark"):
        other.emulate_media(color_scheme=scheme)
        other.screenshot(path=f"test-artifacts/shared-390-{scheme}.png", full_page=True)
    other.get_by_role("button", name="Continue in my chats").click()
    expect(other.locator(".thread-title")).to_have_text("Plan the launch")
    expect(other.locator(".message.user .content")).to_have_text("Plan the **launch**")
    reader.close()

    page.goto(live_server + "/share/")
    both_themes("shared-links")
    page.get_by_role("button", name=re.compile("Revoke")).click()
    expect(page.get_by_text("no longer opens")).to_be_visible()
    assert page.goto(link).status == 404
