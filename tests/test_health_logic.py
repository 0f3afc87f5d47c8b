"""The health page's verdicts (addons/zero_sudo/tools/health.py), from raw readings, without
Odoo or servers; and the relay_ops_urls option's check."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from zero_sudo_bus.options import BY_KEY, OptionError
from zero_sudo_bus.protocol import bus_channel

TOOLS = Path(__file__).resolve().parent.parent / "addons" / "zero_sudo" / "tools"
if "zero_sudo_tools" not in sys.modules:  # test_zero_sudo_core_logic.py may have loaded it
    spec = importlib.util.spec_from_file_location(
        "zero_sudo_tools", TOOLS / "__init__.py", submodule_search_locations=[str(TOOLS)]
    )
    sys.modules["zero_sudo_tools"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules["zero_sudo_tools"])
from zero_sudo_tools.executor import BoundedExecutor  # noqa: E402
from zero_sudo_tools.health import (  # noqa: E402
    ExecutorReading,
    Failed,
    FollowerReading,
    Probe,
    ReplicaReading,
    Status,
    amqp_check,
    executor_check,
    follower_check,
    parse_metrics,
    redact_url,
    redis_check,
    relay_checks,
    relay_lag,
    relay_urls,
    worst,
)

DB = "acme"
NOW = 1_000_000.0


def _by_probe(checks):
    return {check.probe: check for check in checks}


def test_follower_states():
    off = follower_check(DB, FollowerReading(enabled=False, started=False), NOW)
    assert off.status is Status.UNKNOWN and "cache_coherence is off" in off.detail
    assert follower_check(DB, FollowerReading(enabled=True, started=False), NOW).status is Status.WARNING
    live = follower_check(
        DB,
        FollowerReading(
            True,
            True,
            live=True,
            invalidated_at={"res.partner": NOW - 5, "res.users": NOW - 300},
            flushed_at=NOW - 7200,
            flush_reason="start",
        ),
        NOW,
    )
    assert live.status is Status.OK
    assert live.detail == "live on %s; last invalidation: res.partner, 5 s ago; last flush: 2 h ago (start)" % bus_channel(DB)
    down = follower_check(DB, FollowerReading(True, True, live=False), NOW)
    assert down.status is Status.ERROR and "no invalidation received yet" in down.detail
    assert down.database == DB


def test_executor_states():
    assert executor_check(ExecutorReading(1, 0, 2, 8)).status is Status.OK
    assert executor_check(ExecutorReading(2, 3, 2, 8)).status is Status.WARNING
    full = executor_check(ExecutorReading(2, 8, 2, 8))
    assert full.status is Status.ERROR and full.detail.startswith("2 of 2 running, 8 of 8 queued: full")


def test_the_executor_counts_running_and_queued_tasks():
    import threading

    pool = BoundedExecutor(max_workers=1, max_queued=2, retry_after=1)
    gate, started = threading.Event(), threading.Event()
    try:
        pool.submit(lambda: (started.set(), gate.wait(10)))
        started.wait(10)
        pool.submit(lambda: None)
        slot = pool.reserve()
        assert pool.counts() == (1, 2)
        slot.release()
        assert pool.counts() == (1, 1)
    finally:
        gate.set()
        pool.shutdown()
    assert pool.counts() == (0, 0)


def test_servers_through_the_pools_show_no_password():
    assert redact_url("amqp://guest:secret@rabbit:5672/") == "amqp://guest:***@rabbit:5672/"
    assert redact_url("redis://cache:6379/0") == "redis://cache:6379/0"
    assert redis_check(0.0012, "redis://:pw@cache/0").detail == "redis://:***@cache/0 answered PING in 1.2 ms"
    down = amqp_check(Failed("ConnectionRefusedError: refused"), "amqp://u:pw@rabbit/", 0, 4)
    assert down.status is Status.ERROR and "pw" not in down.detail and "0 of 4 connections" in down.detail


METRICS = """# HELP zero_sudo_relay_lag_seconds from NOTIFY to publish
# TYPE zero_sudo_relay_lag_seconds histogram
zero_sudo_relay_lag_seconds_bucket{le="0.001"} 50.0
zero_sudo_relay_lag_seconds_bucket{le="0.002"} 99.0
zero_sudo_relay_lag_seconds_bucket{le="0.25"} 100.0
zero_sudo_relay_lag_seconds_bucket{le="+Inf"} 100.0
zero_sudo_relay_lag_seconds_count 100.0
zero_sudo_relay_lag_seconds_sum 0.15
zero_sudo_relay_pending_ids 0.0
zero_sudo_relay_epochs_total{reason="start"} 1.0
not a sample line
"""


def test_prometheus_text_and_the_lag_histogram():
    samples = parse_metrics(METRICS)
    assert ("zero_sudo_relay_epochs_total", {"reason": "start"}, 1.0) in samples
    lag = relay_lag(samples)
    assert (lag.batches, lag.mean_s, lag.p99_at_most_s, lag.pending_ids) == (100, 0.0015, 0.002, 0)
    assert relay_lag([]).mean_s is None


def _replica(url, role="active", epoch="e1", channel=None, metrics=METRICS):
    health = {"status": "ok", "role": role, "epoch": epoch, "channel": channel or bus_channel(DB)}
    return ReplicaReading(url, health, parse_metrics(metrics) if isinstance(metrics, str) else metrics)


def test_relay_without_ops_urls_reports_the_epoch_from_redis_only():
    checks = _by_probe(relay_checks(DB, "e1", [], configured=False))
    assert checks[Probe.RELAY_EPOCH].status is Status.OK and "e1" in checks[Probe.RELAY_EPOCH].detail
    assert checks[Probe.RELAY_LEADER].status is Status.UNKNOWN and "relay_ops_urls" in checks[Probe.RELAY_LEADER].detail
    assert _by_probe(relay_checks(DB, None, [], configured=False))[Probe.RELAY_EPOCH].status is Status.ERROR
    assert _by_probe(relay_checks(DB, Failed("timeout"), [], configured=False))[Probe.RELAY_EPOCH].status is Status.UNKNOWN


def test_the_leader_is_the_replica_active_with_redis_epoch():
    replicas = [
        _replica("http://r2:9101", role="standby", epoch=None),
        _replica("http://r1:9101"),
        _replica("http://other:9101", channel=bus_channel("other_db")),
    ]
    checks = _by_probe(relay_checks(DB, "e1", replicas, configured=True))
    leader = checks[Probe.RELAY_LEADER]
    assert leader.status is Status.OK
    assert leader.detail == "http://r1:9101 (active, epoch e1); others: http://r2:9101 (standby, epoch -)"
    assert checks[Probe.RELAY_LAG].status is Status.OK and "mean 1.5 ms over 100 batches" in checks[Probe.RELAY_LAG].detail

    fenced = _by_probe(relay_checks(DB, "e2", replicas, configured=True))
    assert fenced[Probe.RELAY_LEADER].status is Status.ERROR
    assert fenced[Probe.RELAY_LAG].status is Status.UNKNOWN

    unreachable = [_replica("http://r1:9101"), ReplicaReading("http://r2:9101", Failed("timed out"), Failed("timed out"))]
    assert _by_probe(relay_checks(DB, "e1", unreachable, configured=True))[Probe.RELAY_LEADER].status is Status.WARNING
    foreign = _by_probe(relay_checks(DB, "e1", replicas[2:], configured=True))[Probe.RELAY_LEADER]
    assert foreign.status is Status.ERROR and "none of relay_ops_urls relays" in foreign.detail


@pytest.mark.parametrize(
    ("buckets", "status"),
    [((100, 100, 100), Status.OK), ((0, 0, 100), Status.WARNING), ((0, 0, 0), Status.ERROR)],
)
def test_lag_thresholds(buckets, status):
    low, mid, high = buckets
    text = (
        'zero_sudo_relay_lag_seconds_bucket{le="0.01"} %d\nzero_sudo_relay_lag_seconds_bucket{le="0.25"} %d\n'
        'zero_sudo_relay_lag_seconds_bucket{le="1.0"} %d\nzero_sudo_relay_lag_seconds_bucket{le="+Inf"} 100\n'
        "zero_sudo_relay_lag_seconds_count 100\nzero_sudo_relay_lag_seconds_sum 1\n" % (low, mid, high)
    )
    assert (
        _by_probe(relay_checks(DB, "e1", [_replica("http://r1", metrics=text)], configured=True))[Probe.RELAY_LAG].status
        is status
    )


def test_unread_metrics_are_unknown_not_an_error_page():
    checks = _by_probe(relay_checks(DB, "e1", [_replica("http://r1", metrics=Failed("refused"))], configured=True))
    assert checks[Probe.RELAY_LAG].status is Status.UNKNOWN and "refused" in checks[Probe.RELAY_LAG].detail


def test_worst_status_orders_error_warning_unknown_ok():
    assert worst([Status.OK, Status.UNKNOWN]) is Status.UNKNOWN
    assert worst([Status.WARNING, Status.ERROR, Status.OK]) is Status.ERROR
    assert worst([]) is Status.OK


def test_relay_ops_urls_option():
    opt = BY_KEY["relay_ops_urls"]
    assert opt.parse("http://relay-1:9101, https://relay-2:9101/") == "http://relay-1:9101, https://relay-2:9101/"
    assert relay_urls("http://relay-1:9101, https://relay-2:9101/,") == ["http://relay-1:9101", "https://relay-2:9101"]
    for bad in ("relay:9101", "ftp://relay", "http://relay:99999"):
        with pytest.raises(OptionError, match="must be http://host"):
            opt.parse(bad)


def test_a_relay_following_several_databases_is_read_for_this_one():
    """relay_databases/relay_dbfilter: /healthz nests each database, /metrics labels it."""
    health = {
        "status": "ok",
        "role": "polling",
        "following": "relay_databases acme, other",
        "databases": {
            DB: {"role": "active", "epoch": "e1", "channel": bus_channel(DB)},
            "other": {"role": "standby", "epoch": None, "channel": bus_channel("other")},
        },
    }
    metrics = parse_metrics(
        'zero_sudo_relay_lag_seconds_bucket{db="acme",le="0.001"} 10\n'
        'zero_sudo_relay_lag_seconds_bucket{db="acme",le="+Inf"} 10\n'
        'zero_sudo_relay_lag_seconds_count{db="acme"} 10\nzero_sudo_relay_lag_seconds_sum{db="acme"} 0.005\n'
        'zero_sudo_relay_lag_seconds_bucket{db="other",le="0.001"} 0\n'
        'zero_sudo_relay_lag_seconds_bucket{db="other",le="+Inf"} 5\n'
        'zero_sudo_relay_lag_seconds_count{db="other"} 5\nzero_sudo_relay_lag_seconds_sum{db="other"} 50\n'
    )
    replica = ReplicaReading("http://relays:9101", health, metrics)
    ours = _by_probe(relay_checks(DB, "e1", [replica], configured=True))
    assert ours[Probe.RELAY_LEADER].status is Status.OK
    assert ours[Probe.RELAY_LAG].status is Status.OK and "mean 0.5 ms over 10 batches" in ours[Probe.RELAY_LAG].detail
    other = _by_probe(relay_checks("other", "e9", [replica], configured=True))
    assert other[Probe.RELAY_LEADER].status is Status.ERROR
    assert "http://relays:9101 (standby, epoch -)" in other[Probe.RELAY_LEADER].detail
    assert _by_probe(relay_checks("third", "e3", [replica], configured=True))[Probe.RELAY_LEADER].detail == (
        "none of relay_ops_urls relays %s" % bus_channel("third")
    )
