"""The sessions page in Chromium with scripting off: lists this browser and another, ends the other (that
browser is signed out on its next request), then signs out everywhere."""

import re

from playwright.sync_api import expect

from tests.support.browser import LONG, sign_in, unlabelled_controls

LAPTOP = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"
PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)


def test_sessions_page_ends_another_browser_and_signs_out_everywhere(browser, web_server, make_user):
    make_user("hopper")
    laptop_context = browser.new_context(java_script_enabled=False, user_agent=LAPTOP)
    phone_context = browser.new_context(user_agent=PHONE)
    try:
        laptop, phone = laptop_context.new_page(), phone_context.new_page()
        sign_in(phone, web_server, "hopper")
        sign_in(laptop, web_server, "hopper")

        laptop.goto(web_server + "/settings/api-keys")
        laptop.get_by_role("link", name="Sessions").click()
        expect(laptop.get_by_role("heading", name="Sessions", exact=True)).to_be_visible(timeout=LONG)
        rows = laptop.locator(".session-list li")
        expect(rows).to_have_count(2)
        this = rows.filter(has_text="this device")
        # Each row names the browser and system, not the raw user-agent (kept in the row's tooltip).
        expect(this).to_contain_text("Chrome on Linux")
        expect(this.locator(".agent")).to_have_attribute("title", LAPTOP)
        expect(rows.filter(has_text="Mobile Safari on iOS")).to_contain_text("127.0.0.1")
        expect(rows.filter(has_text="Mozilla/5.0")).to_have_count(0)
        assert unlabelled_controls(laptop) == []

        rows.filter(has_text="Mobile Safari on iOS").get_by_role("button", name="End").click()
        expect(laptop.get_by_text("That session is ended")).to_be_visible(timeout=LONG)
        expect(laptop.locator(".session-list li")).to_have_count(1)
        phone.goto(web_server + "/chat/")
        expect(phone).to_have_url(re.compile(r"/auth/login"), timeout=LONG)

        laptop.get_by_role("button", name="Sign out everywhere").click()
        expect(laptop.get_by_text("Signed out everywhere")).to_be_visible(timeout=LONG)
        laptop.goto(web_server + "/chat/")
        expect(laptop).to_have_url(re.compile(r"/auth/login"), timeout=LONG)
    finally:
        laptop_context.close()
        phone_context.close()
