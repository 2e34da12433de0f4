"""A fake Gemini REST API (the paths google-generativeai uses with
``transport="rest"``): ``GET /v1beta/models``, ``POST
/v1beta/models/NAME:generateContent`` and ``:streamGenerateContent`` (a JSON
array written incrementally, not SSE). Point the SDK at ``server.url``."""

from __future__ import annotations

import json

from .base import FakeServer, split_tokens

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class FakeGeminiServer(FakeServer):
    def __init__(
        self,
        *,
        models=("gemini-1.5-pro", "gemini-1.5-flash", "gemini-2.0-flash"),
        require_key: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.models = list(models)
        self.require_key = require_key

    @property
    def generate_requests(self):
        return [r for r in self.requests if "generateContent" in r.path or "GenerateContent" in r.path]

    def default_reply(self, request):
        contents = (request.json or {}).get("contents") or [{}]
        parts = contents[-1].get("parts") or [{}]
        return f"Fake Gemini answer to: {parts[0].get('text', '')}"

    def error_body(self, status, message):
        return {"error": {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}}

    def context_window_body(self):
        return self.error_body(
            400, "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576)."
        )

    def handle(self, handler, request, fault):
        if self.require_key is not None and request.header("x-goog-api-key") != self.require_key:
            handler.send_json(400, self.error_body(400, "API key not valid. Please pass a valid API key."))
            return
        path = request.path
        if request.method == "GET" and path.rstrip("/") == "/v1beta/models":
            handler.send_json(
                200,
                {
                    "models": [
                        {
                            "name": f"models/{m}",
                            "baseModelId": m,
                            "version": "001",
                            "displayName": m.title(),
                            "description": "fake",
                            "inputTokenLimit": 32768,
                            "outputTokenLimit": 8192,
                            "supportedGenerationMethods": ["generateContent", "countTokens"],
                            "temperature": 1.0,
                            "topP": 0.95,
                            "topK": 40,
                        }
                        for m in self.models
                    ]
                },
            )
            return
        if request.method == "POST" and path.startswith("/v1beta/models/") and ":" in path:
            name, _, method = path[len("/v1beta/models/") :].partition(":")
            if method in ("generateContent", "streamGenerateContent"):
                self._generate(handler, request, fault, name, stream=method == "streamGenerateContent")
                return
        handler.send_json(404, self.error_body(404, f"No route {request.method} {path}"))

    def _generate(self, handler, request, fault, name, stream):
        body = request.json
        if not isinstance(body, dict) or not body.get("contents"):
            handler.send_json(400, self.error_body(400, "contents is required"))
            return
        if name not in self.models:
            handler.send_json(404, self.error_body(404, f"models/{name} is not found"))
            return
        kind = fault.kind if fault else None
        pieces = split_tokens(self.next_reply(request))
        finish = "STOP"
        if kind == "length":
            pieces = pieces[: fault.params.get("after", max(1, len(pieces) // 2))]
            finish = "MAX_TOKENS"
        prompt_tokens = sum(len(p.get("text", "").split()) for c in body["contents"] for p in c.get("parts", []))
        usage = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": len(pieces),
            "totalTokenCount": prompt_tokens + len(pieces),
        }

        def answer(text, finish_reason=None, with_usage=False):
            candidate = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
            if finish_reason:
                candidate["finishReason"] = finish_reason
            payload = {"candidates": [candidate], "modelVersion": name}
            if with_usage:
                payload["usageMetadata"] = usage
            return payload

        if not stream:
            self.pace(0)
            if kind == "malformed":
                handler.send_json(200, b'{"candidates": [{"content": ')
                return
            handler.send_json(200, answer("".join(pieces), finish, with_usage=True))
            return
        handler.start_stream("application/json")
        framed = []
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            payload = json.dumps(answer(piece, finish if last else None, with_usage=last)).encode()
            framed.append((b"[" if index == 0 else b",\r\n") + payload)
        if kind == "malformed":
            framed.insert(min(1, len(framed)), b',\r\n{"candidates": [}')
        self.stream_pieces(handler, framed, fault if kind in ("cut", "stall", "malformed") else None, [b"]"])
