"""addons/zero_sudo/tools/settings.py without Odoo: the Odoo side of the one settings table."""

from dataclasses import fields

import pytest

from conftest import addon_tools
from zero_sudo_bus.options import Side, read_by

addon_tools("zero_sudo")  # before importing from its package, zero_sudo_tools
from zero_sudo_tools.exceptions import ConfigurationError  # noqa: E402
from zero_sudo_tools.settings import Settings, parse_settings  # noqa: E402


def test_settings_defaults_and_conversion():
    assert parse_settings({}) == Settings()
    conf = parse_settings({"session_ttl": "60", "redis_timeout": "0.5", "cache_coherence": "off", "poller_x": "ignored"})
    assert (conf.session_ttl, conf.redis_timeout, conf.cache_coherence) == (60, 0.5, False)


def test_settings_are_the_odoo_side_of_the_one_table():
    assert [field.name for field in fields(Settings)] == [opt.key for opt in read_by(Side.ODOO)]
    assert "ingest_max_body_bytes" in Settings.__dataclass_fields__  # zero_sudo_ingest's key
    assert "relay_http_port" not in Settings.__dataclass_fields__  # the daemons' only


@pytest.mark.parametrize(
    "section",
    [
        {"session_ttl": "soon"},
        {"executor_max_workers": "0"},
        {"cache_coherence": "maybe"},
        {"redis_timeout": "0"},
        {"redis_url": "redis://127.0.0.1:6379/abc"},
        {"ingest_max_body_bytes": "-1"},
    ],
)
def test_bad_settings_are_refused_with_the_key_named(section):
    with pytest.raises(ConfigurationError, match=next(iter(section))) as info:
        parse_settings(section)
    assert str(info.value).startswith("odoo.conf [zero_sudo] %s: " % next(iter(section)))


def test_unset_values_are_read_as_the_daemons_read_them():
    """Odoo writes False for an unset value and its config.misc makes booleans of True/False."""
    conf = parse_settings({"session_prefix": "", "redis_url": "False", "cache_coherence": False})
    assert (conf.session_prefix, conf.redis_url, conf.cache_coherence) == ("zero_sudo:", Settings().redis_url, False)
