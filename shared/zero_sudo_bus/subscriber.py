"""Subscribing to a relay's Redis channel: gap detection, reconnects, flush callbacks.

Two front ends share one dispatcher (:class:`BusDispatcher`) and one subscribe-and-listen
logic (:class:`Subscription`: confirmation, then data), each with a thin loop around it:

* :class:`AsyncBusSubscriber` for the asyncio daemons (the gateway);
* :class:`ThreadedBusSubscriber` for Odoo server processes: one bounded background thread
  per process, since an Odoo worker has no event loop of its own.

The gateway's pattern subscription to the users' channels is the same :class:`Subscription`
on :func:`follow_async`.

The owner supplies ``on_change(message)`` and ``on_flush(reason)``. ``on_flush`` is called
whenever events may have been missed: on every (re)subscribe, on a relay ``flush`` message,
on a skipped sequence number and on an epoch change; after it, the owner must treat
everything it derived from earlier events as stale.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from .backoff import Backoff
from .protocol import BusMessage, FlushReason, MessageKind, Rejected, bus_channel, decode_bus_message
from .redis_clients import RedisTarget, async_client, sync_client

_logger = logging.getLogger(__name__)

ChangeCallback = Callable[[BusMessage], None]
# The reason is a FlushReason, or the text of one a newer relay sent (see BusMessage.reason).
FlushCallback = Callable[[FlushReason | str], None]

# Redis errors worth a reconnect: the server restarted, the connection was killed, or the
# network hiccuped. Anything else is a bug in the owner's callbacks and is not retried here.
TRANSIENT_REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

# A PING on an idle subscription every 10 s detects a half-open TCP connection (server gone
# without a FIN) well before the relay's own keepalives would.
HEALTH_CHECK_INTERVAL_S = 10

# A Redis that does not confirm a SUBSCRIBE within this time is treated as down.
SUBSCRIBE_TIMEOUT_S = 5.0


@dataclass
class SequenceTracker:
    """Follows (epoch, seq) of a relay's messages and says when a flush is owed."""

    epoch: str | None = None
    seq: int = -1

    def reset(self) -> None:
        """Forget the position: called on every (re)subscribe, which itself flushes."""
        self.epoch, self.seq = None, -1

    def observe(self, message: BusMessage) -> FlushReason | str | None:
        """The flush reason this message implies, or None when it follows on in order."""
        previous_epoch, previous_seq = self.epoch, self.seq
        self.epoch, self.seq = message.epoch, message.seq
        if message.kind == MessageKind.FLUSH:
            return message.reason or FlushReason.START
        if previous_epoch is None:
            return None
        if message.epoch != previous_epoch:
            return FlushReason.EPOCH
        if message.seq != previous_seq + 1:
            return FlushReason.GAP
        return None


class BusDispatcher:
    """Decodes raw Redis messages, tracks the sequence, and calls the owner's callbacks."""

    def __init__(self, on_change: ChangeCallback, on_flush: FlushCallback) -> None:
        self.on_change = on_change
        self.on_flush = on_flush
        self.tracker = SequenceTracker()
        self.received = 0
        self.rejected = 0
        self.flushes = 0

    def resubscribed(self) -> None:
        """A fresh subscription: whatever was published meanwhile is lost, so flush."""
        self.tracker.reset()
        self.flush(FlushReason.RECONNECT)

    def flush(self, reason: FlushReason | str) -> None:
        self.flushes += 1
        self.on_flush(reason)

    def dispatch(self, data: bytes | str) -> None:
        """Handle one raw message; malformed ones are counted and logged, never raised."""
        message = decode_bus_message(data)
        if isinstance(message, Rejected):
            self.rejected += 1
            _logger.warning("bus message rejected reason=%s detail=%s", message.reason, message.detail)
            return
        self.received += 1
        reason = self.tracker.observe(message)
        if reason is not None:
            _logger.info("bus flush reason=%s epoch=%s seq=%d", reason, message.epoch, message.seq)
            self.flush(reason)
        if message.kind == MessageKind.CHANGE:
            self.on_change(message)


class Subscription:
    """One subscription's handling of what Redis hands over, without any I/O.

    The subscribe-and-listen logic every follower of a Redis channel shares: the sync loop
    of the Odoo thread, the async loop of the gateway's bus subscriber and of its user
    channels (:func:`follow`, :func:`follow_async`) only move messages from a pubsub
    connection to :meth:`handle`, waiting at most :attr:`timeout` for each.

    The first thing Redis sends back must be the confirmation of the (P)SUBSCRIBE, within
    :data:`SUBSCRIBE_TIMEOUT_S`: only then is the subscription live, and ``on_confirmed``
    runs (what was published before that is not ours to see, so that is where an owner
    flushes). After it, each data message goes to ``on_data(channel, data)``; pongs of the
    health check and anything else are ignored. Build one per connection attempt.
    """

    def __init__(
        self,
        channel: str,
        on_confirmed: Callable[[], None],
        on_data: Callable[[bytes, bytes], None],
        *,
        pattern: bool = False,
        idle_timeout: float = HEALTH_CHECK_INTERVAL_S,
    ) -> None:
        self.channel = channel  # a channel name, or a glob pattern when ``pattern``
        self.pattern = pattern
        self.on_confirmed = on_confirmed
        self.on_data = on_data
        self.idle_timeout = idle_timeout
        self.confirmed = False
        self._confirmation = "psubscribe" if pattern else "subscribe"
        self._data = "pmessage" if pattern else "message"

    @property
    def timeout(self) -> float:
        """How long the loop may wait for the next message before calling :meth:`handle`."""
        return self.idle_timeout if self.confirmed else SUBSCRIBE_TIMEOUT_S

    def handle(self, message: dict[str, Any] | None) -> None:
        """Take what one wait returned (None: nothing within :attr:`timeout`).

        Raises ``redis.exceptions.TimeoutError`` (a transient error: the owner reconnects)
        when Redis did not confirm the subscription first.
        """
        if not self.confirmed:
            if message is None or message["type"] != self._confirmation:
                raise redis.exceptions.TimeoutError("no SUBSCRIBE confirmation within %.0fs" % SUBSCRIBE_TIMEOUT_S)
            self.confirmed = True
            self.on_confirmed()
        elif message is not None and message["type"] == self._data:
            self.on_data(message["channel"], message["data"])


def client_options(client_name: str) -> dict[str, Any]:
    """The options of a subscribing Redis client: health checks, TCP keepalive, a name."""
    return {"health_check_interval": HEALTH_CHECK_INTERVAL_S, "socket_keepalive": True, "client_name": client_name}


def as_target(where: str | RedisTarget) -> RedisTarget:
    """A plain ``redis_url`` is the Redis itself; a :class:`RedisTarget` may name Sentinels."""
    return where if isinstance(where, RedisTarget) else RedisTarget(where)


def follow(where: str | RedisTarget, client_name: str, subscription: Subscription, stopping: threading.Event) -> None:
    """Subscribe on a fresh connection and feed ``subscription`` until ``stopping`` is set.

    Redis errors propagate (the caller decides about reconnecting); the connection is closed
    whatever happens. With Sentinels, each call asks them for the master: after a failover
    the caller's next attempt follows the new one.
    """
    client = sync_client(as_target(where), **client_options(client_name))
    try:
        with client.pubsub() as pubsub:
            (pubsub.psubscribe if subscription.pattern else pubsub.subscribe)(subscription.channel)
            while not stopping.is_set():
                subscription.handle(pubsub.get_message(timeout=subscription.timeout))
    finally:
        client.close()


async def follow_async(where: str | RedisTarget, client_name: str, subscription: Subscription) -> None:
    """Subscribe on a fresh connection and feed ``subscription`` until cancelled.

    Redis errors propagate (the caller decides about reconnecting); the connection is closed
    whatever happens. With Sentinels, as :func:`follow`.
    """
    client = async_client(as_target(where), **client_options(client_name))
    try:
        async with client.pubsub() as pubsub:
            await (pubsub.psubscribe if subscription.pattern else pubsub.subscribe)(subscription.channel)
            while True:
                subscription.handle(await pubsub.get_message(timeout=subscription.timeout))
    finally:
        await client.aclose()


class _RedisBusSubscriber(BusDispatcher):
    """What both front ends share: which channel, as which Redis client, how to back off."""

    def __init__(
        self,
        redis_url: str | RedisTarget,
        db_name: str,
        on_change: ChangeCallback,
        on_flush: FlushCallback,
        backoff: Backoff | None,
        client_name: str,
    ) -> None:
        super().__init__(on_change, on_flush)
        self.redis_url = redis_url  # a URL, or a RedisTarget (Sentinels)
        self.client_name = client_name
        self.channel = bus_channel(db_name)
        self.backoff = backoff or Backoff()

    def subscription(self, idle_timeout: float) -> Subscription:
        """A fresh :class:`Subscription` to the relay's channel for one connection attempt."""
        return Subscription(self.channel, self._confirmed, self._on_data, idle_timeout=idle_timeout)

    def _confirmed(self) -> None:
        """Redis confirmed: connected, the backoff starts over, and everything before is stale."""
        self._set_connected(True)
        self.backoff.reset()
        self.resubscribed()

    def _on_data(self, _channel: bytes, data: bytes) -> None:
        self.dispatch(data)

    def _set_connected(self, connected: bool) -> None:
        raise NotImplementedError

    def next_retry(self, exc: BaseException) -> float:
        """The delay before resubscribing after ``exc``, logged."""
        delay = self.backoff.next_delay()
        _logger.warning("bus subscriber lost redis error=%r retry_in=%.2fs", exc, delay)
        return delay


class AsyncBusSubscriber(_RedisBusSubscriber):
    """Runs until cancelled, resubscribing with jittered backoff after any Redis failure."""

    def __init__(
        self,
        redis_url: str | RedisTarget,
        db_name: str,
        on_change: ChangeCallback,
        on_flush: FlushCallback,
        *,
        backoff: Backoff | None = None,
        client_name: str = "zero_sudo_bus",
    ) -> None:
        super().__init__(redis_url, db_name, on_change, on_flush, backoff, client_name)
        self.connected = asyncio.Event()

    def _set_connected(self, connected: bool) -> None:
        if connected:
            self.connected.set()
        else:
            self.connected.clear()

    async def run(self) -> None:
        while True:
            try:
                await follow_async(self.redis_url, self.client_name, self.subscription(HEALTH_CHECK_INTERVAL_S))
            except TRANSIENT_REDIS_ERRORS as exc:
                self._set_connected(False)
                await asyncio.sleep(self.next_retry(exc))


class ThreadedBusSubscriber(_RedisBusSubscriber):
    """One background thread per process that follows the bus; for Odoo server processes.

    ``on_connection_change(connected)`` lets the owner fall back to a coarser invalidation
    while Redis is unreachable.
    """

    POLL_TIMEOUT_S = 0.5  # how quickly stop() is noticed; costs one wake-up per interval

    def __init__(
        self,
        redis_url: str | RedisTarget,
        db_name: str,
        on_change: ChangeCallback,
        on_flush: FlushCallback,
        *,
        on_connection_change: Callable[[bool], None] | None = None,
        backoff: Backoff | None = None,
        client_name: str = "zero_sudo_bus",
    ) -> None:
        super().__init__(redis_url, db_name, on_change, on_flush, backoff, client_name)
        self.on_connection_change = on_connection_change
        self.connected = threading.Event()
        self._stopping = threading.Event()
        # One per subscriber, and an Odoo process holds one subscriber per database it serves.
        self._thread = threading.Thread(target=self._run, name=client_name, daemon=True)  # bounded: see above

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._thread.join(timeout)

    def _set_connected(self, connected: bool) -> None:
        if connected == self.connected.is_set():
            return
        if connected:
            self.connected.set()
        else:
            self.connected.clear()
        if self.on_connection_change is not None:
            self.on_connection_change(connected)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                follow(self.redis_url, self.client_name, self.subscription(self.POLL_TIMEOUT_S), self._stopping)
            except TRANSIENT_REDIS_ERRORS as exc:
                self._set_connected(False)
                self._stopping.wait(self.next_retry(exc))
            except Exception:
                # A failing callback must not end invalidation for the life of the process.
                _logger.exception("bus subscriber callback failed; resubscribing")
                self._set_connected(False)
                self._stopping.wait(self.backoff.next_delay())
