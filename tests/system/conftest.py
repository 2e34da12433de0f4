"""Process-level tests: the app as `make run` serves it (gunicorn, workers, Valkey), several processes at once.

PostgreSQL for them: TEST_DATABASE_URL when set (each test makes and drops its own database there), else a
throwaway cluster started here with Debian's postgresql binaries (as `.ci/run` does), else skip.
"""

from __future__ import annotations

import os
import uuid
from contextlib import ExitStack

import pytest

from bench.postgres import Unavailable, throwaway_cluster


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/system/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def postgres_server():
    """TEST_DATABASE_URL, else a throwaway cluster (as .ci/run starts one), else skip."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    with ExitStack() as stack:
        try:
            url = stack.enter_context(throwaway_cluster(max_connections=200))
        except Unavailable as exc:
            pytest.skip(f"no PostgreSQL: set TEST_DATABASE_URL ({exc})")
        yield url


@pytest.fixture
def postgres_url(postgres_server):
    """A database of its own on that server, dropped afterwards (other tests use the default one)."""
    import psycopg

    server = postgres_server.replace("postgresql+psycopg://", "postgresql://").replace("postgres://", "postgresql://")
    name = f"sb_scale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _old = server.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
