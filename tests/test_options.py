"""The one table of options (``zero_sudo_bus.options``): its rows, its checks, and the README.

The daemons' side is tested through ``resolve_settings`` in ``test_settings.py``; the addon's
through ``parse_settings`` in ``test_zero_sudo_core_logic.py``. Here: what both rely on.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from redis.connection import parse_url
from yarl import URL

from zero_sudo_bus import options
from zero_sudo_bus.options import (
    BY_KEY,
    OPTIONS,
    Option,
    OptionError,
    Side,
    check_amqp_url,
    check_redis_url,
    check_together,
    markdown_table,
    odoo_conf_text,
    read_by,
)

ROOT = Path(__file__).resolve().parent.parent


# -- the rows --------------------------------------------------------------------------------
def test_keys_are_unique_and_kinds_known():
    assert len(BY_KEY) == len(OPTIONS)
    assert {opt.kind for opt in OPTIONS} == {str, int, float, bool}
    assert all(isinstance(opt.side, Side) and opt.help for opt in OPTIONS)


@pytest.mark.parametrize("opt", OPTIONS, ids=lambda o: o.key)
def test_every_default_passes_its_own_check(opt: Option):
    assert opt.parse(str(opt.default)) == opt.default


def test_each_side_reads_its_own_rows_and_the_shared_ones():
    daemons, odoo = read_by(Side.DAEMONS), read_by(Side.ODOO)
    shared = {opt.key for opt in daemons} & {opt.key for opt in odoo}
    assert shared == {opt.key for opt in OPTIONS if opt.side is Side.BOTH}
    assert shared >= {"redis_url", "amqp_url", "session_prefix", "gateway_token_secret"}
    assert len(daemons) + len(odoo) - len(shared) == len(OPTIONS)
    # Only the daemons fall back on Odoo's [options]: Odoo reads its own section itself.
    assert all(opt.side is Side.DAEMONS for opt in OPTIONS if opt.odoo_options_key)


def test_flag_and_env_are_derived_from_the_key():
    opt = BY_KEY["relay_http_port"]
    assert (opt.flag, opt.env) == ("--relay-http-port", "ZERO_SUDO_RELAY_HTTP_PORT")


# -- conversions and checks ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("cache_coherence", "off", False),
        ("cache_coherence", " YES ", True),
        ("cache_coherence", "False", False),
        ("redis_timeout", "0.5", 0.5),
        ("executor_max_queued", "0", 0),
        ("log_level", "warning", "WARNING"),
    ],
)
def test_values_are_converted(key: str, raw: str, expected: object):
    assert BY_KEY[key].parse(raw) == expected


@pytest.mark.parametrize(
    ("key", "raw", "message"),
    [
        ("cache_coherence", "maybe", "must be a boolean"),
        ("redis_timeout", "0", "must be greater than 0"),
        ("redis_timeout", "nan", "must be a number"),
        ("redis_timeout", "soon", "must be a number"),
        ("session_ttl", "60.5", "must be an integer"),
        ("executor_max_queued", "-1", "must be at least 0"),
        ("db_port", "65536", "must be between 1 and 65535"),
        ("log_format", "xml", "must be one of json, text"),
        ("session_prefix", " ", "must not be empty"),
    ],
)
def test_bad_values_raise_the_one_error_type(key: str, raw: str, message: str):
    with pytest.raises(OptionError, match=re.escape(message)):
        BY_KEY[key].parse(raw)


def test_rules_between_keys_apply_to_the_keys_a_side_read():
    check_together({"landing_prefetch": 500, "landing_batch_size": 500})
    check_together({"landing_prefetch": 1})  # the other key is not read: nothing to compare
    with pytest.raises(OptionError, match="landing_prefetch must be at least landing_batch_size"):
        check_together({"landing_prefetch": 100, "landing_batch_size": 500})


REDIS_URLS = [
    "redis://127.0.0.1",
    "redis://:pw@h:6380/3",
    "rediss://u:p@h/15",
    "unix:///tmp/redis.sock?db=2",
    "redis://h/0?socket_timeout=1.5",
    "redis://127.0.0.1:6379/abc",
    "redis://127.0.0.1:6379/1/2",
    "redis://127.0.0.1:6379/0?db=x",
    "redis://h/0?socket_timeout=x",
    "redis://127.0.0.1:70000/0",
    "redis://127.0.0.1:0/0",
    "redis://127.0.0.1:port/0",
    "redis://h/?db=-1",
    "127.0.0.1:6379",
    "http://h",
    "unix://",
]


def _redis_py_accepts(url: str) -> bool:
    """What redis-py's own parser makes of ``url``: refused, or the database it would use."""
    try:
        return parse_url(url).get("db", 0) >= 0
    except ValueError:
        return False


@pytest.mark.parametrize("url", REDIS_URLS)
def test_the_redis_check_refuses_what_redis_py_refuses(url: str):
    """Stdlib only, yet never more lenient than redis-py (and stricter on its silent defaults)."""
    try:
        accepted = check_redis_url(url) == url
    except OptionError:
        accepted = False
    if not _redis_py_accepts(url):
        assert not accepted
    if accepted:  # and the database redis-py uses is the one written, never a silent 0
        written = parse_qs(urlsplit(url).query).get("db") or [urlsplit(url).path.strip("/") or "0"]
        assert parse_url(url).get("db", 0) == int(written[0])


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("amqp://h", True),
        ("amqps://u:p@h:5671/vhost", True),
        ("amqp://guest:guest@127.0.0.1:5672/", True),
        ("http://127.0.0.1:5672/", False),
        ("amqp://guest:guest@127.0.0.1:99999/", False),
        ("amqp://", False),
        ("amqp://h:0/", False),
        ("amqp://h:port/", False),
    ],
)
def test_the_amqp_check_agrees_with_yarl(url: str, accepted: bool):
    try:
        ours = check_amqp_url(url) == url
    except OptionError:
        ours = False
    assert ours is accepted
    if accepted:
        parsed = URL(url)  # what aio-pika parses
        assert parsed.scheme in ("amqp", "amqps") and parsed.host and parsed.explicit_port != 0


@pytest.mark.parametrize(
    ("key", "raw", "text"),
    [
        ("redis_url", None, None),
        ("redis_url", "", None),
        ("redis_url", "False", None),  # what Odoo writes for an unset value
        ("redis_url", " redis://h ", "redis://h"),
        ("cache_coherence", False, "False"),  # Odoo's config.misc turns the word into a bool
        ("cache_coherence", "False", "False"),
        ("cache_coherence", True, "True"),
        ("cache_coherence", "", None),
    ],
)
def test_odoo_conf_unset_values(key: str, raw: object, text: str | None):
    assert odoo_conf_text(BY_KEY[key], raw) == text


# -- documentation ---------------------------------------------------------------------------
def test_readme_configuration_table_is_the_table():
    """Regenerate with ``python -m zero_sudo_bus.options`` when a row changes."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Configuration") :]
    assert markdown_table() in section, "README.md's Configuration table differs from:\n" + markdown_table()


def test_every_odoo_side_key_is_documented_by_an_addon():
    documented = "".join(path.read_text(encoding="utf-8") for path in (ROOT / "addons").glob("*/readme/CONFIGURE.md"))
    missing = [opt.key for opt in read_by(Side.ODOO) if "`%s`" % opt.key not in documented]
    assert missing == []


def test_the_table_module_needs_only_the_standard_library():
    source = Path(options.__file__).read_text(encoding="utf-8")
    imported = set(re.findall(r"^(?:from|import) (\S+)", source, re.MULTILINE))
    assert imported <= {
        "__future__",
        "enum",
        "math",
        "re",
        "collections.abc",
        "dataclasses",
        "typing",
        "urllib.parse",
        ".sessions",
    }
