"""The interface itself: code blocks (language, copy), keyboard, the growing composer, live region, no jumping
while a reply streams, times and usage on replies, phone width; screenshots in both themes."""
import re

from playwright.sync_api import expect

from tests.browser.helpers import LONG, send, sign_up, wait_done

RICH = """Here is a **short** answer with a list and some code:

- first point
- second point with `inline code`

```python
def greet(name):
    return f"hello {name}"
```

| model | speed |
| --- | --- |
| echo | fast |"""


def test_code_blocks_copy_and_reply_details(page, live_server, both_themes):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(live_server + "/")
    both_themes("login")
    page.get_by_role("link", name="Sign up").last.click()
    both_themes("signup")
    sign_up(page, live_server, "ada")
    both_themes("chat-empty")

    reply = send(page, RICH)
    wait_done(reply)
    block = reply.locator(".code-block")
    expect(block).to_have_count(1)
    expect(block.locator(".code-lang")).to_have_text("python")
    expect(block.locator("pre > code.language-python")).to_contain_text("def greet(name):")
    block.get_by_role("button", name="Copy python code").click()
    expect(block.locator("button.copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == 'def greet(name):\n    return f"hello {name}"\n'
    expect(block.locator("button.copy")).to_have_text("Copy", timeout=LONG)

    # Each reply says which model answered, when, and the tokens it used; the user's turn has its time.
    expect(reply.locator(".model-name")).to_have_text("echo")
    expect(reply.locator(".role time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"))
    expect(reply.locator(".role time")).not_to_contain_text("UTC")  # shown in the reader's time zone
    expect(reply.locator(".usage")).to_have_text(re.compile(r"^\d+ in · \d+ out tokens$"))
    expect(page.locator(".message.user .role time")).to_have_count(1)
    page.mouse.move(0, 0)
    both_themes("chat", full_page=False)  # what the reader sees: the newest turn above the composer

    page.set_viewport_size({"width": 390, "height": 844})
    both_themes("chat-phone", full_page=False)
    # Nothing wider than the phone's screen: the page never scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1920, "height": 1080})
    both_themes("chat-wide", full_page=False)
