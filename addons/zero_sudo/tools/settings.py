"""The addon's settings: the Odoo-side rows of the one table, read from odoo.conf once per process.

The table is :data:`zero_sudo_bus.options.OPTIONS`, shared with the daemons: :class:`Settings`
has one attribute per key Odoo reads (``Side.ODOO`` and ``Side.BOTH``), with the table's default,
and each value is converted and checked by the table's rules, so a line of ``[zero_sudo]`` means
the same thing here as in the daemons reading the same file. Keys Odoo does not read are left
to the daemons.

:func:`parse_settings` is pure (plain pytest runs it without Odoo);
:func:`settings_from_odoo_conf` feeds it the section Odoo parsed, and is the one way the addons
read their configuration.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from zero_sudo_bus.options import ODOO_CONF_SECTION, OptionError, Side, check_together, odoo_conf_text, read_by, settings_class

from .exceptions import ConfigurationError

Settings = settings_class(
    "Settings",
    Side.ODOO,
    "Every tunable of the Odoo addons, frozen; the defaults suit one host running the docker-compose stack.",
    __name__,
)


def parse_settings(section: Mapping[str, object]) -> Settings:
    """Settings from the raw ``[zero_sudo]`` section (strings, or the booleans Odoo makes of
    True/False); a wrong value raises :class:`ConfigurationError` naming the key."""
    values: dict[str, Any] = {}
    for opt in read_by(Side.ODOO):
        raw = section.get(opt.key)
        text = odoo_conf_text(opt, raw)
        if text is None:
            continue  # the default
        try:
            values[opt.key] = opt.parse(text)
        except OptionError as exc:
            raise ConfigurationError(
                "odoo.conf [%s] %s: %s %s, got %r" % (ODOO_CONF_SECTION, opt.key, opt.key, exc, raw)
            ) from None
    settings = Settings(**values)
    try:
        check_together(asdict(settings))
    except OptionError as exc:
        raise ConfigurationError("odoo.conf [%s]: %s" % (ODOO_CONF_SECTION, exc)) from None
    return settings


@functools.cache
def settings_from_odoo_conf() -> Settings:
    """This process's settings, from the ``[zero_sudo]`` section Odoo keeps in ``config.misc``.

    Read once: pools and executors are sized from it when first used, and odoo.conf does not
    change under a running server. Odoo is imported here, not at the top, so that this module
    stays importable without Odoo.
    """
    from odoo.tools import config as odoo_config  # noqa: PLC0415

    return parse_settings(odoo_config.misc.get(ODOO_CONF_SECTION, {}))
