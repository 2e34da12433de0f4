"""What comes out: a response, read whole or streamed, and a conversation that sends its earlier turns along."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .errors import (
    ContentCutOff,
    LLMError,
    ProviderTimeout,
    ProviderUnavailable,
)
from .prompts import Prompt, Usage, estimate_tokens

if TYPE_CHECKING:  # annotations only: models imports this module
    from .models import Model


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
