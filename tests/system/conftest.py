"""Process-level tests: the app as `make run` serves it (gunicorn, workers, Valkey), several processes at once.

PostgreSQL for them: TEST_DATABASE_URL when set (each test makes and drops its own database there), else a
throwaway cluster started here with Debian's postgresql binaries (as `.ci/run` does), else skip.
"""

from __future__ import annotations

import os
from contextlib import ExitStack

import pytest

from bench.postgres import Unavailable, throwaway_cluster
from tests.support.postgres import own_database


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
    with own_database(postgres_server) as url:
        yield url
