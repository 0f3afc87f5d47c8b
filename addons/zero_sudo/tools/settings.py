"""The ``[zero_sudo]`` section of odoo.conf, parsed once into a frozen object.

Pure: :func:`parse_settings` takes the section as a mapping of strings, so it is tested without
Odoo; ``tools/config.py`` feeds it Odoo's configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from zero_sudo_bus.sessions import DEFAULT_PREFIX

from .exceptions import ConfigurationError

# Odoo's own session lifetime (odoo.http.SESSION_LIFETIME): a week without a visit logs out.
DEFAULT_SESSION_TTL_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Settings:
    """Every tunable of the addon; the defaults suit one host running the docker-compose stack."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    # Several databases or deployments can share one Redis, each under its own prefix.
    session_prefix: str = DEFAULT_PREFIX
    session_ttl: int = DEFAULT_SESSION_TTL_S
    # A threaded Odoo serves one request per thread and each holds a Redis connection for
    # milliseconds; 8 covers the bursts of one process, and more callers wait rather than connect.
    redis_pool_size: int = 8
    # A dead Redis must cost a request seconds, not the kernel's minutes of TCP retries.
    redis_timeout: float = 2.0
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # pika connections are not thread-safe and one is lent per publish: 4 per process keeps
    # RabbitMQ's connection count at 4 x processes, far below its default limits.
    amqp_pool_size: int = 4
    # Long jobs hold a PostgreSQL connection each: 2 per process keeps them a small share of
    # db_maxconn, while a third job waits in the queue instead of starving the web requests.
    executor_max_workers: int = 2
    # Beyond this many waiting jobs a client is told 503 + Retry-After instead of waiting
    # unboundedly; 8 is four rounds of the default workers.
    executor_max_queued: int = 8
    # Seconds a client refused with 503 should wait; about one long job's duration.
    executor_retry_after: int = 30
    # Follow the relay's Redis channel and drop cache entries of changed models.
    cache_coherence: bool = True


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(name: str, kind: type, raw: object) -> object:
    text = str(raw).strip()
    try:
        if kind is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError("not a boolean")
        return kind(text)
    except ValueError as exc:
        raise ConfigurationError("[zero_sudo] %s = %r: %s" % (name, raw, exc)) from None


def parse_settings(section: Mapping[str, object]) -> Settings:
    """Settings from the raw ``[zero_sudo]`` section; unknown keys are left to other readers
    (the daemons share the section), wrong values raise :class:`ConfigurationError`."""
    kinds = {field.name: type(field.default) for field in fields(Settings)}
    values = {name: _convert(name, kinds[name], raw) for name, raw in section.items() if name in kinds}
    settings = Settings(**values)
    for name in ("session_ttl", "redis_pool_size", "amqp_pool_size", "executor_max_workers", "executor_retry_after"):
        if getattr(settings, name) < 1:
            raise ConfigurationError("[zero_sudo] %s must be at least 1" % name)
    if settings.executor_max_queued < 0 or settings.redis_timeout <= 0:
        raise ConfigurationError("[zero_sudo] executor_max_queued must be >= 0 and redis_timeout > 0")
    if not settings.session_prefix:
        raise ConfigurationError("[zero_sudo] session_prefix must not be empty")
    return settings
