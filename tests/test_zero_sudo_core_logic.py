"""The zero_sudo addon's pure logic, without Odoo: settings, the bounded executor, the stale
guard, and the session codec shared with the gateway."""

from __future__ import annotations

import importlib.util
import sys
import threading
from dataclasses import fields
from pathlib import Path

import pytest

from zero_sudo_bus.options import Side, read_by
from zero_sudo_bus.sessions import decode_session, encode_session, session_key, session_uid, user_sessions_key

TOOLS = Path(__file__).resolve().parent.parent / "addons" / "zero_sudo" / "tools"


def _load_tools():
    """addons/zero_sudo/tools as a package of its own (its pure modules import no Odoo)."""
    spec = importlib.util.spec_from_file_location(
        "zero_sudo_tools", TOOLS / "__init__.py", submodule_search_locations=[str(TOOLS)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules["zero_sudo_tools"] = package
    spec.loader.exec_module(package)
    return package


_load_tools()
from zero_sudo_tools.exceptions import ConfigurationError, ExecutorFull  # noqa: E402
from zero_sudo_tools.executor import BoundedExecutor  # noqa: E402
from zero_sudo_tools.settings import Settings, parse_settings  # noqa: E402
from zero_sudo_tools.stale_guard import StaleGuard  # noqa: E402


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


def test_executor_bounds_running_and_queued_tasks_and_frees_slots():
    executor = BoundedExecutor(max_workers=1, max_queued=2, retry_after=9)
    gate = threading.Event()
    futures = [executor.submit(gate.wait, 30) for _ in range(3)]  # one running, two queued
    with pytest.raises(ExecutorFull) as caught:
        executor.submit(print)
    assert caught.value.retry_after == 9
    gate.set()
    assert all(future.result(timeout=30) for future in futures)
    executor.submit(int).result(timeout=30)  # slots came back
    executor.shutdown()


def test_an_unused_reservation_gives_its_slot_back():
    executor = BoundedExecutor(max_workers=1, max_queued=0, retry_after=1)
    slot = executor.reserve()
    with pytest.raises(ExecutorFull):
        executor.reserve()
    slot.release()
    executor.reserve().release()
    executor.shutdown()


def test_stale_guard_drops_a_value_when_the_older_transaction_ends():
    guard, dropped = StaleGuard(), []
    guard.begin(1)  # a request's transaction, before the commit
    guard.invalidate(["res.partner"])  # the commit's invalidation arrives
    assert guard.taint("res.partner", lambda: dropped.append("old")) is True
    assert guard.taint("res.users", lambda: dropped.append("other")) is False
    assert dropped == []
    guard.end(1)
    assert dropped == ["old"]
    guard.begin(2)  # began after the invalidation: its values are clean
    assert guard.taint("res.partner", lambda: dropped.append("new")) is False


def test_stale_guard_flush_taints_every_model_and_commit_ends_a_transaction():
    guard, dropped = StaleGuard(), []
    guard.begin(1)
    guard.invalidate_all()
    assert guard.taint("any.model", lambda: dropped.append(1))
    guard.begin(1)  # commit: the old transaction ended, a new one began
    assert dropped == [1]
    assert not guard.taint("any.model", lambda: dropped.append(2))


def test_session_codec_is_json_and_refuses_what_json_cannot_hold():
    data = {"uid": 2, "db": "prod", "login": "admin", "context": {"lang": "fr_FR"}}
    assert decode_session(encode_session(data)) == data
    assert session_uid(decode_session(encode_session(data))) == 2
    with pytest.raises(TypeError):
        encode_session({"uid": object()})
    for raw in (None, b"\x80\x04pickle", b"[1,2]", b"nope"):
        assert decode_session(raw) is None


def test_session_keys():
    assert session_key("zero_sudo:", "abc") == "zero_sudo:session:abc"
    assert user_sessions_key("zero_sudo:", "prod", 7) == "zero_sudo:user_sessions:prod:7"
    with pytest.raises(ValueError):
        user_sessions_key("zero_sudo:", "prod", True)
