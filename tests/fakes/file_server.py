"""A local web server that serves files by path (for attachments given as URLs): ``files[path] = bytes``,
``redirects[path] = location``; anything else is a 404. Faults as every fake (``stall`` holds the answer)."""

from __future__ import annotations

from .base import FakeServer


class FakeFileServer(FakeServer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.files: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}

    def handle(self, handler, request, fault):
        if fault is not None and fault.kind == "stall":
            self.sleep(fault.params.get("seconds", 5))
        if request.path in self.redirects:
            handler.send_response(302)
            handler.send_header("Location", self.redirects[request.path])
            handler.send_header("Content-Length", "0")
            handler.send_header("Connection", "close")
            handler.end_headers()
            return
        body = self.files.get(request.path)
        if body is None:
            handler.send_json(404, {"error": "not found"})
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.write(body)
