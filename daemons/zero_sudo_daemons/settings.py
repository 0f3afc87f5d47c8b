"""Every daemon setting, in one table, resolved and validated once at start-up into a frozen object.

The table is :class:`Settings` itself: each field is one key, written once, with its type, its
default, what it means and what values it accepts (:func:`option`). :data:`OPTIONS` is derived
from it, so the flags, the environment variables, the validation and the README's
"Configuration" table (a test keeps the two in step) can never drift from the attributes the
daemons read.

Precedence, highest first: command-line flag (``--redis-url``), environment variable
(``ZERO_SUDO_REDIS_URL``), the ``[zero_sudo]`` section of the odoo.conf named by ``--config``
or ``ZERO_SUDO_CONFIG``, then for the database keys Odoo's own ``[options]`` section of that
same file (``db_host``, ``db_port``, ``db_user``, ``db_password``, ``db_name``), then the
default. Nothing reads the environment at import time: :func:`resolve_settings` takes it
as an argument.

A bad value is never corrected or ignored: it raises :class:`ConfigurationError` with one
line naming where the value came from, the key, what is allowed and what was given, and the
daemon exits 2 without starting (``runtime.daemon_main``).
"""

from __future__ import annotations

import argparse
import configparser
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit

from redis.asyncio.connection import parse_url as parse_redis_url
from yarl import URL

from .errors import ConfigurationError

ENV_PREFIX = "ZERO_SUDO_"
ODOO_CONF_SECTION = "zero_sudo"
MAX_PORT = 65535  # listen ports also accept 0: any free port
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

Check = Callable[[str], str]  # returns the value, or raises ValueError("must be ...")


# -- value checks: each raises ValueError whose text completes "<key> ..." --------------------
def check_non_empty(value: str) -> str:
    """Listen addresses and names: an empty host would listen on every interface, silently."""
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def check_redis_url(value: str) -> str:
    """Parsed by redis-py's own parser (what the gateway uses), plus what that parser lets pass.

    redis-py ignores a database path that is not a number (``redis://host/abc`` silently
    means database 0) and an explicit port 0 (silently 6379): both are refused here.
    """
    expected = "must be a redis://host[:port][/db], rediss://… or unix://path[?db=N] URL"
    try:
        options = parse_redis_url(value)
    except ValueError as exc:
        raise ValueError("%s (%s)" % (expected, exc)) from None
    parts = urlsplit(value)
    if parts.scheme == "unix":
        if not options.get("path"):
            raise ValueError("%s (unix:// needs the socket's path)" % expected)
    else:
        database = unquote(parts.path)[1:]
        if database and not database.isdigit():
            raise ValueError("%s (the database %r is not a number)" % (expected, database))
        if parts.port == 0:
            raise ValueError("%s (port 0)" % expected)
    if options.get("db", 0) < 0:
        raise ValueError("%s (negative database)" % expected)
    return value


def check_amqp_url(value: str) -> str:
    """Parsed by yarl, as aio-pika/aiormq do; they would quietly replace a port 0 by 5672."""
    expected = "must be an amqp://[user:password@]host[:port][/vhost] or amqps://… URL"
    try:
        url = URL(value)
        port = url.explicit_port
    except ValueError as exc:
        raise ValueError("%s (%s)" % (expected, exc)) from None
    if url.scheme not in ("amqp", "amqps") or not url.host:
        raise ValueError(expected)
    if port == 0:
        raise ValueError("%s (port 0)" % expected)
    return value


def option(
    default: Any,
    help: str,
    *,
    odoo_key: str | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
    choices: tuple[str, ...] = (),
    check: Check | None = None,
) -> Any:
    """One row of the settings table, as a dataclass field (the key and type are the field's)."""
    spec = {"help": help, "odoo_options_key": odoo_key, "minimum": minimum, "maximum": maximum}
    return field(default=default, metadata={"option": {**spec, "choices": choices, "check": check}})


@dataclass(frozen=True)
class Settings:
    """Every daemon setting: the one table the flags, env variables, checks and README follow."""

    db_name: str = option("zero_sudo", "Odoo database whose events are relayed", odoo_key="db_name", check=check_non_empty)
    db_host: str = option("127.0.0.1", "PostgreSQL host (or socket directory)", odoo_key="db_host")
    db_port: int = option(5432, "PostgreSQL port", odoo_key="db_port", minimum=1, maximum=MAX_PORT)
    db_user: str = option("", "PostgreSQL user (empty: the OS user, as libpq does)", odoo_key="db_user")
    db_password: str = option("", "PostgreSQL password", odoo_key="db_password")
    redis_url: str = option("redis://127.0.0.1:6379/0", "Redis URL for pub/sub", check=check_redis_url)
    log_level: str = option("INFO", "DEBUG, INFO, WARNING, ERROR or CRITICAL (any case)", choices=LOG_LEVELS)
    log_format: str = option("json", "json (one object per line) or text", choices=("json", "text"))
    relay_http_host: str = option("127.0.0.1", "relay /healthz and /metrics listen address", check=check_non_empty)
    relay_http_port: int = option(9101, "relay /healthz and /metrics port (0: any free port)", minimum=0, maximum=MAX_PORT)
    relay_max_pending_ids: int = option(1_000_000, "IDs buffered while Redis is slow; beyond, a flush replaces them", minimum=1)
    amqp_url: str = option("amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ URL for ingestion", check=check_amqp_url)
    landing_http_host: str = option("127.0.0.1", "landing daemon /healthz and /metrics listen address", check=check_non_empty)
    landing_http_port: int = option(
        9102, "landing daemon /healthz and /metrics port (0: any free port)", minimum=0, maximum=MAX_PORT
    )
    landing_batch_size: int = option(500, "messages landed per transaction at most", minimum=1)
    landing_batch_ms: int = option(50, "longest wait for a batch to fill before landing what is there", minimum=1)
    # AMQP's basic.qos prefetch-count is a 16-bit field, hence the same bound as a port.
    landing_prefetch: int = option(
        2000, "unacknowledged messages the broker may push (bounds memory)", minimum=1, maximum=MAX_PORT
    )
    poller_http_host: str = option("127.0.0.1", "poller /healthz and /metrics listen address", check=check_non_empty)
    poller_http_port: int = option(9103, "poller /healthz and /metrics port (0: any free port)", minimum=0, maximum=MAX_PORT)
    poller_sources: str = option("", "JSON file listing the sources to poll (empty: none)")
    poller_concurrency: int = option(8, "sources fetched at the same time at most", minimum=1)
    poller_timeout_ms: int = option(10_000, "timeout of one fetch, connect to last byte", minimum=1)
    gateway_host: str = option("127.0.0.1", "gateway WebSocket, /healthz and /metrics listen address", check=check_non_empty)
    gateway_port: int = option(
        9104,
        "gateway port: WebSocket at /ws, plus /healthz, /metrics, /demo.html (0: any free port)",
        minimum=0,
        maximum=MAX_PORT,
    )
    gateway_allowed_origins: str = option(
        "http://localhost:8069,http://127.0.0.1:8069,http://localhost:9104,http://127.0.0.1:9104",
        "Origin headers allowed to open a WebSocket, comma-separated (* for any)",
    )
    gateway_token_secret: str = option("", "HMAC secret Odoo signs gateway tokens with (empty: tokens refused)")
    session_prefix: str = option(
        "zero_sudo:", "Redis key prefix of the zero_sudo addon's Odoo sessions (the addon's own key)", check=check_non_empty
    )
    gateway_max_connections: int = option(
        16_000, "WebSocket connections per gateway process at most (beyond: HTTP 503)", minimum=1
    )
    gateway_max_frame_bytes: int = option(
        8192, "largest inbound WebSocket message; beyond, the connection is closed (1009)", minimum=1
    )
    gateway_max_buffer_bytes: int = option(
        262_144, "outgoing bytes queued per connection; beyond, it is closed (1013)", minimum=1
    )
    gateway_commands_per_s: int = option(5, "client commands per second on average; beyond the burst: closed (1008)", minimum=1)
    gateway_command_burst: int = option(20, "client commands allowed in a burst", minimum=1)
    gateway_ping_interval_s: int = option(20, "seconds between pings to each client", minimum=1)
    gateway_ping_timeout_s: int = option(20, "a client that does not answer a ping within this is closed", minimum=1)

    def libpq_kwargs(self) -> dict[str, Any]:
        """libpq connection keywords (empty user/password: libpq's own defaults)."""
        kwargs: dict[str, Any] = {"host": self.db_host, "port": self.db_port, "dbname": self.db_name}
        if self.db_user:
            kwargs["user"] = self.db_user
        if self.db_password:
            kwargs["password"] = self.db_password
        return kwargs


@dataclass(frozen=True)
class Option:
    """One key of :class:`Settings` with everything needed to read and check it from text."""

    name: str
    kind: type
    default: Any
    help: str
    odoo_options_key: str | None = None  # fallback key in odoo.conf's [options] section
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()  # matched whatever the case, kept as written here
    check: Check | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def parse(self, raw: str) -> Any:
        """The typed value of ``raw``, or ValueError whose text completes "<key> ..."."""
        if self.kind is int:
            try:
                number = int(raw)
            except ValueError:
                raise ValueError("must be an integer") from None
            low, high = self.minimum, self.maximum
            if (low is not None and number < low) or (high is not None and number > high):
                if high is None:
                    raise ValueError("must be at least %d" % low)
                if low is None:
                    raise ValueError("must be at most %d" % high)
                raise ValueError("must be between %d and %d" % (low, high))
            return number
        if self.choices:
            for choice in self.choices:
                if raw.strip().casefold() == choice.casefold():
                    return choice
            raise ValueError("must be one of %s" % ", ".join(self.choices))
        return self.check(raw) if self.check is not None else raw


_KINDS: dict[str, type] = {"str": str, "int": int}  # field types as strings (postponed annotations)

OPTIONS: tuple[Option, ...] = tuple(
    Option(name=f.name, kind=_KINDS[str(f.type)], default=f.default, **f.metadata["option"]) for f in fields(Settings)
)


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing its usage: a bad flag is one line too."""

    def error(self, message: str) -> NoReturn:
        raise ConfigurationError("%s (see --help)" % message)


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description=description)
    parser.add_argument("--config", help="odoo.conf to read the [zero_sudo] section from (env ZERO_SUDO_CONFIG)")
    for opt in OPTIONS:
        parser.add_argument(
            opt.flag, dest=opt.name, default=None, help="%s (env %s, default %r)" % (opt.help, opt.env, opt.default)
        )
    return parser


def _read_odoo_conf(path: str) -> tuple[Mapping[str, str], Mapping[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error, UnicodeDecodeError) as exc:
        detail = " ".join(str(exc).split())  # configparser's messages span lines
        raise ConfigurationError("cannot read config file %s: %s" % (path, detail)) from None
    section = parser[ODOO_CONF_SECTION] if parser.has_section(ODOO_CONF_SECTION) else {}
    options = parser["options"] if parser.has_section("options") else {}
    return section, options


def _odoo_value(raw: str) -> str | None:
    # odoo.conf writes "False" for an unset value.
    return None if raw.strip() in ("", "False") else raw.strip()


def _sources(
    opt: Option, args: argparse.Namespace, environ: Mapping[str, str], conf: tuple[str, Mapping[str, str], Mapping[str, str]]
) -> tuple[str, str] | None:
    """(raw value, where it came from) of the highest-precedence source that sets ``opt``."""
    path, section, odoo_options = conf
    if getattr(args, opt.name) is not None:
        return getattr(args, opt.name), "flag " + opt.flag
    if opt.env in environ:
        return environ[opt.env], "env " + opt.env
    if opt.name in section and _odoo_value(section[opt.name]) is not None:
        return _odoo_value(section[opt.name]), "%s [%s] %s" % (path, ODOO_CONF_SECTION, opt.name)
    key = opt.odoo_options_key
    if key and key in odoo_options and _odoo_value(odoo_options[key]) is not None:
        return _odoo_value(odoo_options[key]), "%s [options] %s" % (path, key)
    return None


def resolve_settings(argv: Sequence[str], environ: Mapping[str, str], prog: str = "zero-sudo", description: str = "") -> Settings:
    """Resolve and check every option once: flags > ZERO_SUDO_* env > odoo.conf [zero_sudo] > [options] > default."""
    args = build_parser(prog, description).parse_args(list(argv))
    config_path = args.config or environ.get(ENV_PREFIX + "CONFIG")
    conf: tuple[str, Mapping[str, str], Mapping[str, str]] = ("", {}, {})
    if config_path:
        conf = (config_path, *_read_odoo_conf(config_path))
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        found = _sources(opt, args, environ, conf)
        if found is None:
            continue  # the field's default
        raw, origin = found
        try:
            values[opt.name] = opt.parse(raw)
        except ValueError as exc:
            raise ConfigurationError("%s: %s %s, got %r" % (origin, opt.name, exc, raw)) from None
    settings = Settings(**values)
    if settings.landing_prefetch < settings.landing_batch_size:
        raise ConfigurationError(
            "landing_prefetch must be at least landing_batch_size, or batches never fill, got %d < %d"
            % (settings.landing_prefetch, settings.landing_batch_size)
        )
    return settings
