"""Every admin page for an admin, in both themes; rq-dashboard for an admin and refused to a user."""

import time

from playwright.sync_api import expect

from tests.support.browser import LONG, PASSWORD, sign_in, unlabelled_controls

SECTIONS = [  # (link in the admin menu, heading, screenshot name)
    ("Overview", "Admin", "admin"),
    ("Providers", "Providers", "admin-providers"),
    ("Models", "Models", "admin-models"),
    ("Users", "Users", "admin-users"),
    ("Usage", "Usage", "admin-usage"),
    ("Audit log", "Audit log", "admin-audit"),
]


def wait_for_worker(page, timeout=30.0):
    """The overview counts live workers: reload until the test's worker has registered."""
    deadline = time.monotonic() + timeout
    while page.locator("#workers").inner_text().strip() == "0":
        assert time.monotonic() < deadline, "the admin overview never saw the running worker"
        page.wait_for_timeout(1000)
        page.reload()


def test_every_admin_page(page, live_server, make_user, both_themes):
    make_user("root", role="admin")
    sign_in(page, live_server, "root")
    page.locator(".topbar").get_by_role("link", name="Admin").click()
    menu = page.get_by_role("navigation", name="Admin")
    for link, heading, shot in SECTIONS:
        menu.get_by_role("link", name=link, exact=True).click()
        expect(page.get_by_role("heading", name=heading, exact=True, level=1)).to_be_visible()
        if link == "Overview":
            wait_for_worker(page)
        expect(menu.get_by_role("link", name=link, exact=True)).to_have_attribute("aria-current", "page")
        assert unlabelled_controls(page) == [], link
        page.mouse.move(0, 0)
        both_themes(shot)

    # An action on a page, visible on another: create a user, open it, find it in the audit log.
    menu.get_by_role("link", name="Users", exact=True).click()
    form = page.locator("form", has=page.get_by_role("button", name="Create user"))
    form.get_by_label("Username").fill("newbie")
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Create user").click()
    expect(page.get_by_text("Created newbie.")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text("newbie")  # the new user's page
    both_themes("admin-user")
    menu.get_by_role("link", name="Audit log", exact=True).click()
    expect(page.locator("table.audit")).to_contain_text("newbie")


def test_rq_dashboard_for_admins_only(browser, live_server, make_user):
    make_user("root", role="admin")
    make_user("plain")
    for name, allowed in (("root", True), ("plain", False)):
        context = browser.new_context()
        page = context.new_page()
        try:
            sign_in(page, live_server, name)
            response = page.goto(live_server + "/admin/rq/")
            if allowed:
                assert response.status == 200
                expect(page.get_by_text("Queues", exact=False).first).to_be_visible(timeout=LONG)
                expect(page.get_by_text("RQ-dashboard").first).to_be_visible()
            else:
                assert response.status == 403
                expect(page.get_by_role("heading", level=1)).to_contain_text("403")
                assert page.goto(live_server + "/admin/").status == 403
                expect(page.locator(".topbar").get_by_role("link", name="Admin")).to_have_count(0)
        finally:
            context.close()
