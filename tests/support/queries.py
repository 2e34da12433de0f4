"""Counting the SQL a piece of work sends: ``with counting_statements(app) as statements: ...``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from webapp.extensions import db


@contextmanager
def counting_statements(app) -> Iterator[list[str]]:
    """Every statement sent through ``app``'s engine inside the block, in order."""
    statements: list[str] = []

    def note(_conn, _cursor, statement, *_args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", note)
