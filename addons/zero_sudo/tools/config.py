"""The addon's settings, read once from odoo.conf's ``[zero_sudo]`` section."""

import functools

from odoo.tools import config as odoo_config

from .settings import Settings, parse_settings


@functools.cache
def settings() -> Settings:
    """This process's settings; Odoo keeps a foreign section of odoo.conf in ``config.misc``."""
    return parse_settings(odoo_config.misc.get("zero_sudo", {}))
