"""What zero_sudo_live reads from odoo.conf's ``[zero_sudo]`` section (shared with the daemons)."""

import os

from odoo.tools import config as odoo_config

SECRET_KEY = "gateway_token_secret"
SECRET_ENV = "ZERO_SUDO_GATEWAY_TOKEN_SECRET"


def gateway_token_secret() -> str:
    """The HMAC secret gateway tokens are signed with; empty when tokens are disabled.

    The same key the gateway reads (``[zero_sudo] gateway_token_secret``, or the
    ``ZERO_SUDO_GATEWAY_TOKEN_SECRET`` environment variable), so one odoo.conf serves both.
    Read on each call: a test or an operator may set it without restarting.
    """
    section = odoo_config.misc.get("zero_sudo", {})
    return str(section.get(SECRET_KEY) or os.environ.get(SECRET_ENV) or "")
