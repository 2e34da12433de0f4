"""Google Gemini through google-generativeai (REST transport).

``genai.configure`` is process-global, so clients are made under a lock and
kept per (key, endpoint); ``GEMINI_API_BASE`` points the SDK at another server.
The SDK is imported on first use (about 0.8 s and 80 MB), not when the app loads.
"""

from __future__ import annotations

import json
import re
import threading
import warnings

from pydantic import Field

from .. import config
from ..errors import (
    AuthenticationFailed,
    BadRequest,
    ContentCutOff,
    ContextWindowExceeded,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from ..models import Model, SharedOptions
from ..prompts import Usage, extracted_text_part
from .openai import parse_retry_after

STATIC_MODELS: dict[str, tuple[str, ...]] = {
    "gemini-2.0-flash": ("gemini", "gemini-flash"),
    "gemini-2.0-flash-lite": (),
    "gemini-1.5-pro": ("gemini-pro",),
    "gemini-1.5-flash": (),
    "gemini-1.5-flash-8b": (),
    "gemini-2.5-pro": (),
    "gemini-2.5-flash": (),
}
PREFIX = "gemini/"
_genai_lock = threading.Lock()
_import_lock = threading.Lock()
_clients: dict[tuple, object] = {}


def import_genai():
    """Import google.generativeai, silencing the FutureWarnings it and
    google.api_core raise at import (deprecated package, Python version notices)."""
    with _import_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import google.api_core  # noqa: F401
        import google.generativeai as genai
        from google.generativeai import client  # noqa: F401
    return genai


def api_base() -> str | None:
    base = (config.setting("GEMINI_API_BASE") or "").strip().rstrip("/")
    if base and "://" not in base:
        base = "https://" + base
    return base or None


def _client(kind: str, key: str | None):
    """A ``generative`` or ``model`` service client for this key and endpoint."""
    base = api_base()
    cache_key = (kind, key, base)
    with _genai_lock:
        client = _clients.get(cache_key)
        if client is None:
            genai = import_genai()
            from google.generativeai import client as genai_client

            options = {"api_endpoint": base} if base else None
            genai.configure(api_key=key, transport="rest", client_options=options)
            if kind == "model":
                client = genai_client.get_default_model_client()
            else:
                client = genai_client.get_default_generative_client()
            if len(_clients) > 32:
                _clients.clear()
            _clients[cache_key] = client
        return client


def _request_options() -> dict:
    return {"timeout": config.request_timeout(), "retry": None}


def _where() -> str:
    return api_base() or "generativelanguage.googleapis.com"


# Gemini's 400 INVALID_ARGUMENT for a prompt over the window: "The input token count (2000000) exceeds the
# maximum number of tokens allowed (1048576)."
_CONTEXT_WINDOW_RE = re.compile(r"input token count.*exceeds the maximum number of tokens", re.IGNORECASE)


def translate_gemini_error(exc: Exception):
    import requests
    from google.api_core import exceptions as gexc
    from google.protobuf import json_format

    kw = {"provider": "gemini"}
    if isinstance(exc, gexc.GoogleAPICallError):
        status = exc.code if isinstance(exc.code, int) else None
        message = getattr(exc, "message", "") or str(exc)
        if message.split(" ", 1)[0] in ("GET", "POST") and ": " in message:
            message = message.split(": ", 1)[1]  # drop "POST https://...: "
        kw["status"] = status
        if isinstance(exc, gexc.TooManyRequests) or status == 429:
            response = getattr(exc, "response", None)
            retry_after = parse_retry_after(getattr(response, "headers", None))
            when = f"; retry after {retry_after:g} s" if retry_after is not None else ""
            return RateLimited(f"Gemini rate limit reached{when}: {message}", retry_after=retry_after, **kw)
        if (
            isinstance(exc, (gexc.Unauthenticated, gexc.PermissionDenied))
            or status in (401, 403)
            or "API key not valid" in message
        ):
            return AuthenticationFailed(f"Gemini rejected the API key: {message}", **kw)
        if isinstance(exc, gexc.DeadlineExceeded) or status in (408, 504):
            return ProviderTimeout(f"Gemini did not answer in time: {message}", **kw)
        if status is not None and status >= 500:
            return ProviderUnavailable(f"Gemini unavailable at {_where()} ({status}): {message}", **kw)
        if status == 400 and _CONTEXT_WINDOW_RE.search(message):
            return ContextWindowExceeded(
                f"Gemini: the conversation is longer than the model's context window: {message}", **kw
            )
        return BadRequest(f"Gemini rejected the request ({status}): {message}", **kw)
    if isinstance(exc, gexc.RetryError):
        return ProviderTimeout("Gemini did not answer in time", **kw)
    if isinstance(exc, requests.Timeout):
        return ProviderTimeout(f"Gemini did not answer in time ({_where()})", **kw)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return ContentCutOff("Gemini closed the connection before the answer was complete", **kw)
    if isinstance(exc, requests.ConnectionError):
        if "timed out" in str(exc).lower():
            return ProviderTimeout(f"Gemini stopped sending in time ({_where()})", **kw)
        return ProviderUnavailable(f"Gemini unavailable at {_where()}", **kw)
    if isinstance(exc, (json.JSONDecodeError, ValueError, json_format.ParseError)):
        return ProviderUnavailable("Gemini sent a malformed response", **kw)
    return None


class GeminiOptions(SharedOptions):
    top_k: int | None = Field(None, ge=1, description="Only sample from the k most likely tokens")


def _parts(turn: dict, prompt) -> list:
    """A turn's parts: its text, then each attachment as inline data (a PDF as its text when the model
    cannot read PDFs)."""
    parts = [turn["content"]]
    attachments = turn.get("attachments") or ()
    reads_pdf = prompt.model.capabilities()[1] if attachments else True
    for attachment in attachments:
        if attachment.info().is_image or reads_pdf:
            parts.append({"inline_data": {"mime_type": attachment.content_type, "data": attachment.content_bytes()}})
        else:
            parts.append(extracted_text_part(attachment))
    return parts


class GeminiChat(Model):
    provider = "gemini"
    needs_key = True
    key_env_var = "GEMINI_API_KEY"
    can_stream = True
    Options = GeminiOptions
    supports_images = True
    supports_pdf = True

    def litellm_name(self) -> str | None:
        return "gemini/" + self.api_model

    @property
    def api_model(self) -> str:
        return self.model_id[len(PREFIX) :] if self.model_id.startswith(PREFIX) else self.model_id

    def execute(self, prompt, stream, response, conversation):
        genai = import_genai()

        options = prompt.option_values()
        generation = {}
        for ours, theirs in (
            ("temperature", "temperature"),
            ("max_tokens", "max_output_tokens"),
            ("top_p", "top_p"),
            ("top_k", "top_k"),
        ):
            if ours in options:
                generation[theirs] = options[ours]
        contents = [
            {"role": "model" if turn["role"] == "assistant" else "user", "parts": _parts(turn, prompt)}
            for turn in prompt.turns()
        ]
        model = genai.GenerativeModel(
            self.api_model, system_instruction=prompt.system or None, generation_config=generation or None
        )
        model._client = _client("generative", response.key)
        result = model.generate_content(contents, stream=stream, request_options=_request_options())
        iterator = getattr(result, "_iterator", None)
        if iterator is not None and hasattr(iterator, "cancel"):
            response.on_close(iterator.cancel)
        finish_reason = None
        try:
            for chunk in result if stream else [result]:
                usage = getattr(chunk, "usage_metadata", None)
                if usage and (usage.prompt_token_count or usage.candidates_token_count):
                    response.usage = Usage(usage.prompt_token_count or 0, usage.candidates_token_count or 0)
                for candidate in chunk.candidates:
                    for part in candidate.content.parts:
                        if part.text:
                            yield part.text
                    if candidate.finish_reason:
                        finish_reason = candidate.finish_reason.name
        finally:
            if iterator is not None and hasattr(iterator, "cancel"):
                iterator.cancel()
        if response.closed:
            return
        response.finish_reason = finish_reason
        if finish_reason == "MAX_TOKENS":
            raise ContentCutOff(
                f"The answer reached the token limit of {self.model_id}", reason="length", provider="gemini"
            )
        if finish_reason in ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"):
            raise ContentCutOff(f"Gemini stopped the answer ({finish_reason})", reason="blocked", provider="gemini")
        if finish_reason is None:
            raise ContentCutOff("Gemini ended the stream before the answer was complete", provider="gemini")

    def translate_error(self, exc, response):
        return translate_gemini_error(exc)


def _model_class(model_id: str, aliases=()) -> type[GeminiChat]:
    return type(
        f"GeminiChat_{model_id}",
        (GeminiChat,),
        {"model_id": model_id, "aliases": tuple(aliases), "label": f"Google {model_id}"},
    )


def list_models() -> list[str]:
    key = config.resolve_key("gemini", "GEMINI_API_KEY")
    if not key:
        return list(STATIC_MODELS)
    genai = import_genai()

    try:
        client = _client("model", key)
        models = genai.list_models(client=client, request_options=_request_options())
        return [
            m.name.removeprefix("models/")
            for m in models
            if "generateContent" in (m.supported_generation_methods or [])
        ]
    except Exception as exc:
        error = translate_gemini_error(exc)
        if error is None:
            raise
        raise error from exc


def register(registry):
    registry.add_provider(
        "gemini",
        "Google Gemini",
        key_env_var="GEMINI_API_KEY",
        needs_key=True,
        list_models=list_models,
        is_configured=lambda: bool(config.resolve_key("gemini", "GEMINI_API_KEY")),
    )
    for model_id, aliases in STATIC_MODELS.items():
        registry.add_model(_model_class(model_id, aliases))

    def resolve(name):
        if name.startswith(PREFIX) and len(name) > len(PREFIX):
            return _model_class(name)
        if name.startswith("gemini-"):
            return _model_class(name)
        return None

    registry.add_resolver(resolve)
