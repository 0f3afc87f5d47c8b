"""Every configuration key of zero_sudo, in one table: :data:`OPTIONS`.

One row per key of odoo.conf's ``[zero_sudo]`` section, which is also a daemon flag
(``--redis-url``) and environment variable (``ZERO_SUDO_REDIS_URL``): its type, default, bounds
or choices or check, help text, the key of odoo.conf's own ``[options]`` section it falls back
to, and which side reads it (:class:`Side`). The daemons' settings
(``zero_sudo_daemons.settings``) and the addon's (``addons/zero_sudo/tools/settings.py``) are
both derived from it, so a key, a default or a bound is written once and one line of odoo.conf
means the same thing to every process that reads it; the README's "Configuration" table is
:func:`markdown_table` (``tests/test_options.py`` keeps the two in step).

Pure and standard library only: Odoo imports it without the daemons' dependencies, so the URL
checks parse as redis-py and aio-pika do with :mod:`urllib.parse` (the tests compare them with
the real parsers). Every check raises :class:`OptionError`, whose text completes
``"<key> ..."``; each side adds where the value came from.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, make_dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .sessions import DEFAULT_PREFIX

ENV_PREFIX = "ZERO_SUDO_"
ODOO_CONF_SECTION = "zero_sudo"
ODOO_OPTIONS_SECTION = "options"  # Odoo's own section, for the database keys
MAX_PORT = 65535  # listen ports also accept 0: any free port
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class OptionError(ValueError):
    """A value breaks its option's rule; the text completes ``"<key> ..."`` ("must be ...")."""


class Side(enum.Enum):
    """Which processes read a key: the daemons (flags, env, odoo.conf), Odoo (odoo.conf), or both."""

    DAEMONS = "daemons"
    ODOO = "odoo"
    BOTH = "both"

    def reads(self, reader: Side) -> bool:
        """Whether a key of this side is read by ``reader`` (:attr:`DAEMONS` or :attr:`ODOO`)."""
        return self is reader or self is Side.BOTH


Check = Callable[[Any], Any]  # returns the (converted) value, or raises OptionError


# -- value checks ----------------------------------------------------------------------------
def check_non_empty(value: str) -> str:
    """Listen addresses and names: an empty host would listen on every interface, silently."""
    if not value.strip():
        raise OptionError("must not be empty")
    return value


def check_positive(value: float) -> float:
    """Timeouts in seconds: 0 would mean "never wait" to one library and "wait forever" to another."""
    if not value > 0:
        raise OptionError("must be greater than 0")
    return value


# Odoo's dbfilter puts the request's host in %h and its first label in %d; the relay serves no
# request, so a pattern with them would match nothing it could know.
_HOST_PLACEHOLDERS = ("%d", "%h")
PG_NAME_MAX_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1: longer names are silently truncated


def database_names(value: str) -> tuple[str, ...]:
    """The names of a comma-separated database list, blanks dropped, in order (pure: the relay and
    the check agree)."""
    return tuple(dict.fromkeys(filter(None, (part.strip() for part in value.split(",")))))


def check_database_names(value: str) -> str:
    """Database names: one PostgreSQL would truncate could never be the database meant."""
    for name in database_names(value):
        if len(name.encode()) > PG_NAME_MAX_BYTES:
            raise OptionError("must be database names of at most %d bytes, got %r" % (PG_NAME_MAX_BYTES, name))
    return value


def check_dbfilter(value: str) -> str:
    """A Python regular expression, as Odoo's ``dbfilter`` is, without its host placeholders."""
    for placeholder in _HOST_PLACEHOLDERS:
        if placeholder in value:
            raise OptionError(
                "must not contain %s: it stands for the host of an HTTP request, and the relay serves none "
                "(write the database names' own pattern, or list them in relay_databases)" % placeholder
            )
    try:
        re.compile(value)
    except re.error as exc:
        raise OptionError("must be a regular expression (%s)" % exc) from None
    return value


# What redis-py's URL parser converts from the query string; a value it cannot convert makes
# the client fail at its first connection, so it is refused here, with redis-py's words.
_REDIS_QUERY_NUMBERS: dict[str, type] = {
    "db": int,
    "socket_timeout": float,
    "socket_connect_timeout": float,
    "socket_read_size": int,
    "max_connections": int,
    "health_check_interval": int,
    "ssl_min_version": int,
    "timeout": float,
    "protocol": int,
}
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def check_redis_url(value: str) -> str:
    """Parsed as redis-py's ``parse_url`` parses it (what the addon and the gateway use), plus what
    that parser lets pass.

    redis-py ignores a database path that is not a number (``redis://host/abc`` silently means
    database 0) and an explicit port 0 (silently 6379): both are refused here.
    """
    expected = "must be a redis://host[:port][/db], rediss://… or unix://path[?db=N] URL"
    if not value.startswith(_REDIS_SCHEMES):
        raise OptionError("%s (the scheme is not redis://, rediss:// or unix://)" % expected)
    try:
        parts = urlsplit(value)
        database = None  # from the query string; a path that is a database is all digits
        for name, values in parse_qs(parts.query).items():
            convert = _REDIS_QUERY_NUMBERS.get(name)
            if convert is not None:
                try:
                    number = convert(values[0])
                except ValueError:
                    raise ValueError("Invalid value for '%s' in connection URL." % name) from None
                if name == "db":
                    database = number
        if parts.scheme == "unix":
            if not parts.path:
                raise ValueError("unix:// needs the socket's path")
        else:
            port = parts.port  # raises "Port out of range 0-65535", as it does in redis-py
            path = unquote(parts.path)[1:]
            if path and not path.isdigit():
                raise ValueError("the database %r is not a number" % path)
            if port == 0:
                raise ValueError("port 0")
    except ValueError as exc:
        raise OptionError("%s (%s)" % (expected, exc)) from None
    if database is not None and database < 0:
        raise OptionError("%s (negative database)" % expected)
    return value


def check_amqp_url(value: str) -> str:
    """Parsed as aio-pika/aiormq (yarl) and pika parse it; they would quietly replace a port 0 by 5672."""
    expected = "must be an amqp://[user:password@]host[:port][/vhost] or amqps://… URL"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise OptionError("%s (%s)" % (expected, exc)) from None
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise OptionError(expected)
    if port == 0:
        raise OptionError("%s (port 0)" % expected)
    return value


def check_http_urls(value: str) -> str:
    """A comma-separated list of http(s)://host[:port] base URLs (empty: none): a relay
    replica's ops endpoint each, which the health page asks for /healthz and /metrics."""
    for url in filter(None, (part.strip() for part in value.split(","))):
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (raises "Port out of range 0-65535")
        except ValueError as exc:
            raise OptionError("must be http://host[:port] URLs separated by commas (%s)" % exc) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OptionError("must be http://host[:port] URLs separated by commas, got %r" % url)
    return value


def sentinel_addresses(value: str) -> tuple[tuple[str, int], ...]:
    """The ``host:port`` pairs of a comma-separated Sentinel list (``[::1]:26379`` for IPv6);
    OptionError on the first that is not one. Pure, so Odoo, the daemons and the check agree."""
    addresses: list[tuple[str, int]] = []
    for address in filter(None, (part.strip() for part in value.split(","))):
        host, colon, port = address.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) <= MAX_PORT:
            raise OptionError("must be Sentinel host:port addresses separated by commas, got %r" % address)
        addresses.append((host, int(port)))
    return tuple(addresses)


def check_sentinel_addresses(value: str) -> str:
    """Sentinel addresses: a typo would otherwise surface as "no master found" at the first command."""
    sentinel_addresses(value)
    return value


CHECK_SUMMARIES: dict[Check, str] = {
    check_non_empty: "not empty",
    check_positive: "> 0",
    check_database_names: "database names, comma-separated",
    check_dbfilter: "regular expression, without `%d`/`%h`",
    check_redis_url: "`redis://`, `rediss://` or `unix://` URL, database a number",
    check_amqp_url: "`amqp://` or `amqps://` URL",
    check_sentinel_addresses: "`host:port` Sentinel addresses, comma-separated",
    check_http_urls: "`http(s)://host[:port]` URLs, comma-separated",
}


# -- the row ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One key, with everything needed to read it from text, check it and document it."""

    key: str
    kind: type  # str, int, float or bool
    default: Any
    side: Side
    help: str
    odoo_options_key: str | None = None  # fallback key in odoo.conf's [options] section
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()  # matched whatever the case, kept as written here
    check: Check | None = None

    @property
    def name(self) -> str:
        """The attribute of the settings objects: the key itself."""
        return self.key

    @property
    def flag(self) -> str:
        """The daemons' command-line flag."""
        return "--" + self.key.replace("_", "-")

    @property
    def env(self) -> str:
        """The daemons' environment variable."""
        return ENV_PREFIX + self.key.upper()

    def parse(self, raw: str) -> Any:
        """The typed value of ``raw``, or :class:`OptionError`."""
        value: Any
        if self.kind is bool:
            word = raw.strip().casefold()
            if word not in TRUE_WORDS + FALSE_WORDS:
                raise OptionError("must be a boolean (%s or %s)" % ("/".join(TRUE_WORDS), "/".join(FALSE_WORDS)))
            value = word in TRUE_WORDS
        elif self.kind in (int, float):
            value = _number(self.kind, raw)
            low, high = self.minimum, self.maximum
            if (low is not None and value < low) or (high is not None and value > high):
                if high is None:
                    raise OptionError("must be at least %s" % _show(low))
                if low is None:
                    raise OptionError("must be at most %s" % _show(high))
                raise OptionError("must be between %s and %s" % (_show(low), _show(high)))
        elif self.choices:
            value = _choice(self.choices, raw)
        else:
            value = raw
        return self.check(value) if self.check is not None else value

    def allowed(self) -> str:
        """What values are accepted, in words (the README's "allowed" column)."""
        if self.choices:
            return ", ".join("`%s`" % choice for choice in self.choices) + " (any case)"
        if self.kind is bool:
            return "true/false, yes/no, on/off, 1/0"
        if self.minimum is not None and self.maximum is not None:
            return "%s–%s" % (_show(self.minimum), _show(self.maximum))
        if self.minimum is not None:
            return "≥ %s" % _show(self.minimum)
        if self.check is not None:
            return CHECK_SUMMARIES[self.check]
        return "any"


def _number(kind: type, raw: str) -> int | float:
    try:
        value = kind(raw)
    except ValueError:
        raise OptionError("must be an integer" if kind is int else "must be a number") from None
    if kind is float and not math.isfinite(value):
        raise OptionError("must be a number")
    return value


def _show(bound: float) -> str:
    return "%g" % bound if isinstance(bound, float) else "%d" % bound


def _choice(choices: tuple[str, ...], raw: str) -> str:
    for choice in choices:
        if raw.strip().casefold() == choice.casefold():
            return choice
    raise OptionError("must be one of %s" % ", ".join(choices))


# -- the table -------------------------------------------------------------------------------
OPTIONS: tuple[Option, ...] = (
    Option(
        "db_name",
        str,
        "zero_sudo",
        Side.DAEMONS,
        "Odoo database whose events are relayed",
        odoo_options_key="db_name",
        check=check_non_empty,
    ),
    Option("db_host", str, "127.0.0.1", Side.DAEMONS, "PostgreSQL host (or socket directory)", odoo_options_key="db_host"),
    Option("db_port", int, 5432, Side.DAEMONS, "PostgreSQL port", odoo_options_key="db_port", minimum=1, maximum=MAX_PORT),
    Option("db_user", str, "", Side.DAEMONS, "PostgreSQL user (empty: the OS user, as libpq does)", odoo_options_key="db_user"),
    Option("db_password", str, "", Side.DAEMONS, "PostgreSQL password", odoo_options_key="db_password"),
    Option(
        "redis_url",
        str,
        "redis://127.0.0.1:6379/0",
        Side.BOTH,
        "Redis URL: the daemons' pub/sub; Odoo's sessions, pools and relay channel",
        check=check_redis_url,
    ),
    # High availability: Redis Sentinel, the engine operators already run beside Redis. With
    # Sentinels every Redis user asks them for the master of ``redis_sentinel_service`` (on
    # each connection, so a failover is followed) and keeps only redis_url's password,
    # database and TLS; its host and port are not used.
    Option(
        "redis_sentinels",
        str,
        "",
        Side.BOTH,
        "Redis Sentinel addresses, comma-separated (empty: redis_url is the Redis itself); with them, "
        "the master is asked of the Sentinels and redis_url gives only password, database and TLS",
        check=check_sentinel_addresses,
    ),
    Option(
        "redis_sentinel_service",
        str,
        "mymaster",
        Side.BOTH,
        "the master's name in the Sentinels' configuration (sentinel monitor <name> ...)",
        check=check_non_empty,
    ),
    Option("log_level", str, "INFO", Side.DAEMONS, "daemon log level", choices=LOG_LEVELS),
    Option("log_format", str, "json", Side.DAEMONS, "daemon logs: json (one object per line) or text", choices=("json", "text")),
    Option(
        "relay_http_host", str, "127.0.0.1", Side.DAEMONS, "relay /healthz and /metrics listen address", check=check_non_empty
    ),
    Option(
        "relay_http_port",
        int,
        9101,
        Side.DAEMONS,
        "relay /healthz and /metrics port (0: any free port)",
        minimum=0,
        maximum=MAX_PORT,
    ),
    Option(
        "relay_max_pending_ids",
        int,
        1_000_000,
        Side.DAEMONS,
        "IDs buffered while Redis is slow; beyond, a flush replaces them",
        minimum=1,
    ),
    # One deployment for every database of an Odoo server: each followed database has its own
    # relay (channel, epoch, leader lock); unset, the relay follows db_name alone, as before.
    Option(
        "relay_databases",
        str,
        "",
        Side.DAEMONS,
        "relay: follow these databases, comma-separated, instead of db_name (each once it exists with zero_sudo installed)",
        check=check_database_names,
    ),
    Option(
        "relay_dbfilter",
        str,
        "",
        Side.DAEMONS,
        "relay: follow every database whose name matches this regular expression (from its start, as Odoo's "
        "dbfilter), created later ones included, instead of db_name",
        check=check_dbfilter,
    ),
    Option(
        "amqp_url",
        str,
        "amqp://guest:guest@127.0.0.1:5672/",
        Side.BOTH,
        "RabbitMQ URL: the landing daemon's; Odoo's AMQP pool (ingestion endpoint)",
        check=check_amqp_url,
    ),
    Option(
        "landing_http_host",
        str,
        "127.0.0.1",
        Side.DAEMONS,
        "landing daemon /healthz and /metrics listen address",
        check=check_non_empty,
    ),
    Option(
        "landing_http_port",
        int,
        9102,
        Side.DAEMONS,
        "landing daemon /healthz and /metrics port (0: any free port)",
        minimum=0,
        maximum=MAX_PORT,
    ),
    Option("landing_batch_size", int, 500, Side.DAEMONS, "messages landed per transaction at most", minimum=1),
    Option("landing_batch_ms", int, 50, Side.DAEMONS, "longest wait for a batch to fill before landing what is there", minimum=1),
    # AMQP's basic.qos prefetch-count is a 16-bit field, hence the same bound as a port.
    Option(
        "landing_prefetch",
        int,
        2000,
        Side.DAEMONS,
        "unacknowledged messages the broker may push (bounds memory; at least landing_batch_size)",
        minimum=1,
        maximum=MAX_PORT,
    ),
    Option(
        "poller_http_host", str, "127.0.0.1", Side.DAEMONS, "poller /healthz and /metrics listen address", check=check_non_empty
    ),
    Option(
        "poller_http_port",
        int,
        9103,
        Side.DAEMONS,
        "poller /healthz and /metrics port (0: any free port)",
        minimum=0,
        maximum=MAX_PORT,
    ),
    Option("poller_sources", str, "", Side.DAEMONS, "JSON file listing the sources to poll (empty: none)"),
    Option("poller_concurrency", int, 8, Side.DAEMONS, "sources fetched at the same time at most", minimum=1),
    Option("poller_timeout_ms", int, 10_000, Side.DAEMONS, "timeout of one fetch, connect to last byte", minimum=1),
    Option(
        "gateway_host",
        str,
        "127.0.0.1",
        Side.DAEMONS,
        "gateway WebSocket, /healthz and /metrics listen address",
        check=check_non_empty,
    ),
    Option(
        "gateway_port",
        int,
        9104,
        Side.DAEMONS,
        "gateway port: WebSocket at /ws, plus /healthz, /metrics, /demo.html (0: any free port)",
        minimum=0,
        maximum=MAX_PORT,
    ),
    Option(
        "gateway_allowed_origins",
        str,
        "http://localhost:8069,http://127.0.0.1:8069,http://localhost:9104,http://127.0.0.1:9104",
        Side.DAEMONS,
        "Origin headers allowed to open a WebSocket, comma-separated (* for any)",
    ),
    Option(
        "gateway_token_secret",
        str,
        "",
        Side.BOTH,
        "HMAC secret Odoo (zero_sudo_live) signs gateway tokens with and the gateway checks (empty: tokens refused)",
    ),
    Option(
        "session_prefix",
        str,
        DEFAULT_PREFIX,
        Side.BOTH,
        "Redis key prefix of Odoo's sessions (written by the addon, read by the gateway; deployments sharing a Redis differ)",
        check=check_non_empty,
    ),
    Option(
        "gateway_max_connections",
        int,
        16_000,
        Side.DAEMONS,
        "WebSocket connections per gateway process at most (beyond: HTTP 503)",
        minimum=1,
    ),
    Option(
        "gateway_max_frame_bytes",
        int,
        8192,
        Side.DAEMONS,
        "largest inbound WebSocket message; beyond, the connection is closed (1009)",
        minimum=1,
    ),
    Option(
        "gateway_max_buffer_bytes",
        int,
        262_144,
        Side.DAEMONS,
        "outgoing bytes queued per connection, pongs included; beyond, it is closed (1013) and the client resyncs",
        minimum=1,
    ),
    Option(
        "gateway_commands_per_s",
        int,
        5,
        Side.DAEMONS,
        "frames of any kind a client may send per second on average; beyond the burst: closed (1008)",
        minimum=1,
    ),
    Option("gateway_command_burst", int, 20, Side.DAEMONS, "client frames allowed in a burst", minimum=1),
    Option("gateway_ping_interval_s", int, 20, Side.DAEMONS, "seconds between pings to each client", minimum=1),
    Option(
        "gateway_ping_timeout_s", int, 20, Side.DAEMONS, "a client that does not answer a ping within this is closed", minimum=1
    ),
    # Odoo's own session lifetime (odoo.http.SESSION_LIFETIME): a week without a visit logs out.
    Option("session_ttl", int, 7 * 24 * 3600, Side.ODOO, "seconds a session lives unused (refreshed on every use)", minimum=1),
    # A threaded Odoo serves one request per thread and each holds a Redis connection for
    # milliseconds; 8 covers the bursts of one process, and more callers wait rather than connect.
    Option(
        "redis_pool_size",
        int,
        8,
        Side.ODOO,
        "Redis connections per Odoo process at most (callers wait 1 s, then fail)",
        minimum=1,
    ),
    # A dead Redis must cost a request seconds, not the kernel's minutes of TCP retries.
    Option("redis_timeout", float, 2.0, Side.ODOO, "Redis connect and command timeout in seconds", check=check_positive),
    # Redis replicates asynchronously: a session written just before the master dies may not
    # have reached the replica Sentinel promotes. Waiting for one replica's acknowledgement
    # (WAIT 1) after each session write keeps logins across a failover; a session is written
    # on login, logout and context changes only, and a replica on the same network answers in
    # about a millisecond, so 100 ms is only ever spent when no replica is there.
    Option(
        "session_replica_wait_ms",
        int,
        100,
        Side.ODOO,
        "with redis_sentinels: after a session write, wait at most this long for a replica to have it "
        "(kept through a failover); 0: do not wait",
        minimum=0,
    ),
    # pika connections are not thread-safe and one is lent per publish: 4 per process keeps
    # RabbitMQ's connection count at 4 x processes, far below its default limits.
    Option("amqp_pool_size", int, 4, Side.ODOO, "RabbitMQ connections per Odoo process at most", minimum=1),
    # Long jobs hold a PostgreSQL connection each: 2 per process keeps them a small share of
    # db_maxconn, while a third job waits in the queue instead of starving the web requests.
    Option("executor_max_workers", int, 2, Side.ODOO, "background tasks running at once per Odoo process", minimum=1),
    # Beyond this many waiting jobs a client is told 503 + Retry-After instead of waiting
    # unboundedly; 8 is four rounds of the default workers.
    Option(
        "executor_max_queued",
        int,
        8,
        Side.ODOO,
        "background tasks waiting per Odoo process; beyond, 503 + Retry-After",
        minimum=0,
    ),
    # About one long job's duration.
    Option("executor_retry_after", int, 30, Side.ODOO, "the Retry-After seconds of that 503", minimum=1),
    # A task's lease is a session advisory lock, which a transaction-mode pooler would leave
    # on a server connection that other clients then get: behind one, the lease must reach
    # PostgreSQL itself. Same database, user and password as Odoo's own connections.
    Option(
        "task_lease_db_host",
        str,
        "",
        Side.ODOO,
        "PostgreSQL itself, for background tasks' leases when Odoo's db_host is a transaction-mode pooler "
        "(empty: Odoo's db_host)",
    ),
    Option(
        "task_lease_db_port",
        int,
        0,
        Side.ODOO,
        "port of task_lease_db_host (0: Odoo's db_port)",
        minimum=0,
        maximum=MAX_PORT,
    ),
    Option("cache_coherence", bool, True, Side.ODOO, "follow the relay's Redis channel and drop cache entries of changed models"),
    # Where Odoo reaches the relays' ops endpoints (their relay_http_host/port as seen from
    # Odoo: in docker-compose each replica is its own host); only the health page reads it.
    Option(
        "relay_ops_urls",
        str,
        "",
        Side.ODOO,
        "relay replicas' /healthz and /metrics base URLs, comma-separated, for the Health page "
        "(empty: the page reads the relay's epoch from Redis only)",
        check=check_http_urls,
    ),
    # A batch is parsed in memory before anything is published: 1 MiB bounds what one request
    # costs an Odoo worker, and is ample for the 1000 messages a request may carry at most.
    Option(
        "ingest_max_body_bytes",
        int,
        1024 * 1024,
        Side.ODOO,
        "zero_sudo_ingest: largest request body; larger ones get 413",
        minimum=1,
    ),
)

BY_KEY: Mapping[str, Option] = {opt.key: opt for opt in OPTIONS}


def read_by(reader: Side) -> tuple[Option, ...]:
    """The options ``reader`` (:attr:`Side.DAEMONS` or :attr:`Side.ODOO`) reads, in table order."""
    return tuple(opt for opt in OPTIONS if opt.side.reads(reader))


def check_together(values: Mapping[str, Any]) -> None:
    """Rules between keys, checked on the values one side resolved (keys it does not read are skipped)."""
    if values.get("relay_databases") and values.get("relay_dbfilter"):
        raise OptionError("relay_databases and relay_dbfilter are two ways to choose the relay's databases: set one")
    if values.get("redis_sentinels") and str(values.get("redis_url", "")).startswith("unix://"):
        raise OptionError("redis_sentinels needs a redis:// or rediss:// redis_url: Sentinels name masters by host and port")
    if "landing_prefetch" in values and "landing_batch_size" in values:
        prefetch, batch = values["landing_prefetch"], values["landing_batch_size"]
        if prefetch < batch:
            raise OptionError(
                "landing_prefetch must be at least landing_batch_size, or batches never fill, got %d < %d" % (prefetch, batch)
            )


def odoo_conf_text(opt: Option, raw: object) -> str | None:
    """The text of ``opt``'s value in odoo.conf, or None where it means "not set".

    Odoo writes ``False`` for an unset value, and its ``config.misc`` hands the words True and
    False over as Python booleans; a boolean key keeps both, every other key reads ``False``
    and an empty value as unset, so one line means the same thing to the daemons and to Odoo.
    """
    if raw is None:
        return None
    text = str(raw).strip()
    if opt.kind is bool:
        return text or None
    return None if text in ("", "False") else text


def settings_class(name: str, reader: Side, doc: str, module: str, methods: Mapping[str, Any] | None = None) -> type:
    """A frozen dataclass with one attribute per option ``reader`` reads, defaulting to the table's."""
    specs = [(o.key, o.kind, field(default=o.default)) for o in read_by(reader)]
    cls = make_dataclass(name, specs, frozen=True, namespace={"__doc__": doc, **(methods or {})})
    cls.__module__ = module
    return cls


# -- documentation ---------------------------------------------------------------------------
def _default_text(opt: Option) -> str:
    return "none" if opt.default == "" else "`%s`" % opt.default


def markdown_table() -> str:
    """The README's "Configuration" table, one row per option."""
    rows = [
        "| key | read by | type | default | allowed | meaning |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for opt in OPTIONS:
        meaning = opt.help
        if opt.odoo_options_key:
            meaning += " (else `[options] %s`)" % opt.odoo_options_key
        cells = (opt.key, opt.side.value, opt.kind.__name__, _default_text(opt), opt.allowed(), meaning)
        rows.append("| %s |" % " | ".join(cells))
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
