"""The RabbitMQ connection of one daemon session, for the landing daemon and the poller.

A plain (not "robust") aio-pika connection: when it breaks, the session ends and the
daemon's supervisor starts a new one after a backoff, so that no batch in hand ever holds
delivery tags of a dead channel. Closing never hangs a shutdown or a recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from zero_sudo_bus.ingest import Topology

_logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 5.0  # a broker that is going away may never answer Connection.Close
# How often an idle session checks its connection: aio-pika's closed() future is not always
# resolved when the broker forces a close (seen when a node shuts down), so it is not trusted
# alone; a dead connection is noticed within this time either way.
LIVENESS_CHECK_S = 1.0


def connection_lost(connection: aio_pika.Connection, channel: aio_pika.abc.AbstractChannel) -> bool:
    """Whether the session's connection or channel is gone, down to aiormq's own connection."""
    transport = connection.transport
    return connection.is_closed or channel.is_closed or transport is None or transport.connection.is_closed


@contextlib.asynccontextmanager
async def amqp_connection(url: str, name: str) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    """Connect (named ``name`` in the broker's connection list), and always close, bounded."""
    connection = await aio_pika.connect(url, timeout=CONNECT_TIMEOUT_S, client_properties={"connection_name": name})
    try:
        yield connection
    finally:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await connection.close()
        except (TimeoutError, OSError, aiormq.exceptions.AMQPError, RuntimeError) as exc:
            _logger.info("RabbitMQ connection closed uncleanly: %r", exc)


async def declare_topology(
    channel: AbstractChannel, topology: Topology
) -> tuple[dict[str, AbstractExchange], dict[str, AbstractQueue]]:
    """Declare every exchange, queue and binding of ``topology``; both, by name."""
    exchanges = {
        exchange.name: await channel.declare_exchange(exchange.name, aio_pika.ExchangeType(exchange.kind.value), durable=True)
        for exchange in topology.exchanges
    }
    queues = {}
    for binding in topology.bindings:
        queue = queues[binding.queue] = await channel.declare_queue(binding.queue, durable=True)
        await queue.bind(exchanges[binding.exchange], routing_key=binding.routing_key)
    return exchanges, queues
