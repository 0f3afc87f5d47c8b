"""A bounded, thread-safe pool of RabbitMQ connections for synchronous code (pure; no Odoo).

Odoo controllers run in threads and must not open a TCP connection per request. pika's
BlockingConnection is not thread-safe, so the pool lends one connection (with its
confirm-mode channel) to one thread at a time, keeps at most ``size`` of them, and makes
callers wait (then fail) when all are lent. Fork safety is :class:`~.per_process.PerProcess`'s
job: ``pools.py`` holds one pool per process.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pika
import pika.exceptions
from zero_sudo_bus.ingest import Topology

_logger = logging.getLogger(__name__)

# Errors after which a connection is not trusted again; the broker or the network is at fault.
CONNECTION_ERRORS = (pika.exceptions.AMQPError, OSError)


class PoolExhausted(Exception):
    """Every connection stayed lent for the whole wait: the caller should answer 503."""


class PublishNotConfirmed(Exception):
    """The broker did not take responsibility for a message: nothing may be reported as queued."""


@dataclass(frozen=True)
class Outgoing:
    routing_key: str
    body: bytes
    message_id: str


class AmqpPool:
    """At most ``size`` connections, each with one channel in publisher-confirm mode."""

    def __init__(
        self,
        url: str,
        size: int = 4,
        wait_s: float = 5.0,
        setup: Callable[[pika.adapters.blocking_connection.BlockingChannel], None] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self.url = url
        self.size = size
        self.wait_s = wait_s
        self.setup = setup  # run once per new channel (declaring the topology it publishes to)
        self.opened = 0  # connections opened by this process: what the pool's bound is about
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(self.size)
        self.opened = 0

    @contextlib.contextmanager
    def channel(self) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
        """Lend one channel to this thread; a connection that failed is closed, not returned.

        One pool serves one process: hold it in a :class:`~.per_process.PerProcess`, which
        gives a forked worker a pool of its own (the parent's sockets are not its to use)."""
        if not self._slots.acquire(timeout=self.wait_s):
            raise PoolExhausted("all %d RabbitMQ connections stayed busy for %.1fs" % (self.size, self.wait_s))
        connection = None
        try:
            try:
                connection, channel = self._idle.get_nowait()
                if not channel.is_open:
                    raise queue.Empty
            except queue.Empty:
                connection, channel = self._open()
            yield channel
        except BaseException:
            if connection is not None:
                _close_quietly(connection)
            connection = None
            raise
        finally:
            if connection is not None:
                self._idle.put((connection, channel))
            self._slots.release()

    def _open(self):
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        channel = connection.channel()
        channel.confirm_delivery()
        if self.setup is not None:
            self.setup(channel)
        with self._lock:
            self.opened += 1
        return connection, channel

    def publish_confirmed(self, exchange: str, messages: Sequence[Outgoing]) -> None:
        """Publish persistent messages; return only once the broker confirmed every one."""
        properties = {"delivery_mode": pika.DeliveryMode.Persistent, "content_type": "application/json"}
        try:
            with self.channel() as channel:
                for message in messages:
                    channel.basic_publish(
                        exchange,
                        message.routing_key,
                        message.body,
                        pika.BasicProperties(message_id=message.message_id, **properties),
                        mandatory=True,  # unroutable is an error, not a silent drop
                    )
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
            raise PublishNotConfirmed("the broker refused or could not route a message: %s" % exc) from exc
        except CONNECTION_ERRORS as exc:
            raise PublishNotConfirmed("RabbitMQ unavailable: %r" % exc) from exc


def _close_quietly(connection: pika.BlockingConnection) -> None:
    try:
        connection.close()
    except CONNECTION_ERRORS:
        pass


def declare_topology(channel: pika.adapters.blocking_connection.BlockingChannel, topology: Topology) -> None:
    """Declare every exchange, queue and binding of ``topology`` (idempotent)."""
    for exchange in topology.exchanges:
        channel.exchange_declare(exchange.name, exchange_type=exchange.kind.value, durable=True)
    for binding in topology.bindings:
        channel.queue_declare(binding.queue, durable=True)
        channel.queue_bind(binding.queue, binding.exchange, routing_key=binding.routing_key)
