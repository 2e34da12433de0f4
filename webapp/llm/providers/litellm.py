"""Any model litellm supports, configured with ``LLM_MODELS`` (as in Pegasus):

    LLM_MODELS = {"ollama_chat/llama3": {"api_base": "http://localhost:11434"},
                  "claude-3-opus-20240229": {"api_key": "..."}}

Ids are used as given and take precedence over built-in ids. litellm is slow
to import (about 4 s) and reaches for the network unless
``LITELLM_LOCAL_MODEL_COST_MAP`` is set, so it is imported only on first use.
"""

from __future__ import annotations

import os
import threading
from typing import ClassVar

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
from ..prompts import Usage
from .openai import parse_retry_after

_import_lock = threading.Lock()


def import_litellm():
    with _import_lock:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        litellm.telemetry = False
        litellm.suppress_debug_info = True
        return litellm


def configured_models() -> dict[str, dict]:
    models = config.setting("LLM_MODELS") or {}
    if not isinstance(models, dict):
        return {}
    return {str(k): dict(v or {}) for k, v in models.items()}


def _retry_after(exc) -> float | None:
    for source in (
        getattr(exc, "litellm_response_headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
    ):
        try:
            value = parse_retry_after(source)
        except Exception:
            value = None
        if value is not None:
            return value
    return None


def translate_litellm_error(exc: Exception, model_id: str, where: str):
    import litellm

    kw = {"provider": "litellm"}
    name = f"{model_id} (via litellm)"
    message = getattr(exc, "message", None) or str(exc)
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        kw["status"] = status
    mid_stream = getattr(litellm.exceptions, "MidStreamFallbackError", ())
    if mid_stream and isinstance(exc, mid_stream):
        original = getattr(exc, "original_exception", None)
        error = translate_litellm_error(original, model_id, where) if original is not None else None
        return error or ContentCutOff(f"{name}: the stream broke before the answer was complete", **kw)
    if isinstance(exc, litellm.Timeout) or status == 408:
        return ProviderTimeout(f"{name} did not answer in time ({where})", **kw)
    if isinstance(exc, litellm.RateLimitError):
        retry_after = _retry_after(exc)
        return RateLimited(f"{name}: rate limit reached", retry_after=retry_after, **kw)
    if isinstance(exc, (litellm.AuthenticationError, litellm.PermissionDeniedError)):
        return AuthenticationFailed(f"{name}: the API key was rejected", **kw)
    if isinstance(exc, litellm.ContextWindowExceededError):  # a BadRequestError: asked first
        return ContextWindowExceeded(f"{name}: the conversation is longer than the model's context window", **kw)
    if isinstance(exc, (litellm.BadRequestError, litellm.NotFoundError)):
        return BadRequest(f"{name}: the request was rejected: {message}", **kw)
    if isinstance(exc, litellm.APIConnectionError):
        lowered = message.lower()
        if "timed out" in lowered or "timeout" in lowered:
            return ProviderTimeout(f"{name} did not answer in time ({where})", **kw)
        if any(s in lowered for s in ("incomplete chunked read", "peer closed connection", "remoteprotocolerror")):
            return ContentCutOff(f"{name}: the connection closed before the answer was complete", **kw)
        if any(s in lowered for s in ("json", "expecting value", "unterminated", "decode")):
            return ProviderUnavailable(f"{name} sent a malformed response", **kw)
        return ProviderUnavailable(f"{name} unavailable at {where}", **kw)
    if isinstance(exc, litellm.exceptions.APIError) or isinstance(status, int):
        if status == 429:
            return RateLimited(f"{name}: rate limit reached", retry_after=_retry_after(exc), **kw)
        if status in (401, 403):
            return AuthenticationFailed(f"{name}: the API key was rejected", **kw)
        if isinstance(status, int) and 400 <= status < 500:
            return BadRequest(f"{name}: the request was rejected: {message}", **kw)
        return ProviderUnavailable(f"{name} unavailable at {where} ({status})", **kw)
    if isinstance(exc, (ValueError,)) and "json" in str(exc).lower():
        return ProviderUnavailable(f"{name} sent a malformed response", **kw)
    return None


class LiteLLMChat(Model):
    provider = "litellm"
    needs_key = False
    can_stream = True
    Options = SharedOptions
    litellm_kwargs: ClassVar[dict] = {}

    def litellm_name(self) -> str | None:
        return self.model_id

    def where(self) -> str:
        return self.litellm_kwargs.get("api_base") or self.model_id

    def execute(self, prompt, stream, response, conversation):
        litellm = import_litellm()
        kwargs = dict(self.litellm_kwargs)
        if response.key:
            kwargs["api_key"] = response.key
        kwargs.update(prompt.option_values())
        result = litellm.completion(
            model=self.model_id,
            messages=prompt.content_parts(),
            stream=stream,
            timeout=config.request_timeout(),
            num_retries=0,
            max_retries=0,
            **kwargs,
        )
        finish_reason = None
        if stream:
            closer = getattr(result, "completion_stream", None)
            if closer is not None and hasattr(closer, "close"):
                response.on_close(closer.close)
            for chunk in result:
                usage = getattr(chunk, "usage", None)
                if usage and (usage.prompt_tokens or usage.completion_tokens):
                    response.usage = Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0)
                for choice in chunk.choices or ():
                    content = getattr(choice.delta, "content", None) if choice.delta else None
                    if content:
                        yield content
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
            if response.closed:
                return
        else:
            usage = getattr(result, "usage", None)
            if usage and (usage.prompt_tokens or usage.completion_tokens):
                response.usage = Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0)
            choice = result.choices[0]
            finish_reason = choice.finish_reason
            yield choice.message.content or ""
        response.finish_reason = finish_reason
        if finish_reason == "length":
            raise ContentCutOff(
                f"The answer reached the token limit of {self.model_id}", reason="length", provider="litellm"
            )
        if stream and finish_reason is None:
            raise ContentCutOff(f"{self.model_id} ended the stream before the answer was complete", provider="litellm")

    def translate_error(self, exc, response):
        return translate_litellm_error(exc, self.model_id, self.where())


def _model_class(model_id: str, kwargs: dict) -> type[LiteLLMChat]:
    return type(
        f"LiteLLMChat_{model_id}",
        (LiteLLMChat,),
        {"model_id": model_id, "label": f"{model_id} (litellm)", "litellm_kwargs": dict(kwargs)},
    )


def register(registry):
    models = configured_models()
    registry.add_provider(
        "litellm",
        "LiteLLM (LLM_MODELS)",
        list_models=lambda: list(configured_models()),
        is_configured=lambda: bool(configured_models()),
    )
    for model_id, kwargs in models.items():
        registry.add_model(_model_class(model_id, kwargs), replace=True)
