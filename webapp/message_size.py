"""How big a message may be: one setting (MAX_MESSAGE_CHARS) and one wording for the chat form and the APIs.

Two limits, the same on every path: a message longer than MAX_MESSAGE_CHARS characters is a 400, and a
request body larger than MAX_CONTENT_LENGTH bytes (checked by Werkzeug before anything is read) is a 413.
"""

from __future__ import annotations

from flask import current_app, request

TOO_LARGE = "The request is too large"


def max_message_chars() -> int:
    return int(current_app.config["MAX_MESSAGE_CHARS"])


def message_too_long(text: str) -> str | None:
    """Why ``text`` cannot be sent as one message, or None."""
    limit = max_message_chars()
    if len(text) <= limit:
        return None
    return f"The message is too long: {len(text):,} characters, and a message may have at most {limit:,}."


def body_too_large(limit: int | None = None, note: str = "") -> str:
    """The 413's message: the body is over ``limit`` bytes (this request's limit: MAX_CONTENT_LENGTH, or what
    the attachment limits allow on the forms and API calls that take files, which add ``note``)."""
    if limit is None:
        limit = request.max_content_length or int(current_app.config["MAX_CONTENT_LENGTH"])
    size = f"{limit / 1024 / 1024:.3g} MiB" if limit >= 1024 * 1024 else f"{limit:,} bytes"
    return (
        f"{TOO_LARGE}: this server takes at most {size} in one request, "
        f"and a message may have at most {max_message_chars():,} characters.{' ' + note if note else ''}"
    )
