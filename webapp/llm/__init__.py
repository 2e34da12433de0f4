"""Switchboard's LLM layer: one Python API over every provider.

    from webapp.llm import get_model
    response = get_model("echo").prompt("Five names for a pet pelican")
    for chunk in response:
        print(chunk, end="")

Modelled on simonw/llm 0.12. See :mod:`webapp.llm.models` for Model/Response,
:mod:`webapp.llm.registry` for lookups and aliases, :mod:`webapp.llm.errors`.
"""

from .attachments import Attachment, AttachmentError
from .config import configure
from .errors import (
    AuthenticationFailed,
    BadRequest,
    ContentCutOff,
    ContextWindowExceeded,
    InvalidOptions,
    LLMError,
    MissingKey,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    UnknownModelError,
)
from .models import Model
from .prompts import Prompt, Usage
from .registry import (
    get_aliases,
    get_default_model,
    get_model,
    get_models,
    get_providers,
    list_provider_models,
    remove_alias,
    set_alias,
)
from .responses import Conversation, Response

__all__ = [
    "Attachment",
    "AttachmentError",
    "configure",
    "get_model",
    "get_models",
    "get_default_model",
    "get_aliases",
    "set_alias",
    "remove_alias",
    "get_providers",
    "list_provider_models",
    "Model",
    "Response",
    "Conversation",
    "Prompt",
    "Usage",
    "LLMError",
    "RateLimited",
    "ProviderUnavailable",
    "ProviderTimeout",
    "AuthenticationFailed",
    "BadRequest",
    "ContentCutOff",
    "ContextWindowExceeded",
    "MissingKey",
    "InvalidOptions",
    "UnknownModelError",
]
