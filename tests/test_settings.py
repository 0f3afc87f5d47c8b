"""Bad daemon settings stop the daemon with one line naming the setting, exit code 2.

Unit tests of :func:`resolve_settings` for each kind of bad value, then the real entry points
run as subprocesses: with a bad value, and with their port already taken by the test. Nothing
out of range may be silently changed, and nothing may end in a traceback.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest

from zero_sudo_daemons.errors import ConfigurationError
from zero_sudo_daemons.ops_http import listening
from zero_sudo_daemons.settings import OPTIONS, Settings, resolve_settings

BIN = Path(sys.executable).parent
RUN_TIMEOUT_S = 30  # a daemon that accepted a bad value would run until killed


def _error(argv: list[str], env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigurationError) as info:
        resolve_settings(argv, env or {})
    message = str(info.value)
    assert "\n" not in message
    return message


# -- the table -------------------------------------------------------------------------------
def test_options_are_derived_from_the_settings_fields():
    assert [o.name for o in OPTIONS] == [f.name for f in fields(Settings)]
    assert {o.kind for o in OPTIONS} == {str, int}


@pytest.mark.parametrize("opt", OPTIONS, ids=lambda o: o.name)
def test_every_default_passes_its_own_check(opt):
    assert opt.parse(str(opt.default)) == opt.default


def test_defaults_resolve():
    assert resolve_settings([], {}) == Settings()


# -- bad values, one per kind ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["--relay-http-port", "70000"], {}, "flag --relay-http-port: relay_http_port must be between 0 and 65535, got '70000'"),
        (["--gateway-port", "-1"], {}, "gateway_port must be between 0 and 65535, got '-1'"),
        (["--db-port", "0"], {}, "db_port must be between 1 and 65535, got '0'"),
        ([], {"ZERO_SUDO_DB_PORT": "5432.0"}, "env ZERO_SUDO_DB_PORT: db_port must be an integer, got '5432.0'"),
        (["--landing-batch-size", ""], {}, "landing_batch_size must be an integer, got ''"),
        (["--landing-batch-size", "-5"], {}, "landing_batch_size must be at least 1, got '-5'"),
        (["--gateway-ping-interval-s", "0"], {}, "gateway_ping_interval_s must be at least 1, got '0'"),
        (["--poller-timeout-ms", "ten"], {}, "poller_timeout_ms must be an integer, got 'ten'"),
        (["--landing-prefetch", "70000"], {}, "landing_prefetch must be between 1 and 65535"),
        (["--log-level", "LOUD"], {}, "log_level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'LOUD'"),
        ([], {"ZERO_SUDO_LOG_FORMAT": "xml"}, "env ZERO_SUDO_LOG_FORMAT: log_format must be one of json, text, got 'xml'"),
        (["--redis-url", "redis://127.0.0.1:6379/abc"], {}, "redis_url must be a redis://"),
        (["--redis-url", "redis://127.0.0.1:6379/1/2"], {}, "the database '1/2' is not a number"),
        (["--redis-url", "redis://127.0.0.1:6379/-1"], {}, "the database '-1' is not a number"),
        (["--redis-url", "redis://127.0.0.1:6379/0?db=x"], {}, "Invalid value for 'db'"),
        (["--redis-url", "redis://127.0.0.1:70000/0"], {}, "Port out of range"),
        (["--redis-url", "redis://127.0.0.1:0/0"], {}, "(port 0)"),
        (["--redis-url", "redis://127.0.0.1:port/0"], {}, "redis_url must be"),
        (["--redis-url", "127.0.0.1:6379"], {}, "redis_url must be"),
        (["--redis-url", "unix://"], {}, "unix:// needs the socket's path"),
        (["--amqp-url", "http://127.0.0.1:5672/"], {}, "amqp_url must be an amqp://"),
        (["--amqp-url", "amqp://guest:guest@127.0.0.1:99999/"], {}, "amqp_url must be an amqp://"),
        (["--amqp-url", "amqp://"], {}, "amqp_url must be an amqp://"),
        (["--amqp-url", "amqp://h:0/"], {}, "(port 0)"),
        (["--relay-http-host", ""], {}, "relay_http_host must not be empty"),
        (["--gateway-host", " "], {}, "gateway_host must not be empty"),
        (["--session-prefix", ""], {}, "session_prefix must not be empty"),
        (["--db-name", ""], {}, "db_name must not be empty"),
        (
            ["--landing-prefetch", "100", "--landing-batch-size", "500"],
            {},
            "landing_prefetch must be at least landing_batch_size",
        ),
        (["--relay-port", "9101"], {}, "unrecognized arguments: --relay-port 9101"),
        (["--db-port"], {}, "argument --db-port: expected one argument"),
    ],
)
def test_bad_value_is_one_line_naming_origin_setting_and_allowed_values(argv, env, expected):
    assert expected in _error(argv, env)


def test_odoo_conf_origin_names_the_file_and_section(tmp_path):
    conf = tmp_path / "odoo.conf"
    conf.write_text("[options]\ndb_port = 54x\n[zero_sudo]\nlog_level = verbose\n")
    message = _error(["--log-level", "info"], {"ZERO_SUDO_CONFIG": str(conf)})
    assert message == "%s [options] db_port: db_port must be an integer, got '54x'" % conf
    message = _error(["--db-port", "5432"], {"ZERO_SUDO_CONFIG": str(conf)})
    assert (
        message
        == "%s [zero_sudo] log_level: log_level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'verbose'" % conf
    )


def test_unparsable_odoo_conf_is_one_line(tmp_path):
    conf = tmp_path / "odoo.conf"
    conf.write_text("[zero_sudo]\nno equals sign here\n")
    assert "cannot read config file %s" % conf in _error(["--config", str(conf)])


def test_good_values_are_accepted_and_normalized_only_in_case():
    settings = resolve_settings(
        ["--log-level", "debug", "--log-format", "TEXT", "--relay-http-port", "0", "--landing-prefetch", "65535"], {}
    )
    assert (settings.log_level, settings.log_format, settings.relay_http_port) == ("DEBUG", "text", 0)
    for url in ("redis://127.0.0.1", "redis://:pw@h:6380/3", "rediss://u:p@h/15", "unix:///tmp/redis.sock?db=2"):
        assert resolve_settings(["--redis-url", url], {}).redis_url == url
    for url in ("amqp://h", "amqps://u:p@h:5671/vhost"):
        assert resolve_settings(["--amqp-url", url], {}).amqp_url == url


# -- listening ----------------------------------------------------------------------------
@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 the test holds open, so that a daemon's bind to it fails."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_listening_turns_a_port_in_use_into_a_configuration_error(taken_port):
    async def bind() -> None:
        with listening("relay_http_host", "127.0.0.1", "relay_http_port", taken_port):
            await asyncio.start_server(lambda r, w: None, "127.0.0.1", taken_port)

    with pytest.raises(ConfigurationError) as info:
        asyncio.run(bind())
    assert str(info.value) == "relay_http_port %d on 127.0.0.1 is already in use" % taken_port


# -- the real entry points ---------------------------------------------------------------------
def _run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ZERO_SUDO_")}
    return subprocess.run(command, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def _assert_refused(result: subprocess.CompletedProcess[str], prog: str, *names: str) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.returncode == 2, result.stderr
    assert lines[0].startswith(prog + ": ")
    for name in names:
        assert name in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "env", "names"),
    [
        (["--relay-http-port", "70000"], {}, ("flag --relay-http-port", "relay_http_port", "between 0 and 65535")),
        ([], {"ZERO_SUDO_REDIS_URL": "redis://127.0.0.1:6379/abc"}, ("env ZERO_SUDO_REDIS_URL", "redis_url")),
        (["--log-level", "LOUD"], {}, ("log_level", "DEBUG, INFO, WARNING, ERROR, CRITICAL")),
        (["--relay-max-pending-ids", "-1"], {}, ("relay_max_pending_ids", "at least 1")),
        (["--relay-http-port", "nine"], {}, ("relay_http_port", "integer")),
    ],
)
def test_relay_refuses_a_bad_setting_in_one_line(argv, env, names):
    _assert_refused(_run([str(BIN / "zero-sudo-relay"), *argv], env), "zero-sudo-relay", *names)


@pytest.mark.parametrize(
    ("prog", "flag", "setting"),
    [
        ("zero-sudo-relay", "--relay-http-port", "relay_http_port"),
        ("zero-sudo-landing", "--landing-http-port", "landing_http_port"),
        ("zero-sudo-poller", "--poller-http-port", "poller_http_port"),
    ],
)
def test_a_port_in_use_is_one_line_naming_the_setting(taken_port, prog, flag, setting):
    line = _assert_refused(_run([str(BIN / prog), flag, str(taken_port)]), prog)
    assert line == "%s: %s %d on 127.0.0.1 is already in use" % (prog, setting, taken_port)


def test_an_address_not_of_this_machine_is_one_line():
    # 192.0.2.0/24 is TEST-NET-1: documentation only, never assigned to a host.
    line = _assert_refused(_run([str(BIN / "zero-sudo-relay"), "--relay-http-host", "192.0.2.1"]), "zero-sudo-relay")
    assert line == "zero-sudo-relay: relay_http_host 192.0.2.1 is not an address of this machine"


def test_launcher_checks_the_settings_once_before_starting_children():
    result = _run([str(BIN / "zero-sudo-daemons"), "--gateway-port", "70000"])
    _assert_refused(result, "zero-sudo-daemons", "flag --gateway-port", "gateway_port")


def test_launcher_rejects_an_unknown_daemon_in_one_line():
    _assert_refused(_run([str(BIN / "zero-sudo-daemons"), "--only", "relay,nope"]), "zero-sudo-daemons", "nope")


def test_launcher_reports_a_child_refused_at_start(taken_port):
    result = _run([str(BIN / "zero-sudo-daemons"), "--only", "relay", "--relay-http-port", str(taken_port)])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "zero-sudo-relay: relay_http_port %d on 127.0.0.1 is already in use" % taken_port,
        "zero-sudo-daemons: relay exited with code 2; stopping the others",
    ]


def test_settings_table_matches_the_frozen_settings():
    assert [o.name for o in OPTIONS] == list(Settings.__dataclass_fields__)


def test_settings_precedence_flag_env_conf_options_default(tmp_path):
    conf = tmp_path / "odoo.conf"
    conf.write_text(
        "[options]\ndb_name = from_options\ndb_port = 5433\ndb_user = False\n[zero_sudo]\nredis_url = redis://conf:6379/0\nlog_level = WARNING\n"
    )
    env = {"ZERO_SUDO_CONFIG": str(conf), "ZERO_SUDO_LOG_LEVEL": "DEBUG", "ZERO_SUDO_DB_HOST": "envhost"}
    settings = resolve_settings(["--db-host", "flaghost"], env)
    assert settings.db_host == "flaghost"  # flag beats env
    assert settings.log_level == "DEBUG"  # env beats [zero_sudo]
    assert settings.redis_url == "redis://conf:6379/0"  # [zero_sudo] beats default
    assert settings.db_name == "from_options" and settings.db_port == 5433  # Odoo's own keys
    assert settings.db_user == ""  # odoo.conf's False means unset
    assert settings.relay_http_port == 9101  # default
    with pytest.raises(AttributeError):
        settings.db_name = "x"


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["--db-port", "abc"], {}),
        ([], {"ZERO_SUDO_RELAY_HTTP_PORT": "80x"}),
        (["--log-format", "xml"], {}),
        (["--relay-max-pending-ids", "0"], {}),
        (["--config", "/nonexistent/odoo.conf"], {}),
    ],
)
def test_bad_settings_fail_with_a_clear_message(argv, env):
    with pytest.raises(ConfigurationError):
        resolve_settings(argv, env)
