"""Models, prompts, responses and conversations (after simonw/llm 0.12).

A provider subclasses :class:`Model` and implements :meth:`Model.execute`, a
generator of text chunks. Everything else (option validation, key lookup,
laziness, caching, timing, usage estimates, closing) lives here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import config
from .attachments import Attachment, AttachmentError, litellm_capabilities, pdf_text
from .errors import (
    ContentCutOff,
    InvalidOptions,
    LLMError,
    MissingKey,
    ProviderTimeout,
    ProviderUnavailable,
    remember_secret,
)


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def estimate_tokens(text: str) -> int:
    """Rough token count (about four characters a token) for providers that give none."""
    return (len(text) + 3) // 4 if text else 0


@dataclass
class Prompt:
    prompt: str
    model: Model
    system: str | None = None
    history: list[dict] = field(default_factory=list)
    options: BaseModel | None = None
    attachments: list[Attachment] = field(default_factory=list)

    def messages(self) -> list[dict]:
        """OpenAI-style message list of text: system, history, then this prompt (attachments left out)."""
        messages = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        messages.extend({"role": m["role"], "content": m["content"]} for m in self.history)
        messages.append({"role": "user", "content": self.prompt})
        return messages

    def turns(self) -> list[dict]:
        """History then this prompt: ``{"role", "content", "attachments"}`` (attachments only where there are)."""
        turns = [dict(m) for m in self.history]
        turn = {"role": "user", "content": self.prompt}
        if self.attachments:
            turn["attachments"] = list(self.attachments)
        turns.append(turn)
        return turns

    def content_parts(self, pdf_as_file: bool | None = None) -> list[dict]:
        """OpenAI-style messages with attachments as content parts: images as ``image_url`` data URLs, PDFs as
        ``file`` parts, or as the PDF's extracted text for a model that cannot read PDFs. Turns without
        attachments keep plain string content (a text-only request is the same as before)."""
        if pdf_as_file is None:
            pdf_as_file = self.model.capabilities()[1]
        messages = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        for turn in self.turns():
            attachments = turn.get("attachments") or ()
            if not attachments:
                messages.append({"role": turn["role"], "content": turn["content"]})
                continue
            parts = [{"type": "text", "text": turn["content"]}]
            for attachment in attachments:
                if attachment.info().is_image:
                    parts.append({"type": "image_url", "image_url": {"url": attachment.data_url()}})
                elif pdf_as_file:
                    parts.append(
                        {"type": "file", "file": {"filename": attachment.name, "file_data": attachment.data_url()}}
                    )
                else:
                    parts.append({"type": "text", "text": extracted_text_part(attachment)})
            messages.append({"role": turn["role"], "content": parts})
        return messages

    def option_values(self) -> dict:
        """Options the caller set (unset and ``None`` ones left out)."""
        if self.options is None:
            return {}
        return self.options.model_dump(exclude_unset=True, exclude_none=True)


def extracted_text_part(attachment: Attachment) -> str:
    """A PDF sent as text to a model that cannot read PDFs, labelled so the model knows what it is."""
    return f"[Extracted text of the PDF file {attachment.name!r}]\n{pdf_text(attachment.content_bytes())}\n[End of {attachment.name!r}]"


def _check_attachments(attachments) -> list[Attachment]:
    attachments = list(attachments or ())
    if not all(isinstance(a, Attachment) for a in attachments):
        raise InvalidOptions("attachments must be a list of Attachment objects")
    return attachments


def _check_history(history) -> list[dict]:
    checked = []
    for item in history or ():
        if (
            not isinstance(item, dict)
            or item.get("role") not in ("user", "assistant")
            or not isinstance(item.get("content"), str)
        ):
            raise InvalidOptions('history must be a list of {"role": "user"|"assistant", "content": str} dicts')
        turn = {"role": item["role"], "content": item["content"]}
        if item.get("attachments"):
            turn["attachments"] = _check_attachments(item["attachments"])
        checked.append(turn)
    return checked


class Response:
    """The lazy result of a prompt. Iterate it to stream chunks; ``text()``
    gathers (and caches) them. Nothing is sent until the first iteration."""

    def __init__(
        self,
        prompt: Prompt,
        model: Model,
        stream: bool,
        conversation: Conversation | None = None,
        key: str | None = None,
    ):
        self.prompt = prompt
        self.model = model
        self.stream = stream
        self.conversation = conversation
        self.key = key
        self.usage: Usage | None = None
        self.duration_ms: int | None = None
        self.first_chunk_ms: int | None = None
        self.finish_reason: str | None = None
        self.error: LLMError | None = None  # set when the provider call failed
        self._chunks: list[str] = []
        self._done = False
        self._closed = False
        self._generator: Iterator[str] | None = None
        self._closers: list = []
        self._lock = threading.Lock()
        self._iterating = False

    # -- used by providers -------------------------------------------------
    def on_close(self, closer) -> None:
        """Register ``closer()`` to release the provider stream/connection."""
        self._closers.append(closer)
        if self._closed:
            self._run_closers()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- public API --------------------------------------------------------
    def __iter__(self) -> Iterator[str]:
        if self._done or self._closed or self.error is not None:
            yield from list(self._chunks)
            if self.error is not None and not self._closed:
                raise self.error  # a failed response fails the same way again, without a new request
            return
        with self._lock:
            if self._iterating:
                raise RuntimeError("This response is already being iterated")
            self._iterating = True
        start = time.monotonic()
        try:
            self._generator = iter(self.model.execute(self.prompt, self.stream, self, self.conversation))
            while True:
                try:
                    chunk = next(self._generator)
                except StopIteration:
                    break
                if self._closed:
                    break
                if not chunk:
                    continue
                if self.first_chunk_ms is None:
                    self.first_chunk_ms = int((time.monotonic() - start) * 1000)
                self._chunks.append(chunk)
                yield chunk
        except LLMError as exc:
            if self._closed:
                return
            error = self.error = self._cut_off(exc)
            if error is exc:
                raise
            raise error from exc
        except GeneratorExit:
            self.close()
            raise
        except Exception as exc:
            if self._closed:  # the provider connection was closed under us: a stop, not an error
                return
            error = self.model.translate_error(exc, self)
            if error is None:
                raise
            self.error = self._cut_off(error)
            raise self.error from exc
        finally:
            self.duration_ms = int((time.monotonic() - start) * 1000)
            self._iterating = False
            self._run_closers()  # release the provider stream/client whatever happened
            if self._generator is not None and not self._closed:
                try:
                    self._generator.close()
                except Exception:
                    pass
        self._done = True
        self._finish_usage()

    def _cut_off(self, error: LLMError) -> LLMError:
        """Errors after part of the answer arrived become ContentCutOff carrying it."""
        partial = "".join(self._chunks)
        if isinstance(error, ContentCutOff) and error.reason == "disconnected" and not (partial or error.partial_text):
            # Nothing arrived, so nothing was cut off: the provider just failed.
            return ProviderUnavailable(f"{error} (no answer received)", provider=error.provider, status=error.status)
        if isinstance(error, ContentCutOff):
            if not error.partial_text:
                error.partial_text = partial
            return error
        if partial and isinstance(error, (ProviderUnavailable, ProviderTimeout)):
            return ContentCutOff(f"{error} (the answer was cut off)", partial_text=partial, provider=error.provider)
        return error

    def _finish_usage(self) -> None:
        if self.usage is None:
            text = "".join(self._chunks)
            input_text = "\n".join(m["content"] for m in self.prompt.messages())
            image_tokens = sum(
                a.estimated_tokens() for turn in self.prompt.turns() for a in turn.get("attachments") or ()
            )
            self.usage = Usage(estimate_tokens(input_text) + image_tokens, estimate_tokens(text), estimated=True)

    def text(self) -> str:
        """The whole answer (runs the prompt if needed). Re-raises the error of a
        failed response; its ``partial_text`` has what arrived."""
        if not self._done and not self._closed:
            for _ in self:
                pass
        return "".join(self._chunks)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        state = "done" if self._done else ("closed" if self._closed else "pending")
        return f"<Response {self.model.model_id} {state} {self.prompt.prompt[:40]!r}>"

    @property
    def done(self) -> bool:
        return self._done

    def close(self) -> None:
        """Stop: release the provider stream/HTTP connection now. Iteration ends
        quietly; ``text()`` returns what had arrived. Safe to call twice, or
        from another thread (then the reading thread stops at its next chunk)."""
        if self._closed or self._done:
            self._closed = True
            return
        self._closed = True
        self._run_closers()
        generator = self._generator
        if generator is not None and not self._iterating:
            try:
                generator.close()
            except Exception:
                pass
        if self.usage is None and self._chunks:
            self._finish_usage()

    def _run_closers(self) -> None:
        closers, self._closers = self._closers, []
        for closer in closers:
            try:
                closer()
            except Exception:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class Conversation:
    """A chain of prompts: each one is sent with the previous prompts and answers."""

    def __init__(self, model: Model):
        self.model = model
        self.responses: list[Response] = []

    def history(self) -> list[dict]:
        messages = []
        for response in self.responses:
            turn = {"role": "user", "content": response.prompt.prompt}
            if response.prompt.attachments:
                turn["attachments"] = list(response.prompt.attachments)
            messages.append(turn)
            messages.append({"role": "assistant", "content": response.text()})
        return messages

    def prompt(
        self, prompt: str, system: str | None = None, stream: bool = True, attachments=None, **options
    ) -> Response:
        response = self.model.prompt(
            prompt,
            system=system,
            history=self.history(),
            stream=stream,
            attachments=attachments,
            _conversation=self,
            **options,
        )
        self.responses.append(response)
        return response


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
        attachments = _check_attachments(attachments)
        history = _check_history(history)
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
