"""Markdown for replies: rendered on the server, then sanitized, so no HTML or script from a model runs.

    render_markdown("**hi** <script>x</script>")  # -> '<p><strong>hi</strong> &lt;script&gt;x&lt;/script&gt;</p>\n'

Two layers: markdown-it-py renders CommonMark plus tables and strikethrough with raw
HTML *off* (a ``<script>`` in the text comes out as escaped text) and its link
validation on; then nh3 (ammonia) keeps only an allow-list of tags and attributes,
``http``/``https``/``mailto`` links (with ``rel="noopener noreferrer nofollow"``)
and ``language-*`` classes on code. Images are dropped: the page's CSP would block
remote ones anyway, and a reply should not be able to make the browser fetch a URL.

Fenced code is coloured by Pygments (its token classes, prefixed ``tok-``, coloured
by the stylesheet for each theme) under a bar naming the language. Math (``$…$``,
``$$…$$``, ``\\(…\\)``, ``\\[…\\]``) becomes MathML here, on the server, with
latex2mathml: browsers draw MathML themselves, so math needs no script, no font
download and no change to the page's CSP, and shows with scripting off. The
MathML goes through the same nh3 pass, with its own allow-list (latex2mathml
copies text and ``\\href`` targets through unescaped, so its output is never trusted).
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ElementTree
from functools import lru_cache

import nh3
from latex2mathml.converter import convert_to_element
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markupsafe import Markup
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.texmath import texmath_plugin
from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

# MathML Core elements (what browsers draw); latex2mathml produces a subset of these.
MATH_TAGS = {
    "math",
    "semantics",
    "annotation",
    "mrow",
    "mi",
    "mn",
    "mo",
    "ms",
    "mtext",
    "mspace",
    "mfrac",
    "msqrt",
    "mroot",
    "msub",
    "msup",
    "msubsup",
    "munder",
    "mover",
    "munderover",
    "mmultiscripts",
    "mprescripts",
    "none",
    "mtable",
    "mtr",
    "mtd",
    "mstyle",
    "mpadded",
    "mphantom",
    "menclose",
    "merror",
}
ALLOWED_TAGS = {
    "p",
    "br",
    "hr",
    "strong",
    "em",
    "del",
    "s",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "a",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "div",
    "span",
} | MATH_TAGS
# Presentation attributes only: no href (latex2mathml turns \href into one), no style, no event handlers.
MATH_ATTRIBUTES = {
    "display",
    "displaystyle",
    "scriptlevel",
    "mathvariant",
    "mathsize",
    "stretchy",
    "fence",
    "separator",
    "lspace",
    "rspace",
    "minsize",
    "maxsize",
    "largeop",
    "movablelimits",
    "symmetric",
    "accent",
    "accentunder",
    "form",
    "linethickness",
    "width",
    "height",
    "depth",
    "voffset",
    "columnalign",
    "rowalign",
    "columnspacing",
    "rowspacing",
    "columnlines",
    "rowlines",
    "frame",
    "notation",
    "encoding",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "ol": {"start"},
    "code": {"class"},
    "th": {"align"},
    "td": {"align"},
    "div": {"class"},
    "span": {"class"},
    **{tag: MATH_ATTRIBUTES for tag in MATH_TAGS},
}
URL_SCHEMES = {"http", "https", "mailto"}
_LANGUAGE_CLASS = re.compile(r"^language-[A-Za-z0-9_+#.-]{1,40}$")
_ALIGN_VALUES = {"left", "right", "center"}
_MATH_VALUE = re.compile(r"^[A-Za-z0-9 ./#%+-]{1,60}$")
TOKEN_PREFIX = "tok-"
# Classes the renderer itself writes: the code block's frame and Pygments' token classes.
_BLOCK_CLASSES = {"div": {"code-block", "code-bar", "math-block"}, "span": {"code-lang", "math-error"}}
_TOKEN_CLASSES = {TOKEN_PREFIX + name for name in STANDARD_TYPES.values() if name}
# Past these sizes a block is shown as plain text: highlighting or typesetting it would cost more than it shows.
MAX_HIGHLIGHT_CHARS = 20_000
MAX_MATH_CHARS = 2_000

_formatter = HtmlFormatter(nowrap=True, classprefix=TOKEN_PREFIX)
# Tokens the stylesheet leaves in the text colour (whitespace, punctuation, plain names, operators): bare text
# is the same on screen and half the bytes.
_UNCOLOURED_SPAN = re.compile(r'<span class="tok-(?:w|p|n|o|x)">([^<]*)</span>')


def _classes_allowed(tag: str, value: str) -> bool:
    classes = value.split()
    if not classes:
        return False
    if tag == "span" and all(name in _TOKEN_CLASSES for name in classes):
        return True
    return len(classes) == 1 and classes[0] in _BLOCK_CLASSES.get(tag, ())


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if tag == "code" and attribute == "class":
        return value if _LANGUAGE_CLASS.match(value) else None
    if attribute == "class":
        return value if _classes_allowed(tag, value) else None
    if tag in MATH_TAGS:
        return value if _MATH_VALUE.match(value) else None
    if attribute == "align":
        return value if value in _ALIGN_VALUES else None
    if tag == "ol" and attribute == "start":
        return value if value.isdigit() and len(value) < 10 else None
    return value


_cleaner = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags={"script", "style"},
    attributes=ALLOWED_ATTRIBUTES,
    attribute_filter=_attribute_filter,
    url_schemes=URL_SCHEMES,
    link_rel="noopener noreferrer nofollow",
    strip_comments=True,
)


def sanitize_html(html_text: str) -> str:
    return _cleaner.clean(html_text)


def highlight_code(code: str, language: str) -> str | None:
    """Pygments' token spans for ``code`` in ``language``; None when the language is unknown (shown plain)."""
    if not language or len(code) > MAX_HIGHLIGHT_CHARS:
        return None
    try:
        lexer = get_lexer_by_name(language, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None
    return _UNCOLOURED_SPAN.sub(r"\1", pygments_highlight(code, lexer, _formatter))


def _render_fence(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    language = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
    label = escapeHtml(language or "text")
    body = highlight_code(token.content, language) or escapeHtml(token.content)
    code_class = f' class="language-{escapeHtml(language)}"' if language else ""
    return (
        f'<div class="code-block"><div class="code-bar"><span class="code-lang">{label}</span></div>'
        f"<pre><code{code_class}>{body}</code></pre></div>\n"
    )


def math_to_mathml(tex: str, display: bool) -> str:
    """MathML for the TeX ``tex``, escaped properly (latex2mathml's own string output is not); the source
    rides along as an annotation. Math it cannot read is shown as its source."""
    tex = tex.strip()
    try:
        if len(tex) > MAX_MATH_CHARS:
            raise ValueError("too long to typeset")
        element = convert_to_element(tex, display="block" if display else "inline")
    except Exception:  # latex2mathml raises many kinds for input it cannot read; the reader still sees the TeX
        delimiter = "$$" if display else "$"
        return f'<span class="math-error"><code>{escapeHtml(delimiter + tex + delimiter)}</code></span>'
    for node in element.iter():
        # latex2mathml stores characters as entity text ("&#x0002B;"): make them characters so they escape once.
        if node.text:
            node.text = html.unescape(node.text)
        if node.tail:
            node.tail = html.unescape(node.tail)
    element.attrib.pop("xmlns", None)
    children = list(element)
    semantics = ElementTree.SubElement(element, "semantics")
    row = ElementTree.SubElement(semantics, "mrow")
    for child in children:
        element.remove(child)
        row.append(child)
    annotation = ElementTree.SubElement(semantics, "annotation", encoding="application/x-tex")
    annotation.text = tex
    mathml = ElementTree.tostring(element, encoding="unicode", short_empty_elements=False)
    return f'<div class="math-block">{mathml}</div>' if display else mathml


def _render_math_inline(self, tokens, idx, options, env) -> str:
    return math_to_mathml(tokens[idx].content, display=False)


def _render_math_block(self, tokens, idx, options, env) -> str:
    return math_to_mathml(tokens[idx].content, display=True) + "\n"


def _build_markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
        ["table", "strikethrough"]
    )
    # \( \) and \[ \] first, then dollars; "$5 and $10" stays money (no space inside, no digit after the closing $).
    texmath_plugin(md, delimiters="brackets")
    dollarmath_plugin(
        md, allow_labels=False, allow_space=False, allow_digits=False, allow_blank_lines=False, double_inline=True
    )
    md.add_render_rule("fence", _render_fence)
    for name in ("math_inline", "math_inline_double"):
        md.add_render_rule(name, _render_math_inline)
    for name in ("math_block", "math_block_eqno", "math_block_label"):
        md.add_render_rule(name, _render_math_block)
    return md


_markdown = _build_markdown()


@lru_cache(maxsize=256)
def _render(text: str) -> str:
    # Pages show the same finished replies again and again: highlighting and typesetting them once is enough.
    return sanitize_html(_markdown.render(text))


def render_markdown(text: str) -> Markup:
    """Safe HTML for ``text`` (Markdown), ready to put in a template."""
    if not text:
        return Markup("")
    return Markup(_render(text))
