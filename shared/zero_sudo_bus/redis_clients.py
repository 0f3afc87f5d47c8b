"""One definition of "a Redis client for this configuration", for every redis-py user.

The Odoo workers' pool and followers, the session store and the gateway build their clients
here, from a :class:`RedisTarget`: either ``redis_url`` itself, or, with ``redis_sentinels``,
the master the Sentinels name for ``redis_sentinel_service`` (Redis high availability with
Debian's redis-sentinel). With Sentinels, redis-py asks them for the master on every new
connection and drops a connection whose server became a replica, so a client follows a
failover by reconnecting; the URL then gives only password, database and TLS.

The relay's lean publisher (``zero_sudo_daemons.redis_publisher``) speaks RESP itself and
asks the Sentinels with the same :class:`RedisTarget`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.sentinel
from redis.backoff import ExponentialBackoff
from redis.connection import parse_url
from redis.retry import Retry

from .options import sentinel_addresses

# A Sentinel that does not answer within this is skipped for the next one: discovery must
# cost a connection attempt about a second at most, never the kernel's TCP retries.
SENTINEL_TIMEOUT_S = 1.0

# While Sentinels fail a dead master over, a pooled command (a session read, a lookup) is
# retried on a new connection, each time asking the Sentinels again, for about 3.5 s in all
# (0.05, 0.1, 0.2, 0.4, then 0.5 s apart): a failover tuned to a down-after of a second or
# two completes within it, so users are not logged out by it, and no request waits much longer
# than the failover itself. Errors are the reconnectable ones only.
FAILOVER_RETRIES = 10
FAILOVER_BACKOFF_CAP_S = 0.5
FAILOVER_BACKOFF_BASE_S = 0.05


def failover_retry() -> Retry:
    """A fresh Retry (redis-py copies and mutates it per connection)."""
    return Retry(ExponentialBackoff(cap=FAILOVER_BACKOFF_CAP_S, base=FAILOVER_BACKOFF_BASE_S), FAILOVER_RETRIES)


# What the URL parser returns that the Sentinels decide instead (where the master is), or
# that Sentinel pools set themselves (their connection class, TLS through ``ssl``).
_ADDRESS_KEYS = ("host", "port", "path", "connection_class")


class RedisMode(enum.Enum):
    """How the master is found."""

    DIRECT = "direct"  # redis_url names it
    SENTINEL = "sentinel"  # the Sentinels name it


class RedisSettings(Protocol):
    """What both sides' settings objects have (both derive from zero_sudo_bus.options)."""

    redis_url: str
    redis_sentinels: str
    redis_sentinel_service: str


@dataclass(frozen=True)
class RedisTarget:
    """Where the Redis master is: ``url``, or the master of ``service`` known to ``sentinels``."""

    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = "mymaster"

    @classmethod
    def of(cls, settings: RedisSettings) -> RedisTarget:
        """The target a side's settings describe (their redis_url and redis_sentinel* keys)."""
        return cls(settings.redis_url, sentinel_addresses(settings.redis_sentinels), settings.redis_sentinel_service)

    @property
    def mode(self) -> RedisMode:
        return RedisMode.SENTINEL if self.sentinels else RedisMode.DIRECT

    def describe(self) -> str:
        """For logs: the URL, or the service and its Sentinels (never the password)."""
        if self.mode is RedisMode.DIRECT:
            return "redis %s" % redis.connection.parse_url(self.url).get("host", self.url)
        return "sentinel service %s via %s" % (self.service, ",".join("%s:%d" % address for address in self.sentinels))

    def master_options(self) -> dict[str, Any]:
        """The URL's connection options without its address: password, username, database, TLS."""
        options = {key: value for key, value in parse_url(self.url).items() if key not in _ADDRESS_KEYS}
        if self.url.startswith("rediss://"):
            options["ssl"] = True  # Sentinel pools pick their TLS connection class from this
        return options

    def sentinel_options(self) -> dict[str, Any]:
        """How to talk to the Sentinels themselves: bounded, so a dead one is skipped quickly."""
        return {"socket_timeout": SENTINEL_TIMEOUT_S, "socket_connect_timeout": SENTINEL_TIMEOUT_S}


# -- redis-py, synchronous (Odoo) --------------------------------------------------------------
class BlockingSentinelConnectionPool(redis.sentinel.SentinelConnectionPool, redis.BlockingConnectionPool):
    """A Sentinel pool with the blocking pool's bound: a caller beyond ``max_connections`` waits
    ``timeout`` for a free connection, then fails, instead of opening one more (redis-py's own
    Sentinel pool raises at once)."""


def sync_client(target: RedisTarget, **options: Any) -> redis.Redis:
    """A client of its own (pub/sub followers); ``options`` as for ``redis.Redis``."""
    if target.mode is RedisMode.DIRECT:
        return redis.Redis.from_url(target.url, **options)
    sentinel = redis.sentinel.Sentinel(target.sentinels, sentinel_kwargs=target.sentinel_options())
    return sentinel.master_for(target.service, **target.master_options(), **options)


def sync_blocking_pool(target: RedisTarget, *, max_connections: int, timeout: float, **options: Any) -> redis.ConnectionPool:
    """A bounded pool on the master: callers beyond ``max_connections`` wait ``timeout``, then fail."""
    if target.mode is RedisMode.DIRECT:
        return redis.BlockingConnectionPool.from_url(target.url, max_connections=max_connections, timeout=timeout, **options)
    sentinel = redis.sentinel.Sentinel(target.sentinels, sentinel_kwargs=target.sentinel_options())
    return BlockingSentinelConnectionPool(
        target.service,
        sentinel,
        max_connections=max_connections,
        timeout=timeout,
        retry=failover_retry(),
        **target.master_options(),
        **options,
    )


# -- redis-py, asyncio (the gateway) -----------------------------------------------------------
class AsyncBlockingSentinelConnectionPool(redis.asyncio.sentinel.SentinelConnectionPool, redis.asyncio.BlockingConnectionPool):
    """The asyncio counterpart of :class:`BlockingSentinelConnectionPool`."""


def async_client(target: RedisTarget, **options: Any) -> redis.asyncio.Redis:
    """An asyncio client of its own (the gateway's subscriptions)."""
    if target.mode is RedisMode.DIRECT:
        return redis.asyncio.Redis.from_url(target.url, **options)
    sentinel = redis.asyncio.sentinel.Sentinel(target.sentinels, sentinel_kwargs=target.sentinel_options())
    return sentinel.master_for(target.service, **target.master_options(), **options)


def async_blocking_pool(
    target: RedisTarget, *, max_connections: int, timeout: float, **options: Any
) -> redis.asyncio.ConnectionPool:
    """A bounded asyncio pool on the master (the gateway's session lookups)."""
    if target.mode is RedisMode.DIRECT:
        return redis.asyncio.BlockingConnectionPool.from_url(
            target.url, max_connections=max_connections, timeout=timeout, **options
        )
    sentinel = redis.asyncio.sentinel.Sentinel(target.sentinels, sentinel_kwargs=target.sentinel_options())
    return AsyncBlockingSentinelConnectionPool(
        target.service,
        sentinel,
        max_connections=max_connections,
        timeout=timeout,
        retry=redis.asyncio.retry.Retry(
            ExponentialBackoff(cap=FAILOVER_BACKOFF_CAP_S, base=FAILOVER_BACKOFF_BASE_S), FAILOVER_RETRIES
        ),
        **target.master_options(),
        **options,
    )
