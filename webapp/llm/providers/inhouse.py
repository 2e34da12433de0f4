"""The in-house model server: OpenAI-compatible at ``INHOUSE_API_BASE``
(optional ``INHOUSE_API_KEY``). It may well be down, so connections time out
fast and failures read "in-house model server unavailable at URL".

Model ids: ``inhouse`` (``INHOUSE_MODEL`` or else the first model the server
lists) and ``inhouse/<name>`` for any model the server serves.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .. import config
from ..errors import ProviderUnavailable
from ..models import SharedOptions
from .openai import OpenAIChat, served_model_ids, translate_openai_error

PREFIX = "inhouse/"
LABEL = "in-house model server"


def base_url() -> str | None:
    base = (config.setting("INHOUSE_API_BASE") or "").strip()
    if not base:
        return None
    base = base.rstrip("/")
    if urlsplit(base).path in ("", "/"):
        base += "/v1"
    return base


def _not_configured() -> ProviderUnavailable:
    return ProviderUnavailable("The in-house model server is not configured: set INHOUSE_API_BASE", provider="inhouse")


class InhouseChat(OpenAIChat):
    provider = "inhouse"
    needs_key = False
    key_env_var = "INHOUSE_API_KEY"
    provider_label = LABEL
    Options = SharedOptions
    # OpenAI-compatible servers (vLLM, llama.cpp, Ollama) take image parts; few read PDF file parts, so
    # PDFs go as their text. An admin can say otherwise per model (Models page).
    supports_images = True
    supports_pdf = False

    def litellm_name(self):
        return None

    def base_url(self):
        return base_url()

    def where(self):
        return self.base_url() or "(INHOUSE_API_BASE not set)"

    def make_client(self, key):
        if self.base_url() is None:
            raise _not_configured()
        return super().make_client(key)

    def remote_model(self, client):
        if self.api_model:
            return self.api_model
        configured = config.setting("INHOUSE_MODEL")
        if configured:
            return configured
        try:
            ids = [m.id for m in client.models.list()]
        except Exception as exc:
            error = self.translate_error(exc, None)
            if error is None:
                raise
            raise error from exc
        if not ids:
            raise ProviderUnavailable(f"The {LABEL} at {self.where()} serves no models", provider="inhouse")
        return ids[0]

    def translate_error(self, exc, response):
        return translate_openai_error(exc, self.provider, LABEL, self.where())


class InhouseDefault(InhouseChat):
    model_id = "inhouse"
    label = "In-house model (default)"


def _model_class(model_id: str) -> type[InhouseChat]:
    return type(
        f"InhouseChat_{model_id}",
        (InhouseChat,),
        {
            "model_id": model_id,
            "label": f"In-house {model_id[len(PREFIX) :]}",
            "api_model": model_id[len(PREFIX) :],
        },
    )


def list_models() -> list[str]:
    return [PREFIX + model_id for model_id in served_model_ids(InhouseDefault())]


def register(registry):
    registry.add_provider(
        "inhouse",
        "In-house model server",
        key_env_var="INHOUSE_API_KEY",
        list_models=list_models,
        is_configured=lambda: base_url() is not None,
    )
    registry.add_model(InhouseDefault)
    configured = config.setting("INHOUSE_MODEL")
    if configured:
        registry.add_model(_model_class(PREFIX + configured))

    def resolve(name):
        if name.startswith(PREFIX) and len(name) > len(PREFIX):
            return _model_class(name)
        return None

    registry.add_resolver(resolve)
