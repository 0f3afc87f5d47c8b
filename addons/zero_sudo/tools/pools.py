"""Module-level Redis and RabbitMQ pools: one per process, shared by every request and thread.

Controllers must not open a TCP connection per request (the handshakes would exhaust the servers)::

    from odoo.addons.zero_sudo.tools.pools import amqp_publish, redis_client

    redis_client().incr("my:counter")
    amqp_publish("my.exchange", [Outgoing("routing.key", b"{}", "message-id")])

Both pools are bounded (``redis_pool_size``, ``amqp_pool_size``): a caller beyond the bound waits
for a free connection, then fails, instead of opening more. Both are rebuilt in a forked
prefork worker, which must not share its parent's sockets.

With ``redis_sentinels`` the Redis pool asks the Sentinels for the master on each new
connection and retries a command through a failover (``zero_sudo_bus.redis_clients``).
"""

import os
from collections.abc import Sequence

import redis
from zero_sudo_bus.redis_clients import RedisTarget, sync_blocking_pool

from .amqp_pool import AmqpPool, Outgoing
from .per_process import PerProcess
from .settings import settings_from_odoo_conf

# A caller finding every Redis connection lent waits this long before failing: a few round
# trips of the slowest normal command, not long enough to stall a request visibly.
REDIS_POOL_WAIT_S = 1.0
# An idle pooled Redis connection is PINGed before reuse after this many seconds, so one
# broken by a Redis restart is replaced instead of failing the request that picks it.
REDIS_HEALTH_CHECK_S = 30


def _build_redis_pool() -> redis.ConnectionPool:
    conf = settings_from_odoo_conf()
    return sync_blocking_pool(
        RedisTarget.of(conf),
        max_connections=conf.redis_pool_size,
        timeout=REDIS_POOL_WAIT_S,
        socket_timeout=conf.redis_timeout,
        socket_connect_timeout=conf.redis_timeout,
        socket_keepalive=True,
        health_check_interval=REDIS_HEALTH_CHECK_S,
        client_name=redis_client_name(),
    )


def redis_client_name() -> str:
    """How this process's pooled connections name themselves in Redis' CLIENT LIST."""
    return "zero_sudo_odoo_%d" % os.getpid()


def _build_amqp_pool() -> AmqpPool:
    conf = settings_from_odoo_conf()
    return AmqpPool(conf.amqp_url, size=conf.amqp_pool_size)


_redis_pool: PerProcess[redis.ConnectionPool] = PerProcess(_build_redis_pool)
_amqp_pool: PerProcess[AmqpPool] = PerProcess(_build_amqp_pool)


def redis_client() -> redis.Redis:
    """A client on the process's Redis pool (cheap: it borrows a pooled connection per command)."""
    return redis.Redis(connection_pool=_redis_pool.get())


def amqp_pool() -> AmqpPool:
    """The process's RabbitMQ pool: ``with amqp_pool().channel() as channel: ...``."""
    return _amqp_pool.get()


def amqp_publish(exchange: str, messages: Sequence[Outgoing]) -> None:
    """Publish persistent messages and return once RabbitMQ confirmed all of them.

    Raises ``amqp_pool.PublishNotConfirmed`` or ``PoolExhausted`` (answer 503).
    """
    amqp_pool().publish_confirmed(exchange, messages)
