"""What goes into a model: a prompt (text, system prompt, attachments, options, earlier turns) and what it used."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel

from .attachments import Attachment, pdf_text
from .errors import (
    InvalidOptions,
)

if TYPE_CHECKING:  # annotations only: models imports this module
    from .models import Model


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


def check_attachments(attachments) -> list[Attachment]:
    attachments = list(attachments or ())
    if not all(isinstance(a, Attachment) for a in attachments):
        raise InvalidOptions("attachments must be a list of Attachment objects")
    return attachments


def check_history(history) -> list[dict]:
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
            turn["attachments"] = check_attachments(item["attachments"])
        checked.append(turn)
    return checked
