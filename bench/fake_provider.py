"""A fake OpenAI-format streaming provider for the benchmark: ``python -m bench.fake_provider --port P``.

Asyncio, one process, so a hundred slow streams cost it almost nothing. Each
token it streams is ``⟨<time.time_ns() when written>⟩ ``, so whoever finally
receives the text can tell how long the token took to get there.

Pacing comes from the last user message, so one server serves every phase:
``ttft=0.2 tps=20 tokens=40`` anywhere in the prompt (defaults from the
command line). ``GET /health`` answers at once (the round-trip floor).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time

STAMP_RE = re.compile(r"⟨(\d+)⟩")
_PARAM_RE = re.compile(r"\b(ttft|tps|tokens)=([0-9.]+)")


def stamps(text: str) -> list[int]:
    """Send times (ns) of the tokens in ``text``."""
    return [int(m) for m in STAMP_RE.findall(text)]


class Pacing:
    def __init__(self, ttft: float, tps: float, tokens: int):
        self.ttft, self.tps, self.tokens = ttft, tps, tokens

    def override(self, prompt: str) -> Pacing:
        values = {k: float(v) for k, v in _PARAM_RE.findall(prompt or "")}
        return Pacing(
            values.get("ttft", self.ttft), values.get("tps", self.tps), int(values.get("tokens", self.tokens))
        )


def _event(payload: dict) -> bytes:
    data = b"data: " + json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


def _chunk(model: str, delta: dict | None, finish=None, usage=None) -> bytes:
    payload = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        payload["usage"] = usage
    return _event(payload)


async def _read_request(reader: asyncio.StreamReader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    body = await reader.readexactly(length) if length else b""
    return method, path, headers, body


async def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def _respond_json(writer, status: int, payload: dict, keep_alive: bool) -> None:
    body = json.dumps(payload).encode()
    reason = {200: "OK", 404: "Not Found", 400: "Bad Request"}.get(status, "OK")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    ).encode()
    await _write(writer, head + body)


async def _stream(writer, body: dict, pacing: Pacing) -> None:
    model = body.get("model", "gpt-4o")
    await _write(
        writer,
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    )
    if pacing.ttft > 0:
        await asyncio.sleep(pacing.ttft)
    gap = 1.0 / pacing.tps if pacing.tps > 0 else 0.0
    next_at = time.monotonic()
    for index in range(pacing.tokens):
        if index and gap:
            next_at += gap
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        delta = {"content": f"⟨{time.time_ns()}⟩ "}
        if index == 0:
            delta["role"] = "assistant"
        await _write(writer, _chunk(model, delta))
    usage = {"prompt_tokens": 1, "completion_tokens": pacing.tokens, "total_tokens": pacing.tokens + 1}
    await _write(
        writer,
        _chunk(model, {}, finish="stop")
        + _chunk(model, None, usage=usage)
        + _event_raw(b"data: [DONE]\n\n")
        + b"0\r\n\r\n",
    )


async def _complete(writer, body: dict, pacing: Pacing, keep_alive: bool) -> None:
    """A non-streaming answer: the same tokens, sent at once when the last would have been."""
    total = pacing.ttft + (max(pacing.tokens - 1, 0) / pacing.tps if pacing.tps > 0 else 0.0)
    if total > 0:
        await asyncio.sleep(total)
    now = time.time_ns()
    await _respond_json(
        writer,
        200,
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "gpt-4o"),
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "".join(f"⟨{now}⟩ " for _ in range(pacing.tokens))},
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": pacing.tokens, "total_tokens": pacing.tokens + 1},
        },
        keep_alive,
    )


def _event_raw(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def make_handler(default: Pacing):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    method, path, headers, raw = await _read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                keep_alive = headers.get("connection", "").lower() != "close"
                if method == "POST" and path.rstrip("/").endswith("/chat/completions"):
                    body = json.loads(raw or b"{}")
                    messages = body.get("messages") or [{}]
                    prompt = str(messages[-1].get("content", ""))
                    if body.get("stream"):
                        await _stream(writer, body, default.override(prompt))
                        return  # streams end with the connection
                    await _complete(writer, body, default.override(prompt), keep_alive)
                elif path.startswith("/health"):
                    await _respond_json(writer, 200, {"ok": True, "t": time.time_ns()}, keep_alive)
                elif path.rstrip("/").endswith("/v1/models"):
                    await _respond_json(
                        writer,
                        200,
                        {
                            "object": "list",
                            "data": [{"id": "gpt-4o", "object": "model", "created": 0, "owned_by": "bench"}],
                        },
                        keep_alive,
                    )
                else:
                    await _respond_json(writer, 404, {"error": {"message": f"no route {path}"}}, keep_alive)
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    return handle


async def serve(port: int, default: Pacing) -> None:
    server = await asyncio.start_server(make_handler(default), "127.0.0.1", port, backlog=1024)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_provider")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ttft", type=float, default=0.0)
    parser.add_argument("--tps", type=float, default=0.0)
    parser.add_argument("--tokens", type=int, default=20)
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.port, Pacing(args.ttft, args.tps, args.tokens)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
