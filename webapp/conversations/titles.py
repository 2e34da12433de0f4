"""Titles: the first message without its Markdown, cut at a word near TITLE_LENGTH characters."""

from __future__ import annotations

from markdown_it import MarkdownIt

TITLE_LENGTH = 60


MAX_TITLE_LENGTH = 200


_TITLE_MARKDOWN = MarkdownIt("commonmark", {"html": True})


def plain_text(markdown: str) -> str:
    """The words of a Markdown text: no markup, no HTML, one line."""
    parts: list[str] = []
    for token in _TITLE_MARKDOWN.parse(markdown):
        if token.type == "inline":
            for child in token.children or []:
                if child.type in ("text", "code_inline"):
                    parts.append(child.content)
                elif child.type in ("softbreak", "hardbreak"):
                    parts.append(" ")
                elif child.type == "image":  # its alt text
                    parts.append(child.content)
            parts.append(" ")
        elif token.type in ("fence", "code_block"):
            parts.append(token.content + " ")
    return " ".join("".join(parts).split())


def title_from(content: str) -> str:
    """A title from the first message: its words without Markdown, cut at a word boundary near TITLE_LENGTH."""
    text = plain_text(content) or " ".join(content.split())
    if len(text) <= TITLE_LENGTH:
        return text or "New chat"
    cut = text[: TITLE_LENGTH - 1]
    space = cut.rfind(" ")
    if space >= TITLE_LENGTH * 2 // 3:  # a word boundary not too far back; else cut the long word
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–—") + "…"
