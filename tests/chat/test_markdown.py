"""Replies render as Markdown, sanitized: no HTML or script from a model or a user can run."""

from html.parser import HTMLParser

import pytest

from tests.support.chat import latest_generation, start_chat
from webapp.markdown import ALLOWED_TAGS, render_markdown

XSS_CORPUS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)><circle r=1 /></svg>",
    "<body onload=alert(1)>",
    '<a href="javascript:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](&#x6A;&#x61;vascript:alert(1))",
    "[click]( javascript:alert(1) )",
    "[click](<javascript:alert(1)>)",
    "[click](java\tscript:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](vbscript:msgbox(1))",
    "![x](javascript:alert(1))",
    "![x](https://evil.example/track.png)",
    '[ok](https://ok.example "t\\" onmouseover=\\"alert(1)")',
    "[ref]\n\n[ref]: javascript:alert(1)",
    "<javascript:alert(1)>",
    '<iframe src="https://evil.example"></iframe>',
    "<style>body{display:none}</style>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<details open ontoggle=alert(1)>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<!-- --><script>alert(1)</script>",
    '<object data="x"></object><embed src="x">',
    '<form action="https://evil.example"><input name=x><button>go</button></form>',
    '<base href="https://evil.example/">',
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    '<a href="https://ok.example" onclick="alert(1)">ok</a>',
    "`<script>alert(1)</script>`",
    "```html\n<script>alert(1)</script>\n```",
    '```"><script>alert(1)</script>\ncode\n```',
    "| a | b |\n|---|---|\n| <script>alert(1)</script> | <img src=x onerror=alert(1)> |",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "<a href='\x01javascript:alert(1)'>x</a>",
    '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<template><script>alert(1)</script></template>",
]
SAFE_SCHEMES = ("http://", "https://", "mailto:")


class Audit(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.problems = set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            value = (value or "").strip().lower()
            if name.startswith("on") or name in ("style", "src", "srcdoc", "formaction", "xlink:href"):
                self.problems.append(f"<{tag} {name}>")
            if name == "href" and ":" in value.split("/")[0] and not value.startswith(SAFE_SCHEMES):
                self.problems.append(f"<{tag} href={value}>")


def audit(html):
    parser = Audit()
    parser.feed(str(html))
    parser.close()
    return parser


@pytest.mark.parametrize("payload", XSS_CORPUS)
def test_xss_payload_renders_harmless(payload):
    html = str(render_markdown(payload))
    result = audit(html)
    assert result.tags <= ALLOWED_TAGS, (payload, html)
    assert not result.problems, (payload, html)
    assert "<script" not in html.lower()


def test_markdown_features_survive():
    html = str(
        render_markdown(
            "# Title\n\n**bold** _em_ ~~gone~~ `code`\n\n- one\n- two\n\n1. first\n\n"
            "```python\nprint('<hi>')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n> quote\n\n[site](https://example.com)"
        )
    )
    for fragment in (
        "<h1>Title</h1>",
        "<strong>bold</strong>",
        "<em>em</em>",
        "<s>gone</s>",
        "<code>code</code>",
        "<li>one</li>",
        "<ol>",
        '<code class="language-python">',
        '<span class="tok-nb">print</span>',
        "'&lt;hi&gt;'",
        "<table>",
        "<td>1</td>",
        "<blockquote>",
        '<a href="https://example.com" rel="noopener noreferrer nofollow">site</a>',
    ):
        assert fragment in html, (fragment, html)


def test_a_reply_full_of_payloads_is_inert_on_the_page(client, auth, app, run_jobs):
    """The echo model repeats the payloads: the page and the fragment the script swaps in stay safe."""
    auth.signup()
    payload = "\n\n".join(XSS_CORPUS)
    conversation_id = start_chat(client, payload)
    run_jobs()
    generation = latest_generation(app)
    page = client.get(f"/chat/{conversation_id}").get_data(as_text=True)
    fragment = client.get(f"/chat/generations/{generation.id}/fragment").get_data(as_text=True)
    for html in (page, fragment):
        body = html.split('<ol class="messages">', 1)[-1].split('id="chat-announcer"', 1)[0]
        result = audit(body)
        assert "script" not in result.tags and "img" not in result.tags and "iframe" not in result.tags
        assert not result.problems, result.problems
    assert '<div class="content markdown">' in fragment
