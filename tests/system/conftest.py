"""Process-level tests (real gunicorn, workers, Valkey, PostgreSQL): every one is marked slow."""

from tests.test_scale_out import postgres_server, postgres_url

__all__ = ["postgres_server", "postgres_url"]  # a database of its own on PostgreSQL, for a migrated stack
