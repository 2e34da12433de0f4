"""The in-process test server (tests/support/threaded_server.py) must not leave files open: a leaked file's
ResourceWarning fails whichever test is running when the garbage collector finds it."""

from __future__ import annotations

import socket
import struct

from flask import Flask

from tests.support.threaded_server import threaded_server
from tests.support.waiting import wait_for
from webapp.paths import PROJECT_ROOT


def fetch_then_reset(port: int, path: str) -> None:
    """Read the reply's first bytes, then hang up with a reset, as a browser does when it leaves the page."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_a_client_that_resets_after_a_static_file_leaves_no_file_open():
    # werkzeug's server alone leaves every one of these files open (its cleanup reads the reset socket
    # before closing the response).
    site = Flask(__name__, static_folder=str(PROJECT_ROOT / "static"))
    bodies = []

    def recording(environ, start_response):
        body = site(environ, start_response)
        bodies.append(body)
        return body

    with threaded_server(recording) as server:
        for _ in range(5):
            fetch_then_reset(server.server_port, "/static/icon.svg")
        wait_for(
            lambda: len(bodies) == 5 and all(body.file.closed for body in bodies),
            timeout=5,
            what="every served file closed",
        )
