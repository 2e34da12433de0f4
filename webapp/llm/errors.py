"""Errors raised by :mod:`webapp.llm`.

Every provider maps its SDK's exceptions onto these classes, so callers (the
worker, the CLI, the web layer) only ever handle one family. ``str(error)`` is
meant for users: it never contains an API key (see :func:`redact`).
"""

from __future__ import annotations

import re

# Things that look like credentials, whatever the provider put in its message.
_SECRET_PATTERNS = [
    re.compile(r"sk-[A-Za-z0-9_\-*]{6,}"),  # OpenAI style (also partly masked ones)
    re.compile(r"AIza[0-9A-Za-z_\-]{10,}"),  # Google API keys
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-~+/=]{6,}"),
    re.compile(r"(?i)((?:api[_-]?key|key|token)=)[^&\s\"']+"),
]
_known_secrets: set[str] = set()


def remember_secret(value: str | None) -> None:
    """Make sure ``value`` is masked in every later error message."""
    if value and len(value) >= 4:
        _known_secrets.add(value)


def redact(text: str) -> str:
    for secret in sorted(_known_secrets, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + "[redacted]", text)
        else:
            text = pattern.sub("[redacted]", text)
    return text


# Where a provider lives (a URL, an IP or host with a port): kept in the record and the logs, not shown to users.
_AT_ADDRESS_RE = re.compile(
    r"\s+(?:at|to|from)\s+(?:[a-z][a-z0-9+.-]*://\S+|(?:\d{1,3}(?:\.\d{1,3}){3}|localhost|\[[0-9a-f:]+\]|"
    r"[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,})(?::\d{1,5})?(?:/\S*)?(?![\w-]))",
    re.IGNORECASE,
)
_ADDRESS_RE = re.compile(
    r"\b[a-z][a-z0-9+.-]*://[^\s)\"']+|\b(?:\d{1,3}(?:\.\d{1,3}){3}|localhost)(?::\d{1,5})?(?:/[^\s)\"']*)?|"
    r"\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}:\d{1,5}\b(?:/[^\s)\"']*)?",
    re.IGNORECASE,
)


def without_addresses(text: str) -> str:
    """``text`` for people who use the service rather than run it: the provider's name and the reason stay,
    the internal addresses go ("In-house model server unavailable at http://10.0.0.5:8000/v1" ->
    "In-house model server unavailable")."""
    text = _AT_ADDRESS_RE.sub("", text)
    return _ADDRESS_RE.sub("[internal address]", text)


class LLMError(Exception):
    """Base class. ``code`` is a short slug, ``retryable`` says whether trying
    the same request again later may succeed."""

    code = "llm_error"
    retryable = False
    default_message = "The language model request failed"

    def __init__(self, message: str | None = None, *, provider: str | None = None, status: int | None = None):
        self.message = redact(message or self.default_message)
        self.provider = provider
        self.status = status
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class RateLimited(LLMError):
    code = "rate_limited"
    retryable = True
    default_message = "The provider is rate limiting requests"

    def __init__(self, message: str | None = None, *, retry_after: float | None = None, **kwargs):
        self.retry_after = retry_after
        if message is None and retry_after is not None:
            message = f"{self.default_message}; retry after {retry_after:g} s"
        super().__init__(message, **kwargs)


class ProviderUnavailable(LLMError):
    code = "provider_unavailable"
    retryable = True
    default_message = "The model provider is unavailable"


class ProviderTimeout(LLMError):
    code = "provider_timeout"
    retryable = True
    default_message = "The model provider did not answer in time"


class AuthenticationFailed(LLMError):
    code = "authentication_failed"
    default_message = "The provider rejected the API key"


class BadRequest(LLMError):
    code = "bad_request"
    default_message = "The provider rejected the request"


class ContextWindowExceeded(BadRequest):
    """The prompt (with the conversation so far) is longer than the model's context window: the same
    request can succeed on a model with a larger window, never on this one."""

    code = "context_window_exceeded"
    default_message = "The conversation is longer than the model's context window"


class ContentCutOff(LLMError):
    """The answer stopped early: the stream broke (``reason="disconnected"``,
    retryable) or the model hit its token limit (``reason="length"``).
    ``partial_text`` holds what had arrived."""

    code = "content_cut_off"
    default_message = "The answer was cut off"

    def __init__(self, message: str | None = None, *, partial_text: str = "", reason: str = "disconnected", **kwargs):
        self.partial_text = partial_text
        self.reason = reason
        self.retryable = reason != "length"
        super().__init__(message, **kwargs)


class MissingKey(LLMError):
    code = "missing_key"
    default_message = "No API key configured"


class InvalidOptions(LLMError, ValueError):
    code = "invalid_options"
    default_message = "Invalid model options"


class UnknownModelError(LLMError, KeyError):
    """Raised by :func:`webapp.llm.get_model` for an unknown id or alias."""

    code = "unknown_model"
    default_message = "Unknown model"

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


__all__ = [
    "LLMError",
    "RateLimited",
    "ProviderUnavailable",
    "ProviderTimeout",
    "AuthenticationFailed",
    "BadRequest",
    "ContextWindowExceeded",
    "ContentCutOff",
    "MissingKey",
    "InvalidOptions",
    "UnknownModelError",
    "redact",
    "remember_secret",
]
