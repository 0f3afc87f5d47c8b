"""Kept only for ``addons/zero_sudo_live/tests/common.py``, which imports ``settings`` from here;
the addons read their configuration with :func:`.settings.settings_from_odoo_conf`. Delete this
module once that import is switched."""

from .settings import settings_from_odoo_conf as settings

__all__ = ["settings"]
