"""The daemons' settings: the daemon-side rows of the one table, resolved once at start-up.

The table is :data:`zero_sudo_bus.options.OPTIONS` (shared with the Odoo addon): :class:`Settings`
has one attribute per key the daemons read, and :data:`OPTIONS` is those rows, so the flags, the
environment variables, the checks and the README's "Configuration" table can never drift from
the attributes the daemons read, nor from what Odoo reads on the same odoo.conf line.

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
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any, NoReturn

from zero_sudo_bus.options import (
    ENV_PREFIX,
    ODOO_CONF_SECTION,
    ODOO_OPTIONS_SECTION,
    Option,
    OptionError,
    Side,
    check_together,
    odoo_conf_text,
    read_by,
    settings_class,
)

from .errors import ConfigurationError

OPTIONS: tuple[Option, ...] = read_by(Side.DAEMONS)


def _libpq_kwargs(self: Any) -> dict[str, Any]:
    """libpq connection keywords (empty user/password: libpq's own defaults)."""
    kwargs: dict[str, Any] = {"host": self.db_host, "port": self.db_port, "dbname": self.db_name}
    if self.db_user:
        kwargs["user"] = self.db_user
    if self.db_password:
        kwargs["password"] = self.db_password
    return kwargs


Settings = settings_class(
    "Settings",
    Side.DAEMONS,
    "Every daemon setting, frozen: one attribute per daemon-side row of zero_sudo_bus.options.",
    __name__,
    {"libpq_kwargs": _libpq_kwargs},
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
            opt.flag, dest=opt.key, default=None, help="%s (env %s, default %r)" % (opt.help, opt.env, opt.default)
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
    options = parser[ODOO_OPTIONS_SECTION] if parser.has_section(ODOO_OPTIONS_SECTION) else {}
    return section, options


def _sources(
    opt: Option, args: argparse.Namespace, environ: Mapping[str, str], conf: tuple[str, Mapping[str, str], Mapping[str, str]]
) -> tuple[str, str] | None:
    """(raw value, where it came from) of the highest-precedence source that sets ``opt``."""
    path, section, odoo_options = conf
    if getattr(args, opt.key) is not None:
        return getattr(args, opt.key), "flag " + opt.flag
    if opt.env in environ:
        return environ[opt.env], "env " + opt.env
    text = odoo_conf_text(opt, section.get(opt.key))
    if text is not None:
        return text, "%s [%s] %s" % (path, ODOO_CONF_SECTION, opt.key)
    key = opt.odoo_options_key
    text = odoo_conf_text(opt, odoo_options.get(key)) if key else None
    if text is not None:
        return text, "%s [%s] %s" % (path, ODOO_OPTIONS_SECTION, key)
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
            continue  # the default
        raw, origin = found
        try:
            values[opt.key] = opt.parse(raw)
        except OptionError as exc:
            raise ConfigurationError("%s: %s %s, got %r" % (origin, opt.key, exc, raw)) from None
    settings = Settings(**values)
    try:
        check_together(asdict(settings))
    except OptionError as exc:
        raise ConfigurationError(str(exc)) from None
    return settings
