"""The app on werkzeug's threaded server in the test process, for tests that need a real socket but no gunicorn."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wsgi import FileWrapper


def files_read_whole(app):
    """Hand the server a file's response as bytes, the file already closed.

    When a client resets the connection once a file has been sent (a browser leaving the page), werkzeug's
    server drains the dead socket in a `finally` that raises before it closes the response. The file would
    then be closed by the garbage collector, and its ResourceWarning, an error in these tests, would fail
    whichever test happened to be running.
    """

    def application(environ, start_response):
        body = app(environ, start_response)
        if not isinstance(body, FileWrapper):
            return body
        try:
            return [b"".join(body)]
        finally:
            body.close()

    return application


@contextmanager
def threaded_server(app) -> Iterator[BaseWSGIServer]:
    """Serve `app` on 127.0.0.1 at a free port until the block ends."""
    server = make_server("127.0.0.1", 0, files_read_whole(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="test-wsgi-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
