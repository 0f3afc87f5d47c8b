"""The gateway token secret as zero_sudo_live reads it: the ``gateway_token_secret`` row of the
one options table (``zero_sudo_bus.options``), which the gateway reads too."""

import os

from zero_sudo_bus.options import BY_KEY, ODOO_CONF_SECTION, odoo_conf_text

from odoo.tools import config as odoo_config

SECRET_OPTION = BY_KEY["gateway_token_secret"]


def gateway_token_secret() -> str:
    """The HMAC secret gateway tokens are signed with; empty when tokens are disabled.

    From the option's environment variable (``ZERO_SUDO_GATEWAY_TOKEN_SECRET``: a secret stays
    out of files, as the compose stack passes it to both containers), else odoo.conf's
    ``[zero_sudo]`` section: the gateway's order of precedence.
    """
    from_env = os.environ.get(SECRET_OPTION.env, "").strip()
    if from_env:
        return from_env
    section = odoo_config.misc.get(ODOO_CONF_SECTION, {})
    return odoo_conf_text(SECRET_OPTION, section.get(SECRET_OPTION.key)) or ""
