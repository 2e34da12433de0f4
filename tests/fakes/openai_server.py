"""A fake OpenAI-compatible API: ``POST /v1/chat/completions`` (SSE
``chat.completion.chunk`` events + ``data: [DONE]``, or one JSON answer) and
``GET /v1/models``. Point the SDK at ``server.base_url`` (``url + "/v1"``)."""

from __future__ import annotations

import json
import time

from .base import FakeServer, RecordedRequest, split_tokens


class FakeOpenAIServer(FakeServer):
    def __init__(self, *, models=("gpt-4o", "gpt-4o-mini", "gpt-3.5-turbo"), require_key: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.models = list(models)
        self.require_key = require_key

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def default_reply(self, request):
        messages = (request.json or {}).get("messages") or [{}]
        return f"Fake answer to: {messages[-1].get('content', '')}"

    def error_body(self, status, message):
        kinds = {429: "rate_limit_exceeded", 401: "invalid_api_key", 404: "model_not_found"}
        return {
            "error": {"message": message, "type": "fake_error", "param": None, "code": kinds.get(status, str(status))}
        }

    def context_window_body(self):
        return {
            "error": {
                "message": "This model's maximum context length is 16385 tokens. However, your messages resulted "
                "in 20000 tokens. Please reduce the length of the messages.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        }

    def handle(self, handler, request, fault):
        if self.require_key is not None and request.header("authorization") != f"Bearer {self.require_key}":
            handler.send_json(401, self.error_body(401, "Incorrect API key provided: sk-...xyz."))
            return
        if request.method == "GET" and request.path.rstrip("/").endswith("/v1/models"):
            handler.send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"} for m in self.models
                    ],
                },
            )
            return
        if request.method == "POST" and request.path.endswith("/chat/completions"):
            self._chat(handler, request, fault)
            return
        handler.send_json(404, self.error_body(404, f"No route {request.method} {request.path}"))

    def _chat(self, handler, request, fault):
        body = request.json
        if not isinstance(body, dict) or "messages" not in body:
            handler.send_json(400, self.error_body(400, "messages is required"))
            return
        model = body.get("model", "gpt-4o")
        text = self.next_reply(request)
        kind = fault.kind if fault else None
        pieces = split_tokens(text)
        finish = "stop"
        if kind == "length":
            pieces = pieces[: fault.params.get("after", max(1, len(pieces) // 2))]
            finish = "length"
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(pieces),
            "total_tokens": prompt_tokens + len(pieces),
        }
        created = int(time.time())
        if not body.get("stream"):
            self.pace(0)
            if kind == "malformed":
                handler.send_json(200, b'{"id": "chatcmpl-fake", "choices": [{"message": ')
                return
            handler.send_json(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": finish,
                            "logprobs": None,
                            "message": {"role": "assistant", "content": "".join(pieces), "refusal": None},
                        }
                    ],
                    "usage": usage,
                },
            )
            return

        def event(delta, finish_reason=None, usage_payload=None, choices=True):
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
                if choices
                else [],
            }
            if usage_payload is not None:
                payload["usage"] = usage_payload
            return b"data: " + json.dumps(payload).encode() + b"\n\n"

        handler.start_stream("text/event-stream")
        framed = [event({"role": "assistant", "content": pieces[0]})]
        framed += [event({"content": piece}) for piece in pieces[1:]]
        if kind == "malformed":
            framed.insert(min(1, len(framed)), b'data: {"id": "chatcmpl-fake", "choices": [\n\n')
        closing = [event({}, finish_reason=finish)]
        if (body.get("stream_options") or {}).get("include_usage"):
            closing.append(event(None, usage_payload=usage, choices=False))
        closing.append(b"data: [DONE]\n\n")
        self.stream_pieces(handler, framed, fault if kind in ("cut", "stall") else None, closing)
