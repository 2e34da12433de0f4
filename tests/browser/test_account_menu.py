"""The account menu in the top bar: Usage, API keys, Sessions, Theme and Sign out, working with scripting off,
at 390 px and on a desktop, in both themes."""

import re

from playwright.sync_api import expect

from tests.support.browser import LONG, account_menu, shoot_both_themes, sign_up

INSIDE = """() => { const box = document.querySelector(".account-menu .menu").getBoundingClientRect();
  return box.left >= 0 && box.right <= innerWidth && box.top >= 0 && box.bottom <= innerHeight; }"""


def test_account_menu_without_script_at_390_px_and_on_a_desktop(browser, web_server):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        sign_up(page, web_server, "ada")
        menu = account_menu(page)
        expect(menu.get_by_role("button", name="Sign out")).to_contain_text("ada")
        expect(menu.get_by_role("link")).to_have_text(["Usage", "API keys", "Sessions"])
        expect(menu.get_by_role("button")).to_have_text(["System", "Light", "Dark", "Sign out ada"])
        expect(menu.get_by_role("button", name="System", exact=True)).to_have_attribute("aria-pressed", "true")
        assert page.evaluate(INSIDE), "the open menu sticks out of a 390 px screen"
        shoot_both_themes(page, "account-menu-390")

        menu.get_by_role("link", name="Sessions").click()
        expect(page.get_by_role("heading", name="Sessions", exact=True)).to_be_visible(timeout=LONG)
        account_menu(page).get_by_role("button", name="Dark", exact=True).click()
        expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        expect(page.get_by_role("heading", name="Sessions", exact=True)).to_be_visible()  # back where it was
        expect(account_menu(page).get_by_role("button", name="Dark", exact=True)).to_have_attribute(
            "aria-pressed", "true"
        )
        account_menu(page).get_by_role("button", name="System", exact=True).click()
        expect(page.locator("html")).not_to_have_attribute("data-theme", re.compile("."))

        page.set_viewport_size({"width": 1280, "height": 720})
        account_menu(page)
        assert page.evaluate(INSIDE)
        shoot_both_themes(page, "account-menu-desktop")
        account_menu(page).get_by_role("button", name="Sign out").click()
        expect(page.get_by_text("You are signed out.")).to_be_visible(timeout=LONG)
    finally:
        context.close()
