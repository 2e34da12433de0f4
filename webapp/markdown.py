"""Markdown for replies: rendered on the server, then sanitized, so no HTML or script from a model runs.

    render_markdown("**hi** <script>x</script>")  # -> '<p><strong>hi</strong> &lt;script&gt;x&lt;/script&gt;</p>\n'

Two layers: markdown-it-py renders CommonMark plus tables and strikethrough with raw
HTML *off* (a ``<script>`` in the text comes out as escaped text) and its link
validation on; then nh3 (ammonia) keeps only an allow-list of tags and attributes,
``http``/``https``/``mailto`` links (with ``rel="noopener noreferrer nofollow"``)
and ``language-*`` classes on code. Images are dropped: the page's CSP would block
remote ones anyway, and a reply should not be able to make the browser fetch a URL.
"""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

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
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "ol": {"start"},
    "code": {"class"},
    "th": {"align"},
    "td": {"align"},
}
URL_SCHEMES = {"http", "https", "mailto"}
_LANGUAGE_CLASS = re.compile(r"^language-[A-Za-z0-9_+#.-]{1,40}$")
_ALIGN_VALUES = {"left", "right", "center"}

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"]
)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if tag == "code" and attribute == "class":
        return value if _LANGUAGE_CLASS.match(value) else None
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


def sanitize_html(html: str) -> str:
    return _cleaner.clean(html)


def render_markdown(text: str) -> Markup:
    """Safe HTML for ``text`` (Markdown), ready to put in a template."""
    if not text:
        return Markup("")
    return Markup(sanitize_html(_markdown.render(text)))
