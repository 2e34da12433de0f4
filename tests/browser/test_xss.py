"""A corpus of XSS payloads sent as messages, echoed back by a model, used as a title, a search and a system
prompt, and seen again on the conversation's shared page: nothing runs."""

from playwright.sync_api import expect

from tests.support.browser import LONG, send, sign_up, wait_done

PAYLOADS = [
    "<script>window.__xss = 1</script>",
    "<img src=x onerror=\"window.__xss = 1; alert('img')\">",
    "<svg onload=alert('svg')>",
    "<svg><script>window.__xss = 1</script></svg>",
    '<iframe srcdoc="<script>parent.__xss = 1</script>"></iframe>',
    "\"><script>document.title = 'pwned'</script>",
    "'><img src=x onerror=alert('quote')>",
    '<a href="javascript:window.__xss = 1">plain link</a>',
    "[markdown link](javascript:alert('md'))",
    "[entity link](&#106;avascript:alert('entity'))",
    "![image](x\" onerror=\"alert('imgmd'))",
    "<details open ontoggle=alert('details')>",
    "<body onload=alert('body')>",
    "<input autofocus onfocus=alert('focus')>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert('mxss')>",
    "<style>body { display: none }</style>",
    "<object data=\"javascript:alert('object')\"></object>",
    "<base href=\"javascript:alert('base')//\">",
    "<form action=\"javascript:alert('form')\"><button>go</button></form>",
    "`<script>alert('code')</script>`",
    "{{7*7}} ${7*7} <%= 7*7 %>",
]

WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""


def test_xss_payloads_in_messages_replies_titles_and_search_never_run(page, live_server):
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.add_init_script(WATCH)
    sign_up(page, live_server, "mallory")
    corpus = "\n\n".join(PAYLOADS)
    fenced = "Code:\n```html\n" + "\n".join(PAYLOADS[:6]) + "\n```"
    reply = send(page, corpus)  # watched while it streams in as text, then as rendered Markdown
    wait_done(reply)
    title = page.title()
    reply = send(page, fenced)
    wait_done(reply)
    expect(reply.locator(".code-lang")).to_have_text("html")
    reply.locator(".code-block button.copy").click()

    # The page shows the payloads as text, as written.
    expect(page.locator(".message.user .content").first).to_have_text(corpus)
    expect(page.locator(".message.assistant .content").first).to_contain_text("<script>window.__xss = 1</script>")
    expect(page.locator(".message.assistant .content").first).to_contain_text("<svg onload=alert('svg')>")

    # The same pages rendered by the server, a payload as the conversation title, and as a search.
    page.reload()
    page.locator("summary", has_text="Rename").click()
    page.locator("#rename-title").fill(PAYLOADS[5])
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(PAYLOADS[5])
    title, conversation_url = page.title(), page.url
    assert title == PAYLOADS[5] + " · Switchboard"
    page.get_by_label("Search conversations").fill(PAYLOADS[1])
    page.get_by_role("button", name="Search").click()
    expect(page.locator(".search-note")).to_contain_text(PAYLOADS[1])
    page.goto(page.url.split("/chat/")[0] + "/chat/?q=" + "%3Cscript%3Ewindow.__xss%3D1%3C%2Fscript%3E")
    expect(page.get_by_label("Search conversations")).to_have_value("<script>window.__xss=1</script>")
    page.goto(conversation_url)
    expect(page.locator(".message.assistant .code-block")).to_have_count(1)

    # The same conversation on its shared page (title, messages, replies and a system prompt as payloads).
    page.locator("details.settings summary").click()
    page.get_by_label("System prompt").fill(PAYLOADS[1])
    page.get_by_role("button", name="Save settings").click()
    page.locator("details.share summary").click()
    page.get_by_label("Include the instructions to the model").check()
    page.get_by_role("button", name="Create share link").click()
    page.goto(page.locator("#share-url").input_value())
    expect(page.locator(".shared-system .content")).to_have_text(PAYLOADS[1])
    expect(page.locator(".message.user .content").first).to_have_text(corpus)
    expect(page.get_by_role("heading", level=1)).to_have_text(PAYLOADS[5])
    shared_url = page.url
    page.goto(shared_url.split("/s/")[0] + "/share/")  # the owner's Shared links page lists it by title
    expect(page.locator(".shared-links strong a")).to_have_text(PAYLOADS[5])
    assert page.title() == "Shared links · Switchboard" and page.evaluate("window.__csp") == []
    page.goto(shared_url)
    page.wait_for_timeout(500)  # give anything that managed to get in a moment to run

    assert dialogs == []
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.title() == title != "pwned"  # the title payload is shown as text, never run
    assert page.evaluate("window.__csp") == []  # nothing even tried to run and was blocked
    expect(page.locator("body")).to_be_visible(timeout=LONG)


def test_xss_payloads_as_file_names_never_run(page, live_server):
    """File names in the composer's previews (the script), on the sent message and after a reload (the server)."""
    from tests.support.files import pdf, png

    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.add_init_script(WATCH)
    sign_up(page, live_server, "mallory")
    names = [PAYLOADS[1] + ".png", PAYLOADS[2] + ".pdf", PAYLOADS[6] + ".pdf"]  # no "/": a name is not a path
    files = [{"name": names[0], "mimeType": "image/png", "buffer": png(9, 9)}]
    files += [{"name": name, "mimeType": "application/pdf", "buffer": pdf("x")} for name in names[1:]]
    page.locator("#attachments").set_input_files(files)
    expect(page.locator(".attach-previews li")).to_have_count(3)
    expect(page.locator(".attach-previews")).to_contain_text(PAYLOADS[2])
    reply = send(page, "files with odd names")
    wait_done(reply)
    page.reload()
    expect(page.locator(".message.user .attachments li")).to_have_count(3)
    expect(page.locator(".message.user .attachments")).to_contain_text(PAYLOADS[6])
    page.wait_for_timeout(300)  # give anything that managed to get in a moment to run
    assert dialogs == []
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.title() != "pwned"
    assert page.evaluate("window.__csp") == []
