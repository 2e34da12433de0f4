"""Small things that made pages look unfinished (issue 23 item 16), seen in Chromium at 390 px and in both themes."""

from playwright.sync_api import expect

from tests.support.browser import shoot_both_themes, sign_in, sign_up

PHONE = {"width": 390, "height": 844}
HEIGHTS = """() => Object.fromEntries(["a.new-chat", ".search input", ".search button", ".composer .send"].map(
  (selector) => [selector, Math.round(document.querySelector(selector).getBoundingClientRect().height)]))"""


def test_the_empty_new_chat_page_at_390_px_keeps_its_buttons_their_own_height(browser, web_server):
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        sign_up(page, web_server, "newcomer")
        page.goto(web_server + "/chat/")
        expect(page.get_by_role("heading", name="What shall we talk about?")).to_be_visible()
        heights = page.evaluate(HEIGHTS)
        assert all(24 <= height <= 48 for height in heights.values()), heights
        expect(page.get_by_label("Message")).to_be_in_viewport()
        shoot_both_themes(page, "new-chat-390")
    finally:
        context.close()


def test_a_new_api_key_has_a_copy_button(browser, web_server):
    context = browser.new_context(viewport=PHONE)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=web_server)
    page = context.new_page()
    try:
        sign_up(page, web_server, "keyholder")
        page.goto(web_server + "/settings/api-keys")
        page.get_by_label("Name").fill("scripts")
        page.get_by_role("button", name="Create key").click()
        key = page.locator("#new-key").inner_text()
        copy = page.locator(".new-key button")
        expect(copy).to_have_accessible_name("Copy")
        copy.click()
        expect(copy).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == key
        shoot_both_themes(page, "new-api-key-390")
    finally:
        context.close()


CHART = """() => {
  const card = document.querySelector("figure.chart"), svg = card.querySelector("svg");
  const padding = parseFloat(getComputedStyle(card).paddingLeft) + parseFloat(getComputedStyle(card).paddingRight);
  const labels = Array.from(svg.querySelectorAll("text")).filter((t) => /^\\d\\d-\\d\\d$/.test(t.textContent));
  const last = labels[labels.length - 1];
  return { svg: svg.getBoundingClientRect().width, inside: card.clientWidth - padding,
           last: last.textContent, lastRight: last.getBoundingClientRect().right, svgRight: svg.getBoundingClientRect().right };
}"""


def test_admin_usage_chart_fills_its_card_and_names_the_last_day(browser, web_server, make_user):
    from datetime import UTC, datetime

    make_user("root", role="admin")
    today = datetime.now(UTC).strftime("%m-%d")
    for viewport in ({"width": 1280, "height": 800}, PHONE):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        try:
            sign_in(page, web_server, "root")
            page.goto(web_server + "/admin/usage")
            chart = page.evaluate(CHART)
            assert abs(chart["svg"] - chart["inside"]) <= 1, chart
            assert chart["last"] == today and chart["lastRight"] <= chart["svgRight"] + 0.5, chart
            page.locator("figure.chart").scroll_into_view_if_needed()
            shoot_both_themes(page, f"admin-usage-chart-{viewport['width']}")
        finally:
            context.close()


def test_rq_dashboard_leads_back_to_the_admin_area_and_its_favicon_loads(page, web_server, make_user):
    make_user("root", role="admin")
    failed = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    sign_in(page, web_server, "root")
    page.goto(web_server + "/admin/rq/")
    back = page.get_by_role("link", name="Switchboard admin")
    expect(back).to_be_visible()
    icon = page.evaluate("fetch(document.querySelector('link[rel~=icon]').href).then((r) => [r.status, r.url])")
    assert icon[0] == 200 and icon[1].endswith("/static/icon.svg"), icon
    shoot_both_themes(page, "rq-dashboard-way-back")
    back.click()
    expect(page).to_have_url(web_server + "/admin/")
    assert failed == [], failed
