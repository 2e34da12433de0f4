"""The Flask app a job runs inside: the current one (tests' SimpleWorker) or one per worker process."""

from __future__ import annotations

from contextlib import contextmanager

from flask import Flask, current_app, has_app_context

from webapp.app import create_app

_app: Flask | None = None


def worker_app() -> Flask:
    global _app
    if _app is None:
        _app = create_app()
    return _app


@contextmanager
def app_context():
    if has_app_context():
        yield current_app._get_current_object()
        return
    with worker_app().app_context():
        yield current_app._get_current_object()
