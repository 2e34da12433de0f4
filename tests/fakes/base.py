"""A local HTTP server in a thread with request recording and fault injection.

Subclasses implement ``handle(handler, request)``; the helpers here write JSON,
chunked streams, errors and the scripted faults. Every response closes its
connection (``Connection: close``) so servers stop promptly.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# Fault kinds understood by every fake server (see FakeServer.fail_next).
STATUS_FAULTS = {
    "rate_limit": 429,
    "server_error": 500,
    "unavailable": 503,
    "unauthorized": 401,
    "forbidden": 403,
    "bad_request": 400,
    "not_found": 404,
}
FAULT_KINDS = set(STATUS_FAULTS) | {
    "status",
    "timeout",
    "stall",
    "cut",
    "malformed",
    "length",
    "disconnect",
    "context_window",
}


@dataclass
class Fault:
    kind: str
    path: str | None = None  # only requests whose path contains this
    params: dict = field(default_factory=dict)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes
    json: object = None

    def header(self, name: str, default=None):
        return self.headers.get(name.lower(), default)


class ClientGone(Exception):
    """The client hung up while we were writing."""


class CutConnection(Exception):
    """A scripted fault: stop writing and drop the connection."""


def closed_port_url(scheme: str = "http") -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"{scheme}://127.0.0.1:{port}"


def split_tokens(text: str) -> list[str]:
    """Stream pieces: words with their trailing space."""
    pieces, current = [], ""
    for char in text:
        current += char
        if char == " ":
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return pieces or [""]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeServer/1.0"

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def setup(self):
        super().setup()
        self.server.fake._connected()

    @property
    def connection_header(self) -> str:
        return "keep-alive" if self.server.fake.keep_alive else "close"

    def _dispatch(self):
        fake: FakeServer = self.server.fake
        self.close_connection = not fake.keep_alive
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        request = RecordedRequest(
            self.command,
            split.path,
            parse_qs(split.query),
            {k.lower(): v for k, v in self.headers.items()},
            body,
            parsed,
        )
        fake._record(request)
        self.fake = fake
        self.chunked = False
        try:
            fault = fake._take_fault(request.path)
            if fault is not None and fake._apply_fault(self, request, fault):
                return
            fake.handle(self, request, fault)
        except (ClientGone, BrokenPipeError, ConnectionResetError):
            fake.disconnected.set()
        except CutConnection:
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    do_GET = do_POST = do_PUT = do_DELETE = _dispatch

    # -- writing helpers -------------------------------------------------------
    def send_json(self, status: int, payload, headers: dict | None = None):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", self.connection_header)
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.end_headers()
        self.write(body)

    def start_stream(self, content_type: str, status: int = 200):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", self.connection_header)
        self.end_headers()
        self.chunked = True
        self.write(b"")

    def write(self, data: bytes):
        try:
            if self.chunked and data:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            elif data:
                self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError) as exc:
            raise ClientGone() from exc

    def end_stream(self):
        if self.chunked:
            self.write_raw(b"0\r\n\r\n")

    def write_raw(self, data: bytes):
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError) as exc:
            raise ClientGone() from exc


class FakeServer:
    """Base class. Use as a context manager (or ``start()``/``stop()``).

    * ``url``: ``http://127.0.0.1:PORT``.
    * ``requests``: every request received (:class:`RecordedRequest`), oldest first.
    * ``fail_next(kind, times=1, path=None, **params)``: script the next matching
      request(s) to fail. Kinds: ``rate_limit`` (``retry_after=`` seconds, or
      ``None`` for no header), ``server_error`` (500), ``unavailable`` (503),
      ``unauthorized`` (401), ``forbidden`` (403), ``bad_request`` (400),
      ``not_found`` (404), ``status`` (``status=``, ``message=``), ``timeout``
      (send nothing for ``seconds=`` - default until the server stops),
      ``stall`` (stream ``after=`` pieces then go silent), ``cut`` (stream
      ``after=`` pieces then drop the connection), ``malformed`` (invalid JSON),
      ``length`` (answer stops at the token limit), ``disconnect`` (drop the
      connection without answering), ``context_window`` (the provider's own 400 for a prompt longer
      than the model's context window).
    * ``reply``: the answer text; a string or ``callable(RecordedRequest) -> str``.
      ``queue_reply(text)`` sets the answer for the next request only.
    * Pacing for benchmarks: ``ttft`` (seconds before the first piece) and
      ``tokens_per_second`` (``None``/0 = no delay between pieces).
    * ``disconnected`` (threading.Event): set when a client hung up mid-answer.
    * ``keep_alive``: keep connections open between requests (else every answer closes its own);
      ``connections`` counts the TCP connections accepted.
    """

    def __init__(
        self,
        *,
        reply=None,
        ttft: float = 0.0,
        tokens_per_second: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        keep_alive: bool = False,
    ):
        self.keep_alive = keep_alive
        self.connections = 0
        self.reply = reply
        self.ttft = ttft
        self.tokens_per_second = tokens_per_second
        self.requests: list[RecordedRequest] = []
        self.disconnected = threading.Event()
        self._faults: deque[Fault] = deque()
        self._replies: deque[str] = deque()
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"{type(self).__name__}:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # -- scripting -------------------------------------------------------------------
    def fail_next(self, kind: str, times: int = 1, path: str | None = None, **params) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(FAULT_KINDS)}")
        with self._lock:
            for _ in range(times):
                self._faults.append(Fault(kind, path, params))

    def queue_reply(self, text: str) -> None:
        with self._lock:
            self._replies.append(text)

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self._replies.clear()
            self.requests.clear()
        self.disconnected.clear()

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"expected {count} requests, got {len(self.requests)}")
                self._lock.wait(remaining)
            return list(self.requests)

    @property
    def last_request(self) -> RecordedRequest:
        return self.requests[-1]

    # -- internals used by handlers ------------------------------------------------------
    def _connected(self) -> None:
        with self._lock:
            self.connections += 1

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)
            self._lock.notify_all()

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path is None or fault.path in path:
                    self._faults.remove(fault)
                    return fault
        return None

    def next_reply(self, request: RecordedRequest) -> str:
        with self._lock:
            if self._replies:
                return self._replies.popleft()
        if callable(self.reply):
            return self.reply(request)
        if self.reply is not None:
            return self.reply
        return self.default_reply(request)

    def default_reply(self, request: RecordedRequest) -> str:
        return "Hello from the fake server!"

    def sleep(self, seconds: float) -> bool:
        """Wait (cut short when the server stops); True if the server is stopping."""
        return self._stopping.wait(seconds) if seconds > 0 else self._stopping.is_set()

    def pace(self, index: int) -> None:
        if index == 0:
            self.sleep(self.ttft)
        elif self.tokens_per_second:
            self.sleep(1.0 / self.tokens_per_second)

    def error_body(self, status: int, message: str):  # overridden per provider
        return {"error": {"message": message, "code": status}}

    def context_window_body(self):  # overridden per provider: its own words for a prompt over the window
        return self.error_body(400, "The prompt is longer than the model's context window")

    def _apply_fault(self, handler: _Handler, request: RecordedRequest, fault: Fault) -> bool:
        """Handle a fault that replaces the whole answer; False lets ``handle`` run
        (stream faults - cut, stall, length, malformed - are applied there)."""
        kind, params = fault.kind, fault.params
        if kind in STATUS_FAULTS or kind == "status":
            status = params.get("status", STATUS_FAULTS.get(kind, 500))
            message = params.get("message", f"fake {kind} ({status})")
            headers = {}
            if kind == "rate_limit" and params.get("retry_after", 1) is not None:
                headers["Retry-After"] = params.get("retry_after", 1)
            handler.send_json(status, self.error_body(status, message), headers)
            return True
        if kind == "timeout":
            self.sleep(params.get("seconds", 30))
            return True
        if kind == "context_window":
            handler.send_json(400, self.context_window_body())
            return True
        if kind == "disconnect":
            raise CutConnection()
        return False

    def handle(self, handler: _Handler, request: RecordedRequest, fault: Fault | None) -> None:
        raise NotImplementedError

    def stream_pieces(
        self, handler: _Handler, pieces: list[bytes], fault: Fault | None, closing: list[bytes] = ()
    ) -> None:
        """Write ``pieces`` (already framed), honouring pacing and cut/stall faults,
        then ``closing`` and the end of the chunked body."""
        kind = fault.kind if fault else None
        after = fault.params.get("after", max(1, len(pieces) // 2)) if fault else None
        for index, piece in enumerate(pieces):
            if kind in ("cut", "stall") and index == after:
                if kind == "cut":
                    raise CutConnection()
                self.sleep(fault.params.get("seconds", 30))
                raise CutConnection()
            self.pace(index)
            handler.write(piece)
        for piece in closing:
            handler.write(piece)
        handler.end_stream()
