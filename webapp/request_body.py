"""A request body shorter than its ``Content-Length`` is refused (400), never taken as the whole body.

gunicorn marks its request input as self-terminating (``wsgi.input_terminated``), so Werkzeug
reads it to its end and takes an early end (the client hung up halfway) for the end of the body:
half a form would be saved. Without that mark Werkzeug reads through a ``LimitedStream`` of
``Content-Length`` bytes, which raises ``ClientDisconnected`` (a 400) when the stream ends early.
One place for every body: forms, JSON and uploads alike. A chunked body (no ``Content-Length``)
keeps the mark: its end is the server's to find.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.exceptions import ClientDisconnected

from .errors import error_response

CUT_SHORT = (
    "The request ended before all of its body arrived (the connection was cut). Nothing was saved: send it again."
)


class RefuseTruncatedBodies:
    """WSGI middleware: a body with a ``Content-Length`` is read to exactly that length, or refused."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        if environ.get("CONTENT_LENGTH"):
            environ.pop("wsgi.input_terminated", None)
        return self.wsgi_app(environ, start_response)


def init_app(app: Flask) -> None:
    app.wsgi_app = RefuseTruncatedBodies(app.wsgi_app)

    @app.errorhandler(ClientDisconnected)
    def body_cut_short(exc: ClientDisconnected):
        exc.description = CUT_SHORT
        return error_response(exc)
