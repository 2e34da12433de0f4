"""No page is wider than a 390 px phone screen: every page a user or an admin can open, in both themes."""

from playwright.sync_api import expect

from tests.support.browser import LONG, send, sign_in, wait_done

WIDTH = 390
# What sticks out past the right edge, for the failure message.
OVERFLOW = """() => ({
  scrollWidth: document.documentElement.scrollWidth,
  innerWidth: window.innerWidth,
  culprits: Array.from(document.querySelectorAll("body *")).filter((el) => {
    const box = el.getBoundingClientRect();
    return box.right > window.innerWidth + 0.5 && box.width > 0;
  }).slice(0, 5).map((el) => el.tagName + "." + el.className + " right=" + Math.round(el.getBoundingClientRect().right)),
})"""


def check(page, where):
    measured = page.evaluate(OVERFLOW)
    assert measured["scrollWidth"] <= measured["innerWidth"], f"{where}: {measured}"


def test_no_page_overflows_390_px(browser, live_server, make_user):
    make_user("root", role="admin")
    make_user("someone")
    context = browser.new_context(viewport={"width": WIDTH, "height": 844})
    page = context.new_page()
    try:
        page.goto(live_server + "/auth/login")
        check(page, "sign in")
        page.goto(live_server + "/auth/signup")
        check(page, "sign up")
        sign_in(page, live_server, "root")
        check(page, "new chat")
        wait_done(
            send(page, "A long line without spaces: " + "x" * 200 + "\n```python\nprint('" + "y" * 150 + "')\n```")
        )
        chat = page.url.split("#")[0]
        page.locator(".message.user").first.get_by_role("link", name="Edit this message").click()
        page.get_by_label("Edit message").fill("edited")
        page.get_by_role("button", name="Save and send").click()
        wait_done(page.locator(".message.assistant").last)
        edit_link = page.locator(".message.user a.edit-link").first.get_attribute("href")
        user_page = None
        pages = [
            chat,
            chat + "/rename",
            chat + "/delete",
            live_server + edit_link,
            live_server + "/settings/api-keys",
            live_server + "/settings/sessions",
            live_server + "/settings/models/",
            live_server + "/api/docs",
            live_server + "/admin/",
            live_server + "/admin/providers",
            live_server + "/admin/models",
            live_server + "/admin/users",
            live_server + "/admin/usage",
            live_server + "/admin/audit",
        ]
        for url in pages:
            page.goto(url)
            expect(page.locator("main")).to_be_visible(timeout=LONG)
            for scheme in ("light", "dark"):
                page.emulate_media(color_scheme=scheme)
                check(page, f"{url} ({scheme})")
            if url.endswith("/admin/users"):
                user_page = page.get_by_role("link", name="someone").first.get_attribute("href")
        page.goto(live_server + user_page)
        check(page, "admin user page")
        # The open settings and rename panels of a conversation too.
        page.goto(chat)
        page.locator("details.settings summary").click()
        check(page, "conversation settings")
        page.locator("summary", has_text="Rename").click()
        check(page, "rename panel")
    finally:
        context.close()
