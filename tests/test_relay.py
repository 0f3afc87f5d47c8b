"""The relay daemon against real PostgreSQL and Redis: relaying, bad input, failures, failover."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psycopg
import pytest
import redis.asyncio

from conftest import PG_HOST, REDIS_URL, free_port, ids_for_payload_of, notify, pg_conninfo, wait_until
from zero_sudo_bus.protocol import (
    MAX_PAYLOAD_BYTES,
    PG_CHANNEL,
    Op,
    bus_channel,
    encode_change_message,
    encode_flush_message,
    encode_notify_payloads,
    model_key,
)
from zero_sudo_bus.subscriber import AsyncBusSubscriber
from zero_sudo_daemons.redis_publisher import Fenced, RedisPublisher
from zero_sudo_daemons.relay import CLIENT_NAME

PARTNER = model_key("res.partner")


def payload(*ids: int, model: str = "res.partner", op: Op = Op.WRITE) -> str:
    (single,) = encode_notify_payloads(model, op, ids)
    return single


def test_relays_each_commit_after_a_leading_flush(pg_db, start_relay, bus_recorder):
    recorder = bus_recorder(pg_db)
    relay = start_relay(pg_db)
    relay.wait_role("active")
    wait_until(lambda: "start" in recorder.flushes(), what="the relay's start flush")
    notify(pg_db, payload(1, 2, 3))
    notify(pg_db, payload(4, model="res.users", op=Op.UNLINK))
    wait_until(lambda: len(recorder.ids()) == 4, what="4 ids relayed")
    first, second = recorder.changes()
    assert (first.model_key, first.op, first.ids) == (PARTNER, Op.WRITE, (1, 2, 3))
    assert (second.model_key, second.op, second.ids) == (model_key("res.users"), Op.UNLINK, (4,))
    assert second.epoch == first.epoch and second.seq == first.seq + 1
    assert recorder.flushes() == ["reconnect", "start"]


def test_a_burst_in_one_transaction_is_coalesced(pg_db, start_relay, bus_recorder):
    relay = start_relay(pg_db)
    relay.wait_role("active")
    recorder = bus_recorder(pg_db)
    ids = list(range(1, 50_001))
    notify(pg_db, *encode_notify_payloads("res.partner", Op.WRITE, ids))
    wait_until(lambda: len(recorder.ids()) == len(ids), what="all ids relayed")
    assert recorder.ids() == ids
    notifications = relay.metric("zero_sudo_relay_notifications_total")
    messages = relay.metric("zero_sudo_relay_messages_published_total")
    assert messages < notifications, "a burst should need fewer Redis messages than NOTIFYs"


def test_malformed_payloads_are_counted_while_good_ones_flow(pg_db, start_relay, bus_recorder):
    relay = start_relay(pg_db)
    relay.wait_role("active")
    recorder = bus_recorder(pg_db)
    garbage = [
        "",
        "garbage",
        "{}",
        "[]",
        "[1,2]",
        "[1,2,3.5]",
        '[1,2,"3"]',
        "[1,2,[3]]",
        "[1,2,true]",
        "[1,9,3]",
        "[1,2,0]",
        "[1,2,-4]",
        '{"ids":[1]}',
        "[" * 3000,
        "\u00e9\u00e9",
        "[1,2,1e400]",
    ]
    mixed = []
    for n, bad in enumerate(garbage, start=1):
        mixed += [bad, payload(n)]
    notify(pg_db, *mixed)
    wait_until(lambda: len(recorder.ids()) == len(garbage), what="every good payload relayed")
    assert sorted(recorder.ids()) == list(range(1, len(garbage) + 1))
    assert relay.metric("zero_sudo_relay_rejected_payloads_total") == len(garbage)
    assert relay.proc.poll() is None and relay.role() == "active"
    assert any("rejected NOTIFY payload" in line for line in relay.output)


def test_payload_at_the_limit_is_relayed_and_postgres_refuses_one_byte_more(pg_db, start_relay, bus_recorder):
    relay = start_relay(pg_db)
    relay.wait_role("active")
    recorder = bus_recorder(pg_db)
    ids = ids_for_payload_of(MAX_PAYLOAD_BYTES)
    (largest,) = encode_notify_payloads("res.partner", Op.WRITE, ids)
    assert len(largest) == MAX_PAYLOAD_BYTES
    one_byte_more = largest[:-1] + "0]"
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="payload string too long"):
        notify(pg_db, one_byte_more)
    notify(pg_db, largest)
    wait_until(lambda: len(recorder.ids()) == len(ids), what="a maximal payload relayed")
    assert recorder.ids() == ids


def _relay_backend_pids(db):
    with psycopg.connect(pg_conninfo("postgres"), autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s", (db, CLIENT_NAME))
        return [pid for (pid,) in rows]


def test_postgres_backend_terminated_then_flush_and_normal_relaying(pg_db, start_relay, bus_recorder):
    relay = start_relay(pg_db)
    relay.wait_role("active")
    recorder = bus_recorder(pg_db)
    notify(pg_db, payload(1))
    wait_until(lambda: recorder.ids() == [1], what="first id")
    (pid,) = _relay_backend_pids(pg_db)
    with psycopg.connect(pg_conninfo("postgres"), autocommit=True) as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
    wait_until(lambda: "recover" in recorder.flushes(), what="flush after reconnect")
    relay.wait_role("active")
    notify(pg_db, payload(2))
    wait_until(lambda: recorder.ids() == [1, 2], what="relaying resumed")
    assert recorder.changes()[1].epoch != recorder.changes()[0].epoch


def test_redis_connection_killed_then_flush_and_normal_relaying(pg_db, start_relay, bus_recorder, redis_client):
    relay = start_relay(pg_db)
    relay.wait_role("active")
    recorder = bus_recorder(pg_db)
    notify(pg_db, payload(1))
    wait_until(lambda: recorder.ids() == [1], what="first id")
    relay_clients = [c for c in redis_client.client_list() if c["name"] == CLIENT_NAME]
    assert relay_clients
    for client in relay_clients:
        redis_client.client_kill_filter(_id=client["id"])
    wait_until(lambda: "recover" in recorder.flushes(), what="flush after the Redis connection was killed")
    relay.wait_role("active")
    notify(pg_db, payload(2))
    wait_until(lambda: recorder.ids() == [1, 2], what="relaying resumed")


def _active_and_standby(pg_db, start_relay):
    """Two replicas on one database: the first elected active, the second waiting."""
    first = start_relay(pg_db)
    first.wait_role("active")
    second = start_relay(pg_db)
    second.wait_role("standby")
    return first, second


def test_standby_takes_over_within_two_seconds(pg_db, start_relay, bus_recorder):
    first, second = _active_and_standby(pg_db, start_relay)
    recorder = bus_recorder(pg_db)
    notify(pg_db, payload(1))
    wait_until(lambda: recorder.ids() == [1], what="relayed by the active replica")
    assert first.metric("zero_sudo_relay_notifications_total") == 1
    assert second.metric("zero_sudo_relay_notifications_total") == 0, "only the active replica relays"

    killed_at = time.monotonic()
    first.proc.kill()
    wait_until(lambda: "start" in recorder.flushes()[1:], timeout=5, interval=0.01, what="the standby's flush")
    takeover_s = time.monotonic() - killed_at
    assert takeover_s <= 2.0, "takeover took %.2fs" % takeover_s  # the HA promise, with an 8x margin over the poll
    notify(pg_db, payload(2))
    wait_until(lambda: recorder.ids() == [1, 2], what="relayed by the new active replica")
    assert second.role() == "active"


def test_a_frozen_leader_is_fenced_and_its_standby_takes_over(pg_db, start_relay, bus_recorder):
    first, second = _active_and_standby(pg_db, start_relay)
    recorder = bus_recorder(pg_db)
    notify(pg_db, payload(1))
    wait_until(lambda: recorder.ids() == [1], what="relayed by the active replica")
    old_epoch = recorder.changes()[0].epoch

    first.proc.send_signal(signal.SIGSTOP)  # frozen, not dead: its sockets stay open
    try:
        notify(pg_db, payload(2))  # waits in the frozen relay's socket, to be published when it wakes
        frozen_at = time.monotonic()
        wait_until(lambda: second.role() == "active", timeout=10, interval=0.01, what="the standby taking over")
        print("takeover %.2fs after the leader froze" % (time.monotonic() - frozen_at))
        notify(pg_db, payload(3))
        wait_until(lambda: 3 in recorder.ids(), what="relayed by the new active replica")
    finally:
        first.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: first.role() in ("standby", "recovering"), what="the woken relay stepping down")
    notify(pg_db, payload(4))
    wait_until(lambda: 4 in recorder.ids(), what="relayed after the old leader woke")
    time.sleep(0.5)  # whatever the woken relay had in hand would have been published by now
    epochs = [message.epoch for message in recorder.changes()]
    assert epochs[0] == old_epoch and len(set(epochs[1:])) == 1 and epochs[1] != old_epoch, epochs
    assert recorder.ids() == [1, 3, 4], "the frozen relay published after its successor took over"


def test_a_fenced_publisher_publishes_nothing(redis_client):
    channel, key = "zs_test:%d:events" % os.getpid(), "zs_test:%d:epoch" % os.getpid()

    async def main():
        subscriber = redis.asyncio.Redis.from_url(REDIS_URL).pubsub()
        await subscriber.subscribe(channel)
        assert (await subscriber.get_message(timeout=2))["type"] == "subscribe"  # confirmed before anything is published
        old = await RedisPublisher.connect(REDIS_URL, "zs_test_old", 2.0)
        new = await RedisPublisher.connect(REDIS_URL, "zs_test_new", 2.0)
        await old.claim_epoch(key, "old")
        await old.publish_fenced(key, "old", channel, [b"a"])
        await new.claim_epoch(key, "new")
        with pytest.raises(Fenced):
            await old.publish_fenced(key, "old", channel, [b"b", b"c"])
        await new.publish_fenced(key, "new", channel, [b"d"])
        received = []
        while len(received) < 2:
            message = await subscriber.get_message(ignore_subscribe_messages=True, timeout=2)
            assert message is not None, received
            received.append(message["data"])
        for publisher in (old, new):
            await publisher.close()
        await subscriber.aclose()
        return received

    try:
        assert asyncio.run(main()) == [b"a", b"d"]
    finally:
        redis_client.delete(key)


def test_sigterm_hands_over_in_order(pg_db, start_relay, bus_recorder):
    first, second = _active_and_standby(pg_db, start_relay)
    recorder = bus_recorder(pg_db)
    assert first.stop(signal.SIGTERM) == 0
    assert any("relay stopped" in line for line in first.output)
    second.wait_role("active")
    notify(pg_db, payload(7))
    wait_until(lambda: recorder.ids() == [7], what="relayed after the handover")


def test_ops_endpoints_answer_and_refuse_malformed_requests(pg_db, start_relay):
    relay = start_relay(pg_db)
    relay.wait_role("active")
    status, body = relay.get("/healthz")
    assert status == 200 and json.loads(body)["channel"] == bus_channel(pg_db)
    status, body = relay.get("/metrics")
    assert status == 200 and "zero_sudo_relay_lag_seconds_bucket" in body
    assert relay.get("/nope")[0] == 404
    for raw, expected in [
        (b"POST /healthz HTTP/1.1\r\n\r\n", b" 405 "),
        (b"garbage\r\n\r\n", b" 400 "),
        (b"GET /" + b"x" * 9000, b" 400 "),
    ]:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as sock:
            sock.sendall(raw)
            if not raw.endswith(b"\r\n\r\n"):
                sock.shutdown(socket.SHUT_WR)
            assert expected in sock.recv(200)
    assert relay.role() == "active"


def test_bad_configuration_is_one_clear_line(pg_db):
    result = subprocess.run(
        [sys.executable, "-m", "zero_sudo_daemons.relay", "--db-port", "nope"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "zero-sudo-relay: flag --db-port: db_port must be an integer, got 'nope'"


@pytest.mark.slow
def test_a_missing_database_is_reported_once_with_the_fix_then_picked_up(start_relay):
    db = "zs_later_%d" % os.getpid()
    relay = start_relay(db)
    wait_until(lambda: relay.role() == "recovering", what="the relay waiting for its database")
    time.sleep(3)  # many fast retries' worth: the problem must still have been said once
    reports = [line for line in relay.output if "does not exist" in line]
    assert len(reports) == 1, "".join(relay.output)
    assert 'database "%s" does not exist: create it through Odoo' % db in reports[0] and "--db-name" in reports[0]
    assert not any("failed, recovering" in line for line in relay.output), "reported as a fresh warning"
    with psycopg.connect(pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute('CREATE DATABASE "%s"' % db)
    try:
        relay.wait_role("active", timeout=40)  # picked up at the next slow retry
    finally:
        relay.proc.kill()
        relay.proc.wait()
        with psycopg.connect(pg_conninfo("postgres"), autocommit=True) as conn:
            conn.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db)


def test_a_relay_pointed_at_a_pooler_is_refused_with_one_line(pg_db, pgbouncer):
    result = subprocess.run(
        [sys.executable, "-m", "zero_sudo_daemons.relay", "--db-name", pg_db, "--db-host", "127.0.0.1"]
        + ["--db-port", str(pgbouncer.port), "--relay-http-port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    refusal = [line for line in result.stderr.splitlines() if not line.startswith("{")]  # JSON log lines aside
    assert refusal == [
        "zero-sudo-relay: db_host 127.0.0.1 port %d is a connection pooler, not PostgreSQL: the relay needs a session "
        "of its own (LISTEN, the leader lock); set [zero_sudo] db_host/db_port (or --db-host/--db-port) to PostgreSQL itself"
        % pgbouncer.port
    ]


def test_events_committed_through_a_transaction_pooler_reach_the_subscribers(pg_db, pgbouncer, start_relay, bus_recorder):
    """Odoo workers behind PgBouncer: their NOTIFYs are sent at COMMIT, which the pooler passes."""
    recorder = bus_recorder(pg_db)
    start_relay(pg_db).wait_role("active")  # directly on PostgreSQL
    with psycopg.connect("host=127.0.0.1 port=%d dbname=%s" % (pgbouncer.port, pg_db), prepare_threshold=None) as conn:
        for n in range(1, 21):  # twenty transactions, each maybe on another server connection
            with conn.transaction():
                conn.execute("SELECT pg_notify(%s, %s)", (PG_CHANNEL, payload(n)))
    wait_until(lambda: sorted(recorder.ids()) == list(range(1, 21)), what="every event relayed")


def test_async_subscriber_detects_gaps_and_reconnects(redis_client):
    db = "zs_gap_test"
    channel = bus_channel(db)
    seen = []

    async def scenario():
        subscriber = AsyncBusSubscriber(
            "redis://127.0.0.1:6379/0",
            db,
            lambda m: seen.append(("change", m.seq)),
            lambda r: seen.append(("flush", r)),
            client_name="zs_gap_test",
        )
        task = asyncio.create_task(subscriber.run())
        async with asyncio.timeout(5):
            await subscriber.connected.wait()
        for seq in (0, 1, 2, 4):
            message = (
                encode_flush_message("e1", 0, "start") if seq == 0 else encode_change_message("e1", seq, PARTNER, Op.WRITE, [seq])
            )
            redis_client.publish(channel, message)
        redis_client.publish(channel, b"garbage")
        redis_client.publish(channel, encode_change_message("e2", 9, PARTNER, Op.WRITE, [9]))
        await _until(lambda: len(seen) >= 8)
        for client in redis_client.client_list():
            if client["name"] == "zs_gap_test":
                redis_client.client_kill_filter(_id=client["id"])
        await _until(lambda: seen.count(("flush", "reconnect")) == 2)
        task.cancel()
        return subscriber

    subscriber = asyncio.run(scenario())
    assert seen[:8] == [
        ("flush", "reconnect"),
        ("flush", "start"),
        ("change", 1),
        ("change", 2),
        ("flush", "gap"),
        ("change", 4),
        ("flush", "epoch"),
        ("change", 9),
    ]
    assert subscriber.rejected == 1


async def _until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        await asyncio.sleep(0.01)


def test_redis_restarted_under_relay_and_subscriber(pg_db, start_relay, bus_recorder, private_redis):
    relay = start_relay(pg_db, private_redis.url)
    relay.wait_role("active")
    recorder = bus_recorder(pg_db, private_redis.url)
    notify(pg_db, payload(1))
    wait_until(lambda: recorder.ids() == [1], what="relayed before the restart")
    private_redis.stop()
    wait_until(lambda: relay.role() == "recovering", what="the relay noticing Redis is gone")
    assert relay.get("/healthz")[0] == 503
    notify(pg_db, payload(2))  # committed while Redis is down: lost, so a flush must follow
    private_redis.start()
    relay.wait_role("active")
    # Whichever comes back first, the subscriber flushes: on its own resubscribe, or on the
    # relay's new epoch if it was already subscribed when the relay published it.
    wait_until(lambda: recorder.flushes().count("reconnect") == 2, what="the subscriber's flush on resubscribing")
    assert relay.metric('zero_sudo_relay_epochs_total{reason="recover"}') >= 1
    notify(pg_db, payload(3))
    wait_until(lambda: 3 in recorder.ids(), what="relaying after the restart")
    assert relay.proc.poll() is None


def test_launcher_runs_the_relay_and_stops_it_on_sigterm(pg_db):
    port = free_port()
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zero_sudo_daemons.launcher",
            "--db-name",
            pg_db,
            "--db-host",
            PG_HOST,
            "--relay-http-port",
            str(port),
            "--log-format",
            "text",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )

    def active():
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=1) as resp:
                return json.loads(resp.read())["role"] == "active"
        except OSError:
            return False

    wait_until(active, timeout=20, what="relay started by the launcher")
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(30) == 0
    assert "relay stopped" in launcher.stderr.read()
