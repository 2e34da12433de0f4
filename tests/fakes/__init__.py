"""Local fake provider servers (127.0.0.1, port 0) for tests and benchmarks.

from tests.fakes import FakeOpenAIServer
with FakeOpenAIServer() as server:
    server.fail_next("rate_limit", retry_after=2)
    ...  # point the client at server.base_url
    server.last_request.json["messages"]
"""

from .base import FAULT_KINDS, FakeServer, RecordedRequest, closed_port_url, split_tokens
from .file_server import FakeFileServer
from .gemini_server import FakeGeminiServer
from .ollama_server import FakeOllamaServer
from .openai_server import FakeOpenAIServer

__all__ = [
    "FakeServer",
    "FakeOpenAIServer",
    "FakeGeminiServer",
    "FakeOllamaServer",
    "FakeFileServer",
    "RecordedRequest",
    "closed_port_url",
    "split_tokens",
    "FAULT_KINDS",
]
