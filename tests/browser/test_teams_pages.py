"""Groups and usage in Chromium at 390 px, in both themes: an admin makes a group, adds a member and
sets its models and budgets; the member reads the Usage page from the account menu, also with scripting off."""

from playwright.sync_api import expect

from tests.browser.test_narrow_screens import check
from tests.support.browser import ARTIFACTS, LONG, account_menu, sign_in, unlabelled_controls
from webapp import groups, site_settings
from webapp.extensions import db
from webapp.models import Group, UsageRecord, User, utcnow

PHONE = {"width": 390, "height": 844}
XSS_NAME = "<img src=x onerror=alert('group')>"


def spent(app, username, model_id, output_tokens, cost):
    """A settled reply in the usage ledger (what the worker writes at settlement)."""
    with app.app_context():
        user = db.session.query(User).filter_by(username=username).one()
        db.session.add(
            UsageRecord(
                generation_id=10_000 + output_tokens,
                user_id=user.id,
                username=username,
                group_id=db.session.query(Group).filter_by(name="Research").one().id,
                group_name="Research",
                model_id=model_id,
                provider="openai",
                status="succeeded",
                input_tokens=100,
                output_tokens=output_tokens,
                cost=cost,
                created_at=utcnow(),
            )
        )
        db.session.commit()


def themes_fit(page, where, shot):
    """No wider than the phone in either theme; a screenshot of each (test-artifacts/SHOT-light.png, -dark)."""
    ARTIFACTS.mkdir(exist_ok=True)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        check(page, f"{where} ({scheme})")
        page.screenshot(path=str(ARTIFACTS / f"{shot}-{scheme}.png"), full_page=True)
    page.emulate_media(color_scheme="light")


def test_group_admin_and_usage_pages_at_390_px(browser, app, web_server, make_user):
    make_user("root", role="admin")
    make_user("riley")
    with app.app_context():
        site_settings.set_site(site_settings.MODEL_PRICES, {"echo": [0, 30]})
        groups.create_group(None, XSS_NAME)  # shown on the admin pages below, as text
        db.session.commit()
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        sign_in(page, web_server, "root")
        page.goto(web_server + "/admin/groups")
        expect(page.get_by_role("heading", name="Groups", level=1)).to_be_visible()
        page.get_by_label("Name").fill("Research")
        page.get_by_role("button", name="Create group").click()
        expect(page.get_by_role("heading", name="Research")).to_be_visible(timeout=LONG)
        page.get_by_label("Username").fill("riley")
        page.get_by_role("button", name="Add member").click()
        expect(page.locator("#members").get_by_role("link", name="riley")).to_be_visible(timeout=LONG)
        page.locator("#rules").get_by_label("gpt-4o-mini").check()
        page.get_by_label("Dollars per month, each member").fill("2.50")
        page.get_by_label("Dollars per month, the whole group").fill("40")
        page.get_by_role("button", name="Save rules").click()
        expect(page.get_by_text("Saved the rules of Research.")).to_be_visible(timeout=LONG)
        expect(page.get_by_label("Dollars per month, each member")).to_have_value("2.5")
        assert unlabelled_controls(page) == []
        themes_fit(page, "group page", "admin-group-390")
        page.goto(web_server + "/admin/groups")
        expect(page.locator("#groups")).to_contain_text("$40/month")
        expect(page.locator("#groups")).to_contain_text(XSS_NAME)  # a hostile name is shown as text
        themes_fit(page, "groups list", "admin-groups-390")
        page.locator("#members, #groups").get_by_role("link", name="Research").click()
        page.locator("#members").get_by_role("link", name="riley").click()
        expect(page.locator("#groups")).to_contain_text("primary")
        expect(page.locator("#effective-limits")).to_contain_text("$2.5 a month")
        themes_fit(page, "admin user page", "admin-user-groups-390")
        page.goto(web_server + "/admin/models#prices")
        themes_fit(page, "models page with prices", "admin-models-prices-390")
        page.goto(web_server + "/admin/usage")
        themes_fit(page, "admin usage", "admin-usage-groups-390")
        context.clear_cookies()

        with app.app_context():  # riley's second group (Research, joined first, stays the primary one)
            hostile = db.session.query(Group).filter_by(name=XSS_NAME).one()
            groups.add_member(None, hostile, db.session.query(User).filter_by(username="riley").one())
            db.session.commit()
        spent(app, "riley", "gpt-4o", 800, 0.75)
        sign_in(page, web_server, "riley")
        account_menu(page).get_by_role("link", name="Usage").click()
        expect(page.get_by_role("heading", name="Usage", level=1)).to_be_visible(timeout=LONG)
        expect(page.locator("#month-spend")).to_contain_text("$0.75 of $2.50")
        expect(page.locator("#pool-spend")).to_contain_text("Research")
        expect(page.locator("#pool-spend")).to_contain_text("$0.75 of $40.00")
        expect(page.locator("#by-model")).to_contain_text("gpt-4o")
        expect(page.locator("figure.chart svg rect.bar")).to_have_count(30)
        themes_fit(page, "usage page", "usage-390")
        expect(page.locator(".lede")).to_contain_text(XSS_NAME)
        assert dialogs == []
    finally:
        context.close()

    # With scripting off the page is whole: figures, table and chart come from the server.
    still = browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = still.new_page()
    try:
        sign_in(page, web_server, "riley")
        page.goto(web_server + "/settings/usage")
        expect(page.locator("#month-spend")).to_contain_text("$0.75 of $2.50")
        expect(page.locator("figure.chart svg rect.bar")).to_have_count(30)
        assert page.locator("figure.chart svg title").first.text_content().startswith("Tokens per day")
    finally:
        still.close()
