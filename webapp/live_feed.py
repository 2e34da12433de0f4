"""One pub/sub reader per web process that wakes every event stream it serves when a worker writes their
reply (the writes publish on each generation's notify channel: ``webapp.live``)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import redis

from .live import notify_channel

log = logging.getLogger(__name__)


class LiveFeed:
    """One per web process: a single pub/sub connection wakes every event stream it serves.

    An open event stream subscribes to its generation's notify channel and waits on a
    ``threading.Event`` (a greenlet-friendly one under gevent); the reader thread sets
    it when the worker writes. The stream itself then reads the exact text with a
    non-blocking XREAD, so a wake-up that carries nothing new costs one round trip and
    a missed one cannot lose text (the stream is the record, the channel only a nudge).
    """

    RECONNECT_SECONDS = 1.0

    def __init__(self, connection: redis.Redis):
        self.connection = connection
        self._pubsub = connection.pubsub()
        self._lock = threading.Lock()
        # redis-py's PubSub is not safe to command from several threads: two first SUBSCRIBEs at
        # once would each open a connection, and one would be lost with its subscriptions.
        self._command_lock = threading.Lock()
        self._waiting: dict[bytes, set[threading.Event]] = {}
        self._reader: threading.Thread | None = None
        self._closed = threading.Event()

    def subscribe(self, generation_id: int) -> Subscription:
        channel = notify_channel(generation_id).encode()
        event = threading.Event()
        with self._lock:
            waiting = self._waiting.setdefault(channel, set())
            first = not waiting
            waiting.add(event)
            if self._reader is None:
                self._reader = threading.Thread(target=self._read_forever, name="live-feed", daemon=True)
                self._reader.start()
        if first:
            try:
                with self._command_lock:
                    self._pubsub.subscribe(channel)
            except (redis.RedisError, OSError):
                # Its connection went stale while nobody listened (Redis restarted): start afresh, once.
                if not self._resubscribe():
                    self._unsubscribe(channel, event)
                    raise redis.ConnectionError("live feed: cannot subscribe (Redis unavailable)") from None
        return Subscription(self, channel, event)

    def _unsubscribe(self, channel: bytes, event: threading.Event) -> None:
        with self._lock:
            waiting = self._waiting.get(channel)
            if waiting is None:
                return
            waiting.discard(event)
            last = not waiting
            if last:
                del self._waiting[channel]
        if last:
            try:
                with self._command_lock:
                    self._pubsub.unsubscribe(channel)
            except redis.RedisError:
                pass  # the reader reconnects and subscribes only to what is still waited on

    def subscribers(self) -> int:
        with self._lock:
            return sum(len(events) for events in self._waiting.values())

    def _read_forever(self) -> None:
        while not self._closed.is_set():
            with self._command_lock, self._lock:  # the order every holder of both takes them in
                if not self._waiting:  # nobody to wake: end, the next subscriber starts a reader again
                    self._reader = None
                    # and a fresh connection: this one would go stale unnoticed if Redis restarted meanwhile
                    self._drop_connection()
                    return
            try:
                message = self._pubsub.get_message(timeout=1.0)
            except Exception as exc:
                if self._closed.is_set():  # closed under it (redis-py then raises any kind of error)
                    return
                if not isinstance(exc, redis.RedisError | OSError | ValueError):  # ValueError: its socket closed
                    raise
                log.warning("live feed: Redis unavailable; reconnecting")
                self._wake_all()  # streams read for themselves and end if Redis is really gone
                self._closed.wait(self.RECONNECT_SECONDS)
                self._resubscribe()
                continue
            # A subscription's confirmation wakes its streams too: a write that landed between
            # their first read and the SUBSCRIBE reaching Redis was never published to us.
            if message is None or message.get("type") not in ("message", "subscribe"):
                continue
            with self._lock:
                events = list(self._waiting.get(message["channel"], ()))
            for event in events:
                event.set()

    def _resubscribe(self) -> bool:
        """A new connection, subscribed to every channel still waited on; whether that worked."""
        try:
            with self._command_lock:
                self._pubsub.reset()
                with self._lock:
                    channels = list(self._waiting)
                if channels:
                    self._pubsub.subscribe(*channels)
            return True
        except (redis.RedisError, OSError):
            return False

    def _drop_connection(self) -> None:
        """(Its caller holds the command lock.)"""
        try:
            self._pubsub.reset()
        except (redis.RedisError, OSError):
            pass

    def _wake_all(self) -> None:
        with self._lock:
            events = [event for waiting in self._waiting.values() for event in waiting]
        for event in events:
            event.set()

    def close(self) -> None:
        self._closed.set()
        with self._command_lock:  # not while the reader drops the connection itself (two resets at once fail)
            try:
                self._pubsub.close()
            except (redis.RedisError, OSError):
                pass


@dataclass
class Subscription:
    feed: LiveFeed
    channel: bytes
    event: threading.Event

    def wait(self, timeout: float) -> bool:
        """Until the generation's stream may have grown (True) or ``timeout`` seconds pass (False)."""
        woke = self.event.wait(timeout)
        self.event.clear()  # cleared before the caller reads, so a write after the read wakes it again
        return woke

    def close(self) -> None:
        self.feed._unsubscribe(self.channel, self.event)

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.close()
