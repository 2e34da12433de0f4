"""Models, prompts, responses and conversations (after simonw/llm 0.12).

A provider subclasses :class:`Model` and implements :meth:`Model.execute`, a
generator of text chunks. Everything else (option validation, key lookup,
laziness, caching, timing, usage estimates, closing) lives here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import config
from .attachments import Attachment, AttachmentError, litellm_capabilities
from .errors import (
    InvalidOptions,
    LLMError,
    MissingKey,
    ProviderUnavailable,
    remember_secret,
)
from .prompts import Prompt, Usage, check_attachments, check_history, estimate_tokens
from .responses import Conversation, Response


class Model:
    """Base class for every model. Subclasses set the class attributes and
    implement :meth:`execute`. Instances are cheap; ``get_model`` returns a
    new one each call, so setting ``.key`` does not leak to other callers."""

    model_id: ClassVar[str] = ""
    provider: ClassVar[str] = ""
    label: ClassVar[str] = ""
    needs_key: ClassVar[bool] = False
    key_env_var: ClassVar[str | None] = None
    can_stream: ClassVar[bool] = True
    aliases: ClassVar[tuple] = ()
    # What the model reads besides text, when LiteLLM's model table does not know it (see capabilities()).
    supports_images: ClassVar[bool] = False
    supports_pdf: ClassVar[bool] = False

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

    def __init__(self):
        self.key: str | None = None

    # -- keys ----------------------------------------------------------------
    def get_key(self) -> str | None:
        """Explicit ``model.key`` > configured key resolver > config/environment."""
        key = self.key or config.resolve_key(self.provider, self.key_env_var)
        remember_secret(key)
        return key

    # -- prompting -----------------------------------------------------------
    def validate_options(self, options: dict) -> BaseModel:
        try:
            return self.Options(**options)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                where = ".".join(str(part) for part in error.get("loc", ())) or "options"
                if error.get("type") == "extra_forbidden":
                    known = ", ".join(self.Options.model_fields) or "none"
                    problems.append(f"unknown option '{where}' (options for {self.model_id}: {known})")
                else:
                    problems.append(f"{where}: {error.get('msg')}")
            raise InvalidOptions(f"Invalid options for {self.model_id}: " + "; ".join(problems)) from None

    def prompt(
        self,
        prompt: str,
        system: str | None = None,
        history: list[dict] | None = None,
        stream: bool = True,
        attachments: list[Attachment] | None = None,
        _conversation: Conversation | None = None,
        **options,
    ) -> Response:
        if not isinstance(prompt, str):
            raise InvalidOptions("prompt must be a string")
        attachments = check_attachments(attachments)
        history = check_history(history)
        self.check_attachments(attachments + [a for turn in history for a in turn.get("attachments") or ()])
        if not config.provider_enabled(self.provider):
            raise ProviderUnavailable(
                f"The {self.provider} provider is turned off (LLM_DISABLED_PROVIDERS)", provider=self.provider
            )
        validated = self.validate_options(options)
        key = self.get_key()
        if self.needs_key and not key:
            raise MissingKey(
                f"No API key for {self.model_id}: set {self.key_env_var or 'an API key'} (or set model.key)",
                provider=self.provider,
            )
        prompt_obj = Prompt(prompt, self, system=system, history=history, options=validated, attachments=attachments)
        return Response(prompt_obj, self, stream=stream and self.can_stream, conversation=_conversation, key=key)

    def conversation(self) -> Conversation:
        return Conversation(self)

    # -- attachments -------------------------------------------------------------
    def litellm_name(self) -> str | None:
        """The model's name in LiteLLM's model table (None: the table does not list this provider's models)."""
        return None

    def native_capabilities(self) -> tuple[bool, bool]:
        """``(reads images, reads PDFs)`` from LiteLLM's model information where it knows the model, else
        the provider's word."""
        images, pdf = self.supports_images, self.supports_pdf
        name = self.litellm_name()
        if name:
            known_images, known_pdf = litellm_capabilities(name)
            if known_images is not None:
                images, pdf = known_images, known_pdf
        return images, pdf

    def capabilities(self) -> tuple[bool, bool]:
        """``(reads images, reads PDFs)``: an admin's override (MODEL_CAPABILITIES setting, per model id)
        first, else :meth:`native_capabilities`."""
        images, pdf = self.native_capabilities()
        override = (config.setting("MODEL_CAPABILITIES") or {}).get(self.model_id)
        if isinstance(override, dict):
            images = bool(override.get("images", images))
            pdf = bool(override.get("pdf", pdf))
        return images, pdf

    def check_attachments(self, attachments: list[Attachment]) -> None:
        """AttachmentError (code ``model_not_multimodal``) when an image goes to a model that cannot read
        images. A PDF always goes: as a file to a model that reads PDFs, else as its extracted text."""
        if attachments and not self.capabilities()[0] and any(a.info().is_image for a in attachments):
            raise AttachmentError(
                f"The model {self.model_id} cannot read images: pick a model that can, or remove the image.",
                "model_not_multimodal",
            )

    def execute(
        self, prompt: Prompt, stream: bool, response: Response, conversation: Conversation | None
    ) -> Iterator[str]:
        raise NotImplementedError

    def translate_error(self, exc: Exception, response: Response) -> LLMError | None:
        """Map an SDK exception that escaped :meth:`execute` to an LLMError."""
        if isinstance(exc, (ConnectionError, OSError)):
            return ProviderUnavailable(f"{self.provider} is unavailable: {exc}", provider=self.provider)
        return None

    # -- description -----------------------------------------------------------
    @classmethod
    def options_help(cls) -> list[tuple[str, str, str]]:
        """``(name, type, description)`` for each option."""
        rows = []
        for name, info in cls.Options.model_fields.items():
            annotation = getattr(info.annotation, "__name__", None) or str(info.annotation)
            rows.append((name, annotation.replace("typing.", "").replace("Optional", ""), info.description or ""))
        return rows

    def __str__(self) -> str:
        return f"{self.label or self.model_id} ({self.provider}: {self.model_id})"

    def __repr__(self) -> str:
        return f"<Model {self.provider}:{self.model_id}>"


class SharedOptions(BaseModel):
    """Options most chat providers accept."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(
        None, ge=0, le=2, description="Sampling temperature: 0 is focused and repeatable, 2 is most random"
    )
    max_tokens: int | None = Field(None, ge=1, description="Maximum number of tokens to generate")
    top_p: float | None = Field(
        None, ge=0, le=1, description="Nucleus sampling: only consider tokens in this top probability mass"
    )


__all__ = [
    "Usage",
    "Prompt",
    "Response",
    "Conversation",
    "Model",
    "SharedOptions",
    "Attachment",
    "estimate_tokens",
]
