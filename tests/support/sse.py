"""Server-sent events, as the tests and the bench read them: the reply event stream and OpenAI's chunk streams."""

from __future__ import annotations

import json


async def aiter_events(response):
    """``(event name, data)`` for each event of a streamed httpx response; comments (heartbeats) skipped."""
    event: dict = {}
    async for line in response.aiter_lines():
        if line:
            if not line.startswith(":"):
                name, _, value = line.partition(": ")
                event[name] = value
            continue
        if event:
            yield event.get("event"), event.get("data"), event.get("id")
        event = {}


def openai_chunks(text: str) -> list:
    """The JSON chunks of an OpenAI-format stream (``data: {...}`` lines), which must end with ``data: [DONE]``."""
    events = [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]
    assert events and events[-1] == "[DONE]", events[-3:]
    return [json.loads(event) for event in events[:-1]]
