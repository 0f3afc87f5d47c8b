"""The relay's pure parts: coalescing, backoff, sequence tracking, log throttling, settings."""

import random

import pytest

from zero_sudo_bus.backoff import Backoff
from zero_sudo_bus.protocol import BusMessage, ChangeBatch, FlushReason, MessageKind, Op
from zero_sudo_bus.subscriber import BusDispatcher, SequenceTracker
from zero_sudo_daemons.coalescing import Coalescer
from zero_sudo_daemons.errors import ConfigurationError
from zero_sudo_daemons.logs import LogThrottle
from zero_sudo_daemons.settings import OPTIONS, Settings, resolve_settings


def test_coalescer_merges_a_burst_per_model_and_op_without_duplicates():
    coalescer = Coalescer(max_pending_ids=100)
    coalescer.add(ChangeBatch(1, Op.WRITE, (1, 2)), now=10.0)
    coalescer.add(ChangeBatch(1, Op.WRITE, (2, 3)), now=10.1)
    coalescer.add(ChangeBatch(2, Op.WRITE, (1,)), now=10.2)
    coalescer.add(ChangeBatch(1, Op.UNLINK, (9,)), now=10.3)
    drained = coalescer.drain()
    assert not drained.flush_required
    assert drained.changes == ((1, Op.WRITE, (1, 2, 3)), (2, Op.WRITE, (1,)), (1, Op.UNLINK, (9,)))
    assert drained.oldest_at == 10.0
    assert not coalescer.drain()


def test_coalescer_overflow_becomes_one_flush_and_stays_bounded():
    coalescer = Coalescer(max_pending_ids=5)
    assert not coalescer.add(ChangeBatch(1, Op.WRITE, (1, 2, 3)), now=0)
    assert coalescer.add(ChangeBatch(1, Op.WRITE, (4, 5, 6)), now=0)
    assert not coalescer.add(ChangeBatch(1, Op.WRITE, tuple(range(100, 200))), now=0)
    assert coalescer.pending_ids == 0
    drained = coalescer.drain()
    assert drained.flush_required and drained.changes == ()
    coalescer.add(ChangeBatch(1, Op.WRITE, (7,)), now=1)
    assert coalescer.drain().changes == ((1, Op.WRITE, (7,)),)


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets():
    backoff = Backoff(base=0.1, cap=1.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays[4:])) == 4, "jitter must spread retries"
    backoff.reset()
    assert backoff.next_delay() <= 0.1
    with pytest.raises(ValueError):
        Backoff(base=0)


def _msg(epoch, seq, kind="change"):
    if kind == "flush":
        return BusMessage(epoch, seq, MessageKind.FLUSH, reason=FlushReason.START)
    return BusMessage(epoch, seq, MessageKind.CHANGE, 1, Op.WRITE, (1,))


def test_sequence_tracker_detects_gaps_and_epoch_changes():
    tracker = SequenceTracker()
    assert tracker.observe(_msg("a", 5)) is None  # first message after subscribing
    assert tracker.observe(_msg("a", 6)) is None
    assert tracker.observe(_msg("a", 8)) is FlushReason.GAP
    assert tracker.observe(_msg("a", 9)) is None
    assert tracker.observe(_msg("b", 3)) is FlushReason.EPOCH
    assert tracker.observe(_msg("c", 0, "flush")) is FlushReason.START
    assert tracker.observe(_msg("c", 1)) is None
    assert tracker.observe(_msg("c", 1)) is FlushReason.GAP  # a replay is not "in order" either


def test_dispatcher_counts_garbage_and_flushes_before_applying():
    calls = []
    dispatcher = BusDispatcher(lambda m: calls.append(("change", m.seq)), lambda r: calls.append(("flush", r)))
    dispatcher.resubscribed()
    dispatcher.dispatch(b"not json")
    dispatcher.dispatch(b'{"v":1,"epoch":"e","seq":4,"kind":"change","model":1,"op":2,"ids":[1]}')
    dispatcher.dispatch(b'{"v":1,"epoch":"e","seq":6,"kind":"change","model":1,"op":2,"ids":[1]}')
    assert calls == [("flush", "reconnect"), ("change", 4), ("flush", "gap"), ("change", 6)]
    assert (dispatcher.received, dispatcher.rejected, dispatcher.flushes) == (2, 1, 2)


def test_log_throttle_lets_one_line_per_interval_and_counts_the_rest():
    throttle = LogThrottle(interval=1.0)
    assert throttle.allow("x", now=0.0) == 0
    assert throttle.allow("x", now=0.5) is None
    assert throttle.allow("x", now=0.6) is None
    assert throttle.allow("y", now=0.7) == 0
    assert throttle.allow("x", now=1.2) == 2


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
