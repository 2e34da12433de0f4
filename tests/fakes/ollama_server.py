"""A fake Ollama server as litellm's ``ollama_chat/`` provider calls it:
``POST /api/chat`` (``{"model", "messages", "options", "stream"}``), answering
NDJSON lines when streaming (``{"message": {...}, "done": false}`` ... then a
``"done": true`` line with ``done_reason`` and token counts) or one JSON object.
Also ``GET /api/tags``, ``POST /api/show``. Point ``api_base`` at ``server.url``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from .base import FakeServer, split_tokens


class FakeOllamaServer(FakeServer):
    def __init__(self, *, models=("llama3",), **kwargs):
        super().__init__(**kwargs)
        self.models = list(models)

    @property
    def chat_requests(self):
        return [r for r in self.requests if r.path == "/api/chat"]

    def default_reply(self, request):
        messages = (request.json or {}).get("messages") or [{}]
        return f"Fake Ollama answer to: {messages[-1].get('content', '')}"

    def error_body(self, status, message):
        return {"error": message}

    def _names(self):
        return [m if ":" in m else m + ":latest" for m in self.models]

    def handle(self, handler, request, fault):
        if request.method == "GET" and request.path == "/api/tags":
            handler.send_json(
                200, {"models": [{"name": n, "model": n, "size": 1, "details": {}} for n in self._names()]}
            )
            return
        if request.method == "POST" and request.path == "/api/show":
            handler.send_json(200, {"template": "{{ .Prompt }}", "details": {"family": "llama"}, "model_info": {}})
            return
        if request.method == "POST" and request.path == "/api/chat":
            self._chat(handler, request, fault)
            return
        handler.send_json(404, self.error_body(404, "404 page not found"))

    def _chat(self, handler, request, fault):
        body = request.json
        if not isinstance(body, dict) or "messages" not in body:
            handler.send_json(400, self.error_body(400, "invalid request"))
            return
        model = body.get("model", "")
        if model not in self.models and model not in self._names():
            handler.send_json(404, self.error_body(404, f"model '{model}' not found, try pulling it first"))
            return
        kind = fault.kind if fault else None
        pieces = split_tokens(self.next_reply(request))
        done_reason = "stop"
        if kind == "length":
            pieces = pieces[: fault.params.get("after", max(1, len(pieces) // 2))]
            done_reason = "length"
        created = datetime.now(UTC).isoformat()
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        final = {
            "model": model,
            "created_at": created,
            "message": {"role": "assistant", "content": ""},
            "done_reason": done_reason,
            "done": True,
            "total_duration": 1000,
            "load_duration": 10,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": 10,
            "eval_count": len(pieces),
            "eval_duration": 100,
        }
        if body.get("stream") is False:
            self.pace(0)
            if kind == "malformed":
                handler.send_json(200, b'{"model": "x", "message": ')
                return
            handler.send_json(200, {**final, "message": {"role": "assistant", "content": "".join(pieces)}})
            return
        handler.start_stream("application/x-ndjson")
        framed = [
            json.dumps(
                {
                    "model": model,
                    "created_at": created,
                    "message": {"role": "assistant", "content": piece},
                    "done": False,
                }
            ).encode()
            + b"\n"
            for piece in pieces
        ]
        if kind == "malformed":
            framed.insert(min(1, len(framed)), b'{"model": "x", "message": \n')
        self.stream_pieces(
            handler, framed, fault if kind in ("cut", "stall") else None, [json.dumps(final).encode() + b"\n"]
        )
