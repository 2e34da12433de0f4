"""Replies look finished: code coloured by language under a bar naming it (with Copy), math typeset as MathML,
at 390 px, in both themes, and with scripting off (everything but Copy comes from the server)."""

from playwright.sync_api import expect

from tests.support.browser import ARTIFACTS, LONG, send, sign_in, sign_up, wait_done

REPLY = (
    "Here is the function:\n\n```python\ndef area(radius):\n    # the circle's area\n    return 3.14159 * radius ** 2\n```\n\n"
    "Inline math $e^{i\\pi} + 1 = 0$ and \\(a^2 + b^2 = c^2\\), a price of $5, and on its own:\n\n"
    "$$\n\\int_0^1 x^2\\,dx = \\frac{1}{3}\n$$"
)
# The colour of a keyword and of plain text in the same block, and the size the browser gave the math.
MEASURE = """() => {
  const block = document.querySelector(".message.assistant .code-block");
  const keyword = block.querySelector(".tok-k"), plain = block.querySelector("code");
  const inline = document.querySelector(".message.assistant p math"), display = document.querySelector(".math-block math");
  const box = (el) => { const r = el.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; };
  return { keyword: getComputedStyle(keyword).color, plain: getComputedStyle(plain).color,
           background: getComputedStyle(block).backgroundColor, inline: box(inline), display: box(display),
           fraction: box(display.querySelector("mfrac")), wide: document.documentElement.scrollWidth > innerWidth };
}"""


def shoot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    measured = {}
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.locator(".math-block").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"{name}-{scheme}.png"))
        measured[scheme] = page.evaluate(MEASURE)
    page.emulate_media(color_scheme="light")
    return measured


def check(measured):
    for scheme, m in measured.items():
        assert m["keyword"] != m["plain"], (scheme, m)  # coloured, not just monospaced
        assert m["inline"][0] > 20 and m["inline"][1] > 8, (scheme, m)  # typeset, not raw TeX hidden or empty
        assert m["display"][0] > 60 and m["fraction"][1] > m["inline"][1] * 0.9, (scheme, m)  # 1 over 3, stacked
        assert not m["wide"], (scheme, m)
    assert measured["light"]["keyword"] != measured["dark"]["keyword"]
    assert measured["light"]["background"] != measured["dark"]["background"]


def test_code_and_math_at_390_px_in_both_themes_with_and_without_script(browser, live_server):
    phone = {"viewport": {"width": 390, "height": 844}}
    context = browser.new_context(**phone)
    page = context.new_page()
    try:
        sign_up(page, live_server, "typesetter")
        reply = send(page, REPLY)
        wait_done(reply)
        expect(reply.locator(".code-lang")).to_have_text("python")
        expect(reply.locator(".content")).to_contain_text("a price of $5, and")
        expect(reply.locator(".math-error")).to_have_count(0)
        check(shoot(page, "rich-reply-390"))
        copy = reply.locator(".code-bar button.copy")
        expect(copy).to_have_accessible_name("Copy python code")
        copy.click()
        expect(copy).to_have_text("Copied", timeout=LONG)
        chat = page.url.split("#")[0]
    finally:
        context.close()

    context = browser.new_context(java_script_enabled=False, **phone)
    page = context.new_page()
    try:
        sign_in(page, live_server, "typesetter")
        page.goto(chat)
        reply = page.locator(".message.assistant").last
        expect(reply.locator(".code-lang")).to_have_text("python")
        expect(reply.locator("button.copy")).to_have_count(0)  # Copy needs the script; the rest is the server's
        check(shoot(page, "rich-reply-390-noscript"))
    finally:
        context.close()
