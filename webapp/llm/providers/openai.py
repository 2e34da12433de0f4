"""OpenAI (and OpenAI-compatible servers, see :mod:`.inhouse`) through the
official SDK, streaming with ``stream_options={"include_usage": True}``.

The SDK is imported inside the functions that use it, on first use: loading the app or
``webapp.llm`` must not pay for every provider's SDK (each is 60-200 MB and up to 4 s).
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from typing import ClassVar

from pydantic import Field

from .. import config
from ..errors import (
    AuthenticationFailed,
    BadRequest,
    ContentCutOff,
    ContextWindowExceeded,
    LLMError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from ..models import Model, SharedOptions
from ..prompts import Usage

# model id -> aliases (as in simonw/llm)
STATIC_MODELS: dict[str, tuple[str, ...]] = {
    "gpt-4o": ("4o",),
    "gpt-4o-mini": ("4o-mini",),
    "gpt-4.1": ("4.1",),
    "gpt-4.1-mini": ("4.1-mini",),
    "gpt-4.1-nano": ("4.1-nano",),
    "gpt-4-turbo": ("gpt-4-turbo-preview", "4-turbo", "4t"),
    "gpt-4": ("4", "gpt4"),
    "gpt-3.5-turbo": ("3.5", "chatgpt"),
    "gpt-3.5-turbo-16k": ("chatgpt-16k", "3.5-16k"),
}
PREFIX = "openai/"


class OpenAIOptions(SharedOptions):
    frequency_penalty: float | None = Field(
        None, ge=-2, le=2, description="Penalise tokens by how often they already appeared (-2..2)"
    )
    presence_penalty: float | None = Field(
        None, ge=-2, le=2, description="Penalise tokens that already appeared at all (-2..2)"
    )
    stop: str | None = Field(None, description="Stop generating when this string appears")
    seed: int | None = Field(None, description="Seed for (mostly) repeatable sampling")


def parse_retry_after(headers) -> float | None:
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _body_message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return ""


def _httpx():
    try:
        import httpx2 as httpx  # what the openai SDK uses in its 3.x releases
    except ImportError:  # pragma: no cover - older SDKs
        import httpx
    return httpx


_ssl_context = None
_ssl_context_lock = threading.Lock()
# provider -> ((base URL, key, timeouts), client): one client per provider configuration in each process.
_clients: dict[str, tuple[tuple, object]] = {}
_clients_lock = threading.Lock()


def shared_ssl_context():
    """One SSL context (CA bundle loaded once) for every client.

    The SDK builds a fresh context for each new client, which loads the CA bundle:
    about 20 ms of CPU per call, the largest single cost of a generation in the
    benchmark's profile. An SSLContext is safe to share between threads."""
    global _ssl_context
    with _ssl_context_lock:
        if _ssl_context is None:
            _ssl_context = _httpx().create_ssl_context()
        return _ssl_context


def translate_openai_error(exc: Exception, provider: str, label: str, where: str) -> LLMError | None:
    """Map openai SDK / transport exceptions to :mod:`webapp.llm.errors`."""
    import openai

    httpx = _httpx()
    detail = _body_message(exc)
    suffix = f": {detail}" if detail else ""
    kw = {"provider": provider}
    if isinstance(exc, openai.APITimeoutError):
        return ProviderTimeout(f"{label} did not answer in time ({where})", **kw)
    if isinstance(exc, openai.APIConnectionError):
        if isinstance(exc.__cause__, (httpx.RemoteProtocolError, httpx.ReadError)):
            return ContentCutOff(f"{label} closed the connection before the answer was complete", **kw)
        return ProviderUnavailable(f"{label} unavailable at {where}", **kw)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        kw["status"] = status
        if status == 429:
            retry_after = parse_retry_after(exc.response.headers)
            when = f"; retry after {retry_after:g} s" if retry_after is not None else ""
            return RateLimited(f"{label} rate limit reached{when}{suffix}", retry_after=retry_after, **kw)
        if status in (401, 403):
            return AuthenticationFailed(f"{label} rejected the API key ({status}){suffix}", **kw)
        if status == 408:
            return ProviderTimeout(f"{label} timed out (408){suffix}", **kw)
        if status >= 500:
            return ProviderUnavailable(f"{label} unavailable at {where} ({status}){suffix}", **kw)
        if getattr(exc, "code", None) == "context_length_exceeded" or "maximum context length" in detail:
            return ContextWindowExceeded(
                f"{label}: the conversation is longer than the model's context window{suffix}", **kw
            )
        return BadRequest(f"{label} rejected the request ({status}){suffix}", **kw)
    if isinstance(exc, (openai.APIResponseValidationError, json.JSONDecodeError)):
        return ProviderUnavailable(f"{label} sent a malformed response", **kw)
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeout(f"{label} stopped sending in time ({where})", **kw)
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.StreamError)):
        return ContentCutOff(f"{label} closed the connection before the answer was complete", **kw)
    if isinstance(exc, httpx.TransportError):
        return ProviderUnavailable(f"{label} unavailable at {where}", **kw)
    if isinstance(exc, openai.OpenAIError):
        return ProviderUnavailable(f"{label} failed: {exc}", **kw)
    return None


class OpenAIChat(Model):
    provider = "openai"
    needs_key = True
    key_env_var = "OPENAI_API_KEY"
    can_stream = True
    api_model: ClassVar[str | None] = None  # name sent to the API (default: model_id)
    provider_label: ClassVar[str] = "OpenAI"
    Options = OpenAIOptions

    # -- hooks for OpenAI-compatible subclasses --------------------------------
    def litellm_name(self) -> str | None:
        return self.api_model or self.model_id

    def base_url(self) -> str | None:
        return config.setting("OPENAI_BASE_URL") or None

    def remote_model(self, client) -> str:
        return self.api_model or self.model_id

    def where(self) -> str:
        return self.base_url() or "api.openai.com"

    def make_client(self, key: str | None):
        """A new client (the caller closes it); calls use ``client()``, shared per configuration."""
        import openai

        return openai.OpenAI(
            api_key=key or "not-needed",
            base_url=self.base_url(),
            max_retries=0,
            timeout=openai.Timeout(config.request_timeout(), connect=config.connect_timeout()),
            http_client=openai.DefaultHttpxClient(verify=shared_ssl_context()),
        )

    def client(self, key: str | None):
        """This process's client for the key, base URL and timeouts: its connections (TCP and TLS) are
        kept between calls. A changed configuration (an admin's new key or base URL) gets a new client,
        and the provider's earlier one is closed (a call still using it then fails as a cut connection)."""
        configuration = (self.base_url(), key, config.request_timeout(), config.connect_timeout())
        with _clients_lock:
            cached = _clients.get(self.provider)
            if cached is not None and cached[0] == configuration:
                return cached[1]
            client = self.make_client(key)
            _clients[self.provider] = (configuration, client)
        if cached is not None:
            cached[1].close()
        return client

    # -- execution -------------------------------------------------------------
    def execute(self, prompt, stream, response, conversation):
        client = self.client(response.key)
        kwargs = dict(model=self.remote_model(client), messages=prompt.content_parts(), **prompt.option_values())
        finish_reason = None
        if stream:
            # The SDK builds and sends the request; the events are read from its raw response: one json.loads
            # a chunk instead of a pydantic model, and the body read to its end so the connection is kept.
            raw = client.chat.completions.with_streaming_response.create(
                stream=True, stream_options={"include_usage": True}, **kwargs
            )
            with raw as body:
                response.on_close(body.close)
                for event in self._events(body):
                    usage = event.get("usage")
                    if isinstance(usage, dict):
                        response.usage = Usage(usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)
                    for choice in event.get("choices") or ():
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            yield content
                        if choice.get("finish_reason"):
                            finish_reason = choice["finish_reason"]
            if response.closed:
                return
        else:
            completion = client.chat.completions.create(stream=False, **kwargs)
            if completion.usage:
                response.usage = Usage(completion.usage.prompt_tokens or 0, completion.usage.completion_tokens or 0)
            if not completion.choices:
                raise ProviderUnavailable(
                    f"{self.provider_label} sent an answer without choices", provider=self.provider
                )
            choice = completion.choices[0]
            finish_reason = choice.finish_reason
            yield (choice.message.content or "") if choice.message else ""
        response.finish_reason = finish_reason
        if finish_reason == "length":
            raise ContentCutOff(
                f"The answer reached the token limit of {self.model_id}", reason="length", provider=self.provider
            )
        if finish_reason is None:
            raise ContentCutOff(
                f"{self.provider_label} ended the stream before the answer was complete", provider=self.provider
            )

    def _events(self, body):
        """The JSON events of an SSE body (``data:`` lines) up to ``[DONE]``, after which the rest is read."""
        lines = body.iter_lines()
        for line in lines:
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data.startswith("[DONE]"):
                for _rest in lines:  # HTTP/1.1 keeps the connection only once the body is read to its end
                    pass
                return
            event = json.loads(data)
            if not isinstance(event, dict):
                raise ProviderUnavailable(f"{self.provider_label} sent a malformed response", provider=self.provider)
            if event.get("error"):
                error = event["error"]
                message = error.get("message") if isinstance(error, dict) else str(error)
                raise ProviderUnavailable(f"{self.provider_label} failed: {message}", provider=self.provider)
            yield event

    def translate_error(self, exc, response):
        return translate_openai_error(exc, self.provider, self.provider_label, self.where())


def _model_class(model_id: str, aliases=(), label: str | None = None) -> type[OpenAIChat]:
    return type(
        f"OpenAIChat_{model_id}",
        (OpenAIChat,),
        {
            "model_id": model_id,
            "aliases": tuple(aliases),
            "label": label or f"OpenAI {model_id}",
            "api_model": model_id[len(PREFIX) :] if model_id.startswith(PREFIX) else model_id,
        },
    )


def served_model_ids(model: OpenAIChat) -> list[str]:
    """What the model's server lists (``GET /models``), with errors translated as a chat call's are."""
    client = model.make_client(model.get_key())
    try:
        return [m.id for m in client.models.list()]
    except Exception as exc:
        error = model.translate_error(exc, None)
        if error is None:
            raise
        raise error from exc
    finally:
        client.close()


def list_models() -> list[str]:
    model = _model_class("gpt-4o")()
    if not model.get_key():
        return list(STATIC_MODELS)
    return sorted(served_model_ids(model))


def register(registry):
    registry.add_provider(
        "openai",
        "OpenAI",
        key_env_var="OPENAI_API_KEY",
        needs_key=True,
        list_models=list_models,
        is_configured=lambda: bool(config.resolve_key("openai", "OPENAI_API_KEY")),
    )
    default = config.setting("OPENAI_MODEL") or "gpt-4o"
    for model_id, aliases in STATIC_MODELS.items():
        registry.add_model(_model_class(model_id, aliases))
    if default not in STATIC_MODELS:
        registry.add_model(_model_class(default, label=f"OpenAI {default} (OPENAI_MODEL)"))

    def resolve(name):
        if name.startswith(PREFIX) and len(name) > len(PREFIX):
            return _model_class(name)
        return None

    registry.add_resolver(resolve)
