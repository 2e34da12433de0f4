"""The offline echo model: the default, needs no key or network.

It streams the user's text back word by word, ``ECHO_DELAY`` seconds (or the
``delay`` option) apart, after a plain statement of what it is.
"""

from __future__ import annotations

import re
import threading

from pydantic import BaseModel, ConfigDict, Field

from .. import config
from ..attachments import describe
from ..models import Model
from ..prompts import Usage

PREFIX = "Echo (offline model): "


class EchoModel(Model):
    model_id = "echo"
    provider = "echo"
    label = "Echo (offline test model)"
    needs_key = False
    can_stream = True
    aliases = ("offline",)
    supports_images = True
    supports_pdf = True

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        delay: float | None = Field(
            None, ge=0, le=5, description="Seconds between chunks (default: ECHO_DELAY setting)"
        )

    def execute(self, prompt, stream, response, conversation):
        options = prompt.option_values()
        delay = options.get("delay")
        if delay is None:
            delay = config.float_setting("ECHO_DELAY")
        stopped = threading.Event()
        response.on_close(stopped.set)
        words = re.findall(r"\S+\s*", prompt.prompt) or [""]
        pieces = [PREFIX] + words
        if prompt.attachments:  # says what it received, so attachments can be tried without a key
            pieces.insert(1, f"(received {describe(prompt.attachments)}) ")
        if not stream:
            if delay:
                stopped.wait(delay * len(words))
            text = "".join(pieces)
            yield text
        else:
            for index, piece in enumerate(pieces):
                if index and delay and stopped.wait(delay):
                    return
                yield piece
        input_words = sum(len(m["content"].split()) for m in prompt.messages())
        input_words += sum(a.estimated_tokens() for turn in prompt.turns() for a in turn.get("attachments") or ())
        response.usage = Usage(input_tokens=input_words, output_tokens=len(prompt.prompt.split()))


def register(registry):
    registry.add_provider("echo", "Echo (offline)", list_models=lambda: ["echo"])
    registry.add_model(EchoModel)
