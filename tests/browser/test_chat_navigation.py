"""The chat page's frame: the title bar stays in view while the thread scrolls, and the sidebar groups chats
by date, each with a Rename / Export / Delete menu that works with scripting off. 390 px and both themes."""

from datetime import timedelta

from playwright.sync_api import expect

from tests.support.browser import LONG, send, shoot_both_themes, sign_in, sign_up, wait_done

PHONE = {"width": 390, "height": 844}
# Where the title bar is, and whether it is the element actually drawn at its centre (nothing covers it).
TITLE_BAR = """() => {
  const bar = document.querySelector(".thread-header"), box = bar.getBoundingClientRect();
  const topbar = document.querySelector(".topbar").getBoundingClientRect();
  const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
  return { top: Math.round(box.top), bottom: Math.round(box.bottom), topbar: Math.round(topbar.bottom),
           onTop: bar.contains(hit), scrolled: Math.round(window.scrollY) };
}"""


def age(app, title, days):
    from webapp.extensions import db
    from webapp.models import Conversation, utcnow

    with app.app_context():
        conversation = db.session.query(Conversation).filter_by(title=title).one()
        conversation.updated_at = utcnow() - timedelta(days=days)
        db.session.commit()


def test_title_bar_stays_in_view_while_the_thread_scrolls(browser, live_server):
    for name, viewport in (("desktop", {"width": 1280, "height": 720}), ("phone", PHONE)):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        try:
            sign_up(page, live_server, f"scroller{name}")
            wait_done(send(page, "A long message\n\n" + "\n\n".join(f"line {i}" for i in range(40))))
            page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight / 2)")
            page.wait_for_function("window.scrollY > 300")
            bar = page.evaluate(TITLE_BAR)
            assert bar["top"] == bar["topbar"] and bar["onTop"], bar
            expect(page.locator(".thread-header").get_by_role("link", name="Delete")).to_be_in_viewport()
            expect(page.locator(".thread-header summary", has_text="Rename")).to_be_in_viewport()
            shoot_both_themes(page, f"title-bar-scrolled-{name}")
        finally:
            context.close()


def test_sidebar_groups_by_date_and_menus_work_without_javascript(browser, live_server, app, tmp_path):
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        sign_up(page, live_server, "organiser")
        for title in ("old chat", "last week chat", "yesterday chat", "today chat"):
            page.goto(live_server + "/chat/")
            wait_done(send(page, title))
    finally:
        context.close()
    age(app, "old chat", 40)
    age(app, "last week chat", 4)
    age(app, "yesterday chat", 1)

    context = browser.new_context(java_script_enabled=False, viewport=PHONE)
    page = context.new_page()
    try:
        sign_in(page, live_server, "organiser")
        page.goto(live_server + "/chat/")
        sidebar = page.locator(".conversations")
        expect(sidebar.locator(".chat-group")).to_have_text(["Today", "Yesterday", "Previous 7 days", "Older"])
        expect(sidebar.locator("li > a")).to_have_text(["today chat", "yesterday chat", "last week chat", "old chat"])
        expect(sidebar.get_by_role("link", name="Rename")).to_have_count(0)  # menus start closed

        item = sidebar.locator("li", has_text="old chat")
        item.get_by_label("Actions").click()
        menu = item.locator(".menu")
        expect(menu.get_by_role("link")).to_have_text(["Rename", "Export", "Delete"])
        expect(menu).to_be_in_viewport()
        shoot_both_themes(page, "sidebar-menu-390")

        with page.expect_download() as download:
            menu.get_by_role("link", name="Export").click()
        target = tmp_path / "old.md"
        download.value.save_as(target)
        assert "old chat" in target.read_text()

        menu.get_by_role("link", name="Rename").click()
        page.get_by_label("Title").fill("renamed old chat")
        page.get_by_role("button", name="Rename").click()
        expect(page.locator(".thread-title")).to_have_text("renamed old chat", timeout=LONG)

        item = page.locator(".conversations li", has_text="yesterday chat")
        item.get_by_label("Actions").click()
        item.get_by_role("link", name="Delete").click()
        page.get_by_role("button", name="Delete conversation").click()
        expect(page.get_by_text("Deleted “yesterday chat”.")).to_be_visible(timeout=LONG)
        expect(page.locator(".conversations .chat-group")).to_have_text(["Today", "Previous 7 days", "Older"])
        expect(page.locator(".conversations li > a")).to_have_text(["today chat", "last week chat", "renamed old chat"])
    finally:
        context.close()

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        sign_in(page, live_server, "organiser")
        page.goto(live_server + "/chat/")
        item = page.locator(".conversations li", has_text="last week chat")
        item.get_by_label("Actions").click()
        expect(item.locator(".menu")).to_be_in_viewport()
        shoot_both_themes(page, "sidebar-menu-desktop")
    finally:
        context.close()
