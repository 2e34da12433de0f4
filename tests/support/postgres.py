"""PostgreSQL for process-level tests: a database of their own on the test server."""

from __future__ import annotations

import uuid
from contextlib import contextmanager


@contextmanager
def own_database(server: str):
    """A database of its own on that server, dropped afterwards (other tests use the default one)."""
    import psycopg

    server = server.replace("postgresql+psycopg://", "postgresql://").replace("postgres://", "postgresql://")
    name = f"sb_scale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _old = server.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
