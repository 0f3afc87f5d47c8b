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

_logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 5.0  # a broker that is going away may never answer Connection.Close


@contextlib.asynccontextmanager
async def amqp_connection(url: str, name: str) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    """Connect (named ``name`` in the broker's connection list), and always close, bounded."""
    connection = await aio_pika.connect(url, timeout=CONNECT_TIMEOUT_S, client_properties={"connection_name": name})
    try:
        yield connection
    finally:
        try:
            await asyncio.wait_for(connection.close(), CLOSE_TIMEOUT_S)
        except (TimeoutError, OSError, aiormq.exceptions.AMQPError, RuntimeError) as exc:
            _logger.info("RabbitMQ connection closed uncleanly: %r", exc)
