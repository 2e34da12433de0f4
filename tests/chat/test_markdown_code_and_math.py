"""Code is coloured by Pygments and math becomes MathML, both on the server and both through the same sanitizer."""

import re

import pytest

from tests.support.xss import XSS_CORPUS, audit
from webapp.markdown import ALLOWED_TAGS, render_markdown

# Payloads aimed at the highlighter and the math converter (latex2mathml copies \text and \href through as is).
CODE_AND_MATH_CORPUS = [
    "```python\n<script>alert(1)</script>\n```",
    '```"><img src=x onerror=alert(1)>\nx = 1\n```',
    "```javascript onload=alert(1)\nalert(1)\n```",
    "```html\n<img src=x onerror=alert(1)><!-- -->\n```",
    "$\\text{<script>alert(1)</script>}$",
    "$\\text{<img src=x onerror=alert(1)>}$",
    "$$\\text{</math><img src=x onerror=alert(1)>}$$",
    "$\\href{javascript:alert(1)}{click}$",
    "\\(\\href{javascript:alert(1)}{x}\\)",
    "\\[\n\\text{<svg onload=alert(1)>}\n\\]",
    "$\\mathrm{<iframe src=x>}$",
    "$\\color{red}{x}$ $\\style{background:url(x)}{y}$",
    "$\\frac{a}{$ and $\\begin{matrix}<script>$",
    "$\\text{&lt;script&gt;alert(1)&lt;/script&gt;}$",
]


@pytest.mark.parametrize("payload", XSS_CORPUS + CODE_AND_MATH_CORPUS)
def test_payload_stays_harmless_with_highlighting_and_math(payload):
    html = str(render_markdown(payload))
    result = audit(html)
    assert result.tags <= ALLOWED_TAGS, (payload, html)
    assert not result.problems, (payload, html)
    assert not re.search(r"<(script|img|iframe|svg|style)\b", html, re.IGNORECASE), (payload, html)
    for match in re.finditer(r'class="([^"]*)"', html):
        assert all(name.startswith(("tok-", "language-", "code-", "math-")) for name in match.group(1).split()), html


def test_code_is_coloured_by_language_under_a_bar_naming_it():
    html = str(render_markdown("```python\ndef greet(name):\n    return f'hi {name}'  # say hi\n```"))
    assert '<div class="code-block"><div class="code-bar"><span class="code-lang">python</span></div>' in html
    assert '<code class="language-python">' in html
    assert '<span class="tok-k">def</span>' in html
    assert '<span class="tok-nf">greet</span>' in html
    assert '<span class="tok-c1"># say hi</span>' in html


def test_code_in_an_unknown_or_no_language_is_shown_plain_and_escaped():
    unknown = str(render_markdown("```nosuchlanguage\nif a < b: pass\n```"))
    assert '<span class="code-lang">nosuchlanguage</span>' in unknown
    assert "if a &lt; b: pass" in unknown and "tok-" not in unknown
    plain = str(render_markdown("```\nplain <text>\n```"))
    assert '<span class="code-lang">text</span>' in plain and "<code>plain &lt;text&gt;\n</code>" in plain


def test_inline_display_and_bracket_math_become_mathml_with_their_source():
    html = str(
        render_markdown("Euler: $e^{i\\pi}+1=0$ and \\(a^2+b^2=c^2\\).\n\n$$\n\\frac{1}{2}\n$$\n\n\\[\n\\sqrt{x}\n\\]")
    )
    assert html.count('<math display="inline">') == 2
    assert html.count('<div class="math-block"><math display="block">') == 2
    assert (
        "<msup><mi>e</mi>" in html
        and "<mfrac><mrow><mn>1</mn></mrow><mrow><mn>2</mn></mrow></mfrac>" in html
        and "<msqrt>" in html
    )
    assert '<annotation encoding="application/x-tex">e^{i\\pi}+1=0</annotation>' in html


def test_dollars_as_money_and_code_stay_text():
    assert str(render_markdown("It costs $5 and $10.")) == "<p>It costs $5 and $10.</p>\n"
    assert str(render_markdown("Use `$HOME` or \\$PATH")) == "<p>Use <code>$HOME</code> or $PATH</p>\n"


def test_math_that_cannot_be_read_is_shown_as_its_source():
    html = str(render_markdown("Broken: $\\frac{a}{$"))
    assert '<span class="math-error"><code>$\\frac{a}{$</code></span>' in html


def test_text_inside_math_is_escaped_once():
    html = str(render_markdown("$\\text{a < b & c}$"))
    assert "<mtext>a&nbsp;&lt;&nbsp;b&nbsp;&amp;&nbsp;c</mtext>" in html
