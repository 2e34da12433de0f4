import threading
import time

import pytest
import redis

from webapp import live


@pytest.fixture
def connection(redis_url):
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.close()


def test_read_since_returns_only_text_after_the_cursor(connection):
    writer = live.LiveWriter(connection, 1)
    for chunk in ["Hello", ", ", "wörld", "!"]:
        writer.append(chunk)
    assert live.read_since(connection, 1, 0).text == "Hello, wörld!"
    update = live.read_since(connection, 1, 7)
    assert update.text == "wörld!" and update.cursor == 13
    # A cursor inside a chunk gets the rest of that chunk.
    assert live.read_since(connection, 1, 9).text == "rld!"
    assert live.read_since(connection, 1, 13).text == ""


def test_status_marks_are_seen_at_the_end(connection):
    writer = live.LiveWriter(connection, 2)
    writer.append("abc")
    writer.mark("succeeded")
    update = live.read_since(connection, 2, 3)
    assert update.text == "" and update.statuses == ["succeeded"]


def test_wait_returns_as_soon_as_text_arrives(connection):
    writer = live.LiveWriter(connection, 3)
    results = []
    reader = threading.Thread(target=lambda: results.append(live.read_since(connection, 3, 0, wait_ms=5000)))
    started = time.monotonic()
    reader.start()
    writer.append("first chunk")
    reader.join(timeout=10)
    assert results and results[0].text == "first chunk"
    assert time.monotonic() - started < 5  # woke on the chunk, not on the timeout


def test_wait_gives_up_after_the_timeout_with_nothing(connection):
    update = live.read_since(connection, 4, 0, wait_ms=50)
    assert update.text == "" and update.cursor == 0


def test_reset_starts_a_retry_from_zero(connection):
    writer = live.LiveWriter(connection, 5)
    writer.append("partial")
    writer.reset()
    writer.append("fresh")
    assert live.read_since(connection, 5, 0).text == "fresh"
