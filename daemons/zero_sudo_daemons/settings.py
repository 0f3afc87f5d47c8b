"""Every daemon setting, in one table, resolved once at start-up into a frozen object.

Precedence, highest first: command-line flag (``--redis-url``), environment variable
(``ZERO_SUDO_REDIS_URL``), the ``[zero_sudo]`` section of the odoo.conf named by ``--config``
or ``ZERO_SUDO_CONFIG``, then for the database keys Odoo's own ``[options]`` section of that
same file (``db_host``, ``db_port``, ``db_user``, ``db_password``, ``db_name``), then the
default. Nothing reads the environment at import time: :func:`resolve_settings` takes it
as an argument. The README's "Configuration" table documents :data:`OPTIONS`; a test keeps
the two in step.
"""

from __future__ import annotations

import argparse
import configparser
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError

ENV_PREFIX = "ZERO_SUDO_"
ODOO_CONF_SECTION = "zero_sudo"


@dataclass(frozen=True)
class Option:
    name: str
    kind: type
    default: Any
    help: str
    odoo_options_key: str | None = None  # fallback key in odoo.conf's [options] section


OPTIONS: tuple[Option, ...] = (
    Option("db_name", str, "zero_sudo", "Odoo database whose events are relayed", "db_name"),
    Option("db_host", str, "127.0.0.1", "PostgreSQL host (or socket directory)", "db_host"),
    Option("db_port", int, 5432, "PostgreSQL port", "db_port"),
    Option("db_user", str, "", "PostgreSQL user (empty: the OS user, as libpq does)", "db_user"),
    Option("db_password", str, "", "PostgreSQL password", "db_password"),
    Option("redis_url", str, "redis://127.0.0.1:6379/0", "Redis URL for pub/sub"),
    Option("log_level", str, "INFO", "DEBUG, INFO, WARNING or ERROR"),
    Option("log_format", str, "json", "json (one object per line) or text"),
    Option("relay_http_host", str, "127.0.0.1", "relay /healthz and /metrics listen address"),
    Option("relay_http_port", int, 9101, "relay /healthz and /metrics port (0: any free port)"),
    Option("relay_max_pending_ids", int, 1_000_000, "IDs buffered while Redis is slow; beyond, a flush replaces them"),
    Option("amqp_url", str, "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ URL for ingestion"),
    Option("landing_http_host", str, "127.0.0.1", "landing daemon /healthz and /metrics listen address"),
    Option("landing_http_port", int, 9102, "landing daemon /healthz and /metrics port (0: any free port)"),
    Option("landing_batch_size", int, 500, "messages landed per transaction at most"),
    Option("landing_batch_ms", int, 50, "longest wait for a batch to fill before landing what is there"),
    Option("landing_prefetch", int, 2000, "unacknowledged messages the broker may push (bounds memory)"),
    Option("poller_http_host", str, "127.0.0.1", "poller /healthz and /metrics listen address"),
    Option("poller_http_port", int, 9103, "poller /healthz and /metrics port (0: any free port)"),
    Option("poller_sources", str, "", "JSON file listing the sources to poll (empty: none)"),
    Option("poller_concurrency", int, 8, "sources fetched at the same time at most"),
    Option("poller_timeout_ms", int, 10_000, "timeout of one fetch, connect to last byte"),
    Option("gateway_host", str, "127.0.0.1", "gateway WebSocket, /healthz and /metrics listen address"),
    Option("gateway_port", int, 9104, "gateway port: WebSocket at /ws, plus /healthz, /metrics, /demo.html (0: any free port)"),
    Option(
        "gateway_allowed_origins",
        str,
        "http://localhost:8069,http://127.0.0.1:8069,http://localhost:9104,http://127.0.0.1:9104",
        "Origin headers allowed to open a WebSocket, comma-separated (* for any)",
    ),
    Option("gateway_token_secret", str, "", "HMAC secret Odoo signs gateway tokens with (empty: tokens refused)"),
    Option("session_prefix", str, "zero_sudo:", "Redis key prefix of the zero_sudo addon's Odoo sessions (the addon's own key)"),
    Option("gateway_max_connections", int, 16_000, "WebSocket connections per gateway process at most (beyond: HTTP 503)"),
    Option("gateway_max_frame_bytes", int, 8192, "largest inbound WebSocket message; beyond, the connection is closed (1009)"),
    Option("gateway_max_buffer_bytes", int, 262_144, "outgoing bytes queued per connection; beyond, it is closed (1013)"),
    Option("gateway_commands_per_s", int, 5, "client commands per second on average; beyond the burst: closed (1008)"),
    Option("gateway_command_burst", int, 20, "client commands allowed in a burst"),
    Option("gateway_ping_interval_s", int, 20, "seconds between pings to each client"),
    Option("gateway_ping_timeout_s", int, 20, "a client that does not answer a ping within this is closed"),
)


@dataclass(frozen=True)
class Settings:
    db_name: str
    db_host: str
    db_port: int
    db_user: str
    db_password: str
    redis_url: str
    log_level: str
    log_format: str
    relay_http_host: str
    relay_http_port: int
    relay_max_pending_ids: int
    amqp_url: str
    landing_http_host: str
    landing_http_port: int
    landing_batch_size: int
    landing_batch_ms: int
    landing_prefetch: int
    poller_http_host: str
    poller_http_port: int
    poller_sources: str
    poller_concurrency: int
    poller_timeout_ms: int
    gateway_host: str
    gateway_port: int
    gateway_allowed_origins: str
    gateway_token_secret: str
    session_prefix: str
    gateway_max_connections: int
    gateway_max_frame_bytes: int
    gateway_max_buffer_bytes: int
    gateway_commands_per_s: int
    gateway_command_burst: int
    gateway_ping_interval_s: int
    gateway_ping_timeout_s: int

    def libpq_kwargs(self) -> dict[str, Any]:
        """libpq connection keywords (empty user/password: libpq's own defaults)."""
        kwargs: dict[str, Any] = {"host": self.db_host, "port": self.db_port, "dbname": self.db_name}
        if self.db_user:
            kwargs["user"] = self.db_user
        if self.db_password:
            kwargs["password"] = self.db_password
        return kwargs


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", help="odoo.conf to read the [zero_sudo] section from (env ZERO_SUDO_CONFIG)")
    for option in OPTIONS:
        parser.add_argument(
            _flag(option.name),
            dest=option.name,
            default=None,
            help="%s (env %s%s, default %r)" % (option.help, ENV_PREFIX, option.name.upper(), option.default),
        )
    return parser


def _read_odoo_conf(path: str) -> tuple[Mapping[str, str], Mapping[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error) as exc:
        raise ConfigurationError("cannot read config file %s: %s" % (path, exc)) from exc
    section = parser[ODOO_CONF_SECTION] if parser.has_section(ODOO_CONF_SECTION) else {}
    options = parser["options"] if parser.has_section("options") else {}
    return section, options


def _convert(option: Option, raw: str, origin: str) -> Any:
    if option.kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigurationError("%s: %s must be an integer, got %r" % (origin, option.name, raw)) from None
    return raw


def _odoo_value(raw: str) -> str | None:
    # odoo.conf writes "False" for an unset value.
    return None if raw.strip() in ("", "False") else raw.strip()


def resolve_settings(argv: Sequence[str], environ: Mapping[str, str], prog: str = "zero-sudo", description: str = "") -> Settings:
    """Resolve every option once: flags > ZERO_SUDO_* env > odoo.conf [zero_sudo] > [options] > default."""
    args = build_parser(prog, description).parse_args(list(argv))
    config_path = args.config or environ.get(ENV_PREFIX + "CONFIG")
    section: Mapping[str, str] = {}
    odoo_options: Mapping[str, str] = {}
    if config_path:
        section, odoo_options = _read_odoo_conf(config_path)
    values: dict[str, Any] = {}
    for option in OPTIONS:
        env_key = ENV_PREFIX + option.name.upper()
        candidates = (
            (getattr(args, option.name), "flag " + _flag(option.name)),
            (environ.get(env_key), "env " + env_key),
            (_odoo_value(section[option.name]) if option.name in section else None, "odoo.conf [zero_sudo]"),
            (
                _odoo_value(odoo_options[option.odoo_options_key])
                if option.odoo_options_key and option.odoo_options_key in odoo_options
                else None,
                "odoo.conf [options]",
            ),
        )
        for raw, origin in candidates:
            if raw is not None:
                values[option.name] = _convert(option, raw, origin)
                break
        else:
            values[option.name] = option.default
    settings = Settings(**values)
    if settings.log_format not in ("json", "text"):
        raise ConfigurationError("log_format must be json or text, got %r" % settings.log_format)
    for name in (
        "relay_max_pending_ids",
        "landing_batch_size",
        "landing_batch_ms",
        "landing_prefetch",
        "poller_concurrency",
        "poller_timeout_ms",
        "gateway_max_connections",
        "gateway_max_frame_bytes",
        "gateway_max_buffer_bytes",
        "gateway_commands_per_s",
        "gateway_command_burst",
        "gateway_ping_interval_s",
        "gateway_ping_timeout_s",
    ):
        if getattr(settings, name) < 1:
            raise ConfigurationError("%s must be at least 1" % name)
    if settings.landing_prefetch < settings.landing_batch_size:
        raise ConfigurationError("landing_prefetch must be at least landing_batch_size, or batches never fill")
    return settings
