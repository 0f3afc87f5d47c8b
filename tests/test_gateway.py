"""The gateway against real PostgreSQL, Redis and relay: fan-out, every defence, failures."""

import asyncio
import json
import secrets
import signal
import threading
import time

import gateway_fixtures
import pytest
import websockets.asyncio.client
from gateway_fixtures import (
    SECRET,
    RawClient,
    authenticated_client,
    client_frame,
    close_codes,
    open_client,
    open_stalled_clients,
    receive,
    receive_until,
    token_for,
)
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import CloseCode, Opcode

from conftest import notify, wait_until
from zero_sudo_bus.protocol import (
    Op,
    bus_channel,
    encode_change_message,
    encode_flush_message,
    encode_notify_payloads,
    model_key,
    user_channel,
)
from zero_sudo_bus.sessions import SESSION_GRANTS_KEY, encode_session, session_grants, session_key
from zero_sudo_daemons.launcher import DAEMONS
from zero_sudo_daemons.settings import resolve_settings

start_gateway = gateway_fixtures.start_gateway  # the fixture, for this module's tests


def closed_with(client, timeout: float = 10.0):
    """The close frame the gateway sent: (code, reason), after reading what came before."""
    with pytest.raises(ConnectionClosed) as info:
        deadline = time.monotonic() + timeout
        while True:
            client.recv(max(0.01, deadline - time.monotonic()))
    return info.value.rcvd.code, info.value.rcvd.reason


@pytest.fixture
def bus_db():
    """A database name for gateways that need no PostgreSQL (events published to Redis)."""
    return "zs_gw_test_" + secrets.token_hex(4)


def test_notify_reaches_subscribed_clients_through_relay_and_gateway(pg_db, start_relay, start_gateway):
    relay = start_relay(pg_db)
    relay.wait_role("active")
    gateway = start_gateway(pg_db)
    partners, reply = authenticated_client(gateway, ["model:res.partner"])
    assert reply["ch"] == ["model:res.partner"]
    users, _ = authenticated_client(gateway, ["model:res.users"])
    (payload,) = encode_notify_payloads("res.partner", Op.WRITE, [1, 2, 3])
    notify(pg_db, payload)
    event = receive_until(partners, "event")
    assert {k: event[k] for k in ("ch", "model", "op", "ids")} == {
        "ch": "model:res.partner",
        "model": "res.partner",
        "op": "write",
        "ids": [1, 2, 3],
    }
    assert isinstance(event["epoch"], str) and event["seq"] >= 1
    (payload,) = encode_notify_payloads("res.users", Op.UNLINK, [9])
    notify(pg_db, payload)
    event = receive_until(users, "event")
    assert (event["model"], event["op"], event["ids"]) == ("res.users", "unlink", [9])
    # the partner client got nothing of res.users: its next message is the next partner event
    (payload,) = encode_notify_payloads("res.partner", Op.CREATE, [4])
    notify(pg_db, payload)
    assert receive_until(partners, "event")["ids"] == [4]
    assert gateway.metric('zero_sudo_gateway_messages_out_total{kind="event"}') == 3


def test_session_cookie_authenticates_its_user_for_its_granted_channels_only(bus_db, start_gateway, redis_client):
    gateway = start_gateway(bus_db)
    sid = secrets.token_urlsafe(16)
    key = session_key("zero_sudo:", sid)
    grants = session_grants(["model:res.partner"], int(time.time()) + 60)
    redis_client.set(key, encode_session({"uid": 7, "db": bus_db, "login": "demo", SESSION_GRANTS_KEY: grants}), ex=60)
    try:
        client = open_client(gateway, cookie="frontend_lang=en_US; session_id=%s" % sid)
        hello = receive(client)
        assert (hello["t"], hello["uid"], hello["auth"], hello["grants"]) == (
            "hello",
            7,
            "session",
            ["model:res.partner", "user:7"],
        )
        client.send(json.dumps({"op": "sub", "ch": ["model:res.partner", "model:sale.order", "user:7", "user:8"], "id": "s1"}))
        reply = receive(client)
        assert reply == {
            "t": "subscribed",
            "ch": ["model:res.partner", "user:7"],
            "refused": [{"ch": "model:sale.order", "reason": "forbidden"}, {"ch": "user:8", "reason": "forbidden"}],
            "id": "s1",
        }
        redis_client.publish(user_channel(bus_db, 8), json.dumps({"type": "not yours"}))
        redis_client.publish(user_channel(bus_db, 7), json.dumps({"type": "mail.message", "id": 5}))
        assert receive_until(client, "event") == {"t": "event", "ch": "user:7", "data": {"type": "mail.message", "id": 5}}
    finally:
        redis_client.delete(key)


@pytest.mark.parametrize(
    "grants",
    [
        {"channels": ["model:res.partner"] * 200_000 + ["model:*"], "exp": 2**62},
        {"channels": [{"nested": [[[["model:res.partner"]]]]}, 7, None, "\udcff", "model:" + "a" * 10_000], "exp": 2**62},
        {"channels": ["model:res.partner"], "exp": 1e400},
        "model:res.partner",
    ],
    ids=["huge-list-and-star", "garbage-items", "float-expiry", "not-an-object"],
)
def test_tampered_session_grants_give_nothing_beyond_whats_well_formed(bus_db, start_gateway, redis_client, grants):
    """Whoever writes a session in Redis cannot make the gateway grant a star, another user's
    channel or a malformed one, nor grow it past a connection's bound, nor stop it."""
    gateway = start_gateway(bus_db)
    sid = secrets.token_urlsafe(16)
    key = session_key("zero_sudo:", sid)
    redis_client.set(key, json.dumps({"uid": 7, "db": bus_db, SESSION_GRANTS_KEY: grants}), ex=60)  # 1e400: Infinity
    try:
        client = open_client(gateway, cookie="session_id=%s" % sid)
        hello = receive(client)
        assert hello["auth"] == "session"
        assert "model:*" not in hello["grants"] and "user:7" in hello["grants"]
        assert set(hello["grants"]) <= {"user:7", "model:res.partner"}
        client.send(json.dumps({"op": "sub", "ch": ["model:sale.order"], "id": "s"}))
        assert receive(client)["refused"] == [{"ch": "model:sale.order", "reason": "forbidden"}]
        assert gateway.healthy()
    finally:
        redis_client.delete(key)


def test_expired_session_grants_leave_the_users_own_channel_only(bus_db, start_gateway, redis_client):
    gateway = start_gateway(bus_db)
    sid = secrets.token_urlsafe(16)
    key = session_key("zero_sudo:", sid)
    grants = session_grants(["model:res.partner"], int(time.time()) - 1)
    redis_client.set(key, encode_session({"uid": 7, "db": bus_db, SESSION_GRANTS_KEY: grants}), ex=60)
    try:
        client = open_client(gateway, cookie="session_id=%s" % sid)
        assert receive(client)["grants"] == ["user:7"]
        client.send(json.dumps({"op": "sub", "ch": ["model:res.partner"], "id": "s1"}))
        assert receive(client)["refused"] == [{"ch": "model:res.partner", "reason": "forbidden"}]
        assert gateway.metric("zero_sudo_gateway_stale_session_grants_total") == 1
    finally:
        redis_client.delete(key)


@pytest.mark.parametrize(
    "session",
    [{"uid": None, "db": "same"}, {"uid": 7, "db": "another_db"}, None],
    ids=["anonymous", "other-database", "unknown-sid"],
)
def test_a_session_without_a_user_of_this_database_is_no_credential(bus_db, start_gateway, redis_client, session):
    gateway = start_gateway(bus_db)
    sid = secrets.token_urlsafe(16)
    if session is not None:
        redis_client.set(
            session_key("zero_sudo:", sid), encode_session({**session, "db": session["db"].replace("same", bus_db)}), ex=60
        )
    client = open_client(gateway, cookie="session_id=%s" % sid)
    client.send(json.dumps({"op": "sub", "ch": ["model:res.partner"]}))
    assert closed_with(client) == (CloseCode.POLICY_VIOLATION, "authenticate first")
    assert gateway.metric("zero_sudo_gateway_auth_failures_total") == 1
    redis_client.delete(session_key("zero_sudo:", sid))


def test_no_credentials_then_a_command_is_closed_with_policy_violation(bus_db, start_gateway):
    gateway = start_gateway(bus_db)
    client = open_client(gateway)
    client.send(json.dumps({"op": "sub", "ch": ["model:res.partner"]}))
    assert closed_with(client) == (CloseCode.POLICY_VIOLATION, "authenticate first")


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda db: token_for(db, ["model:res.partner"], secret="not-the-secret"), "bad_signature"),
        (lambda db: token_for(db, ["model:res.partner"])[:-4] + "AAAA", "bad_signature"),
        (lambda db: token_for(db, ["model:res.partner"], ttl=-1), "expired"),
        (lambda db: token_for("another_db", ["model:res.partner"]), "wrong_db"),
        (lambda db: "garbage", "malformed"),
    ],
    ids=["other-secret", "forged-signature", "expired", "other-database", "garbage"],
)
def test_refused_tokens_close_with_policy_violation_and_count(bus_db, start_gateway, make_token, reason):
    gateway = start_gateway(bus_db)
    client = open_client(gateway)
    client.send(json.dumps({"op": "auth", "token": make_token(bus_db)}))
    assert closed_with(client) == (CloseCode.POLICY_VIOLATION, "authentication failed: %s" % reason)
    assert gateway.metric('zero_sudo_gateway_auth_failures_total{reason="%s"}' % reason) == 1


def test_a_foreign_origin_is_refused_at_the_handshake(bus_db, start_gateway):
    gateway = start_gateway(bus_db)
    with pytest.raises(InvalidStatus) as info:
        open_client(gateway, origin="http://evil.example")
    assert info.value.response.status_code == 403
    assert gateway.metric('zero_sudo_gateway_handshakes_refused_total{reason="origin"}') == 1
    open_client(gateway, origin="http://allowed.example").close()


def test_a_channel_outside_the_token_grant_is_refused_and_never_delivered(bus_db, start_gateway, redis_client):
    gateway = start_gateway(bus_db)
    client, reply = authenticated_client(
        gateway, ["model:res.partner", "model:hr.employee", "user:3", "nonsense"], uid=2, grants=["model:res.partner"]
    )
    assert reply["ch"] == ["model:res.partner"]
    assert reply["refused"] == [
        {"ch": "model:hr.employee", "reason": "forbidden"},
        {"ch": "user:3", "reason": "forbidden"},
        {"ch": "nonsense", "reason": "invalid"},
    ]
    channel = bus_channel(bus_db)
    redis_client.publish(channel, encode_flush_message("e1", 0, "start"))
    redis_client.publish(channel, encode_change_message("e1", 1, model_key("hr.employee"), Op.WRITE, [1]))
    redis_client.publish(channel, encode_change_message("e1", 2, model_key("res.partner"), Op.WRITE, [2]))
    assert receive_until(client, "event")["ids"] == [2]


def test_unsubscribe_stops_delivery(bus_db, start_gateway, redis_client):
    gateway = start_gateway(bus_db)
    client, _ = authenticated_client(gateway, ["model:res.partner", "model:res.users"])
    client.send(json.dumps({"op": "unsub", "ch": ["model:res.partner", "model:never.subscribed"], "id": 4}))
    assert receive(client) == {"t": "unsubscribed", "ch": ["model:res.partner"], "id": 4}
    channel = bus_channel(bus_db)
    redis_client.publish(channel, encode_change_message("e1", 0, model_key("res.partner"), Op.WRITE, [1]))
    redis_client.publish(channel, encode_change_message("e1", 1, model_key("res.users"), Op.WRITE, [2]))
    assert receive_until(client, "event")["ids"] == [2]
    assert gateway.metric("zero_sudo_gateway_subscriptions") == 1


def test_an_oversize_frame_closes_with_message_too_big(bus_db, start_gateway):
    gateway = start_gateway(bus_db, "--gateway-max-frame-bytes", "1024")
    client = open_client(gateway)
    client.send(json.dumps({"op": "auth", "token": "x" * 2000}))
    assert closed_with(client)[0] == CloseCode.MESSAGE_TOO_BIG


def test_a_command_flood_is_rate_limited_then_closed(bus_db, start_gateway):
    gateway = start_gateway(bus_db, "--gateway-commands-per-s", "1", "--gateway-command-burst", "5")
    client, _ = authenticated_client(gateway, ["model:res.partner"])
    for _ in range(20):
        try:
            client.send(json.dumps({"op": "sub", "ch": ["model:res.partner"]}))
        except ConnectionClosed:
            break
    assert closed_with(client) == (CloseCode.POLICY_VIOLATION, "rate limit exceeded")
    assert gateway.metric('zero_sudo_gateway_protocol_violations_total{code="1008"}') == 1


@pytest.mark.parametrize(
    ("frame", "code", "reason"),
    [
        ("{not json", CloseCode.POLICY_VIOLATION, "malformed command: not JSON"),
        ("[1, 2]", CloseCode.POLICY_VIOLATION, "malformed command: not an object"),
        ('{"op": "dance"}', CloseCode.POLICY_VIOLATION, "malformed command: unknown op"),
        ('{"op": "sub", "ch": 5}', CloseCode.POLICY_VIOLATION, "malformed command: ch must be a channel name or a list of them"),
        (b"\x00binary", CloseCode.UNSUPPORTED_DATA, "binary frames are not accepted"),
    ],
    ids=["not-json", "not-object", "unknown-op", "bad-channels", "binary"],
)
def test_malformed_commands_close_the_connection(bus_db, start_gateway, frame, code, reason):
    gateway = start_gateway(bus_db)
    client, _ = authenticated_client(gateway, ["model:res.partner"])
    client.send(frame)
    assert closed_with(client) == (code, reason)
    assert gateway.healthy()


def test_a_reader_that_never_reads_is_dropped_while_others_get_everything(bus_db, start_gateway, redis_client):
    gateway = start_gateway(bus_db, "--gateway-max-buffer-bytes", "65536")
    model = model_key("res.partner")
    stalled = RawClient(gateway.port)
    stalled.send_text(json.dumps({"op": "auth", "token": token_for(bus_db, ["model:res.partner"])}))
    stalled.send_text(json.dumps({"op": "sub", "ch": ["model:res.partner"]}))
    wait_until(lambda: gateway.metric("zero_sudo_gateway_subscriptions") == 1, what="stalled client subscribed")
    reader, _ = authenticated_client(gateway, ["model:res.partner"])
    rss_before = gateway.rss_kib()
    channel = bus_channel(bus_db)
    ids = list(range(1, 10_001))  # ~60 KB per event
    events = 200  # ~12 MB of traffic per subscriber
    for seq in range(events):
        redis_client.publish(channel, encode_change_message("e1", seq, model, Op.WRITE, ids))
        assert receive_until(reader, "event")["seq"] == seq
    assert gateway.metric("zero_sudo_gateway_slow_clients_dropped_total") == 1
    growth_mib = (gateway.rss_kib() - rss_before) / 1024
    assert growth_mib < 8, "gateway RSS grew by %.1f MiB for one stalled client" % growth_mib
    wait_until(lambda: gateway.metric("zero_sudo_gateway_connections") == 1, what="stalled client closed")
    stalled.close()


# Enough clients and bytes that fan-outs span many 5 ms slices and overlap (each burst of
# events is queued while the previous one is still being written): 100 events of 1000 IDs.
ORDERED_CLIENTS = 500
ORDERED_EVENTS = 100
IDS_PER_EVENT = 1000


def test_every_client_gets_every_event_in_order_while_fan_outs_are_sliced(bus_db, start_gateway, redis_client):
    gateway = start_gateway(bus_db)
    channel, model = bus_channel(bus_db), model_key("res.partner")
    token = token_for(bus_db, ["model:res.partner"])

    async def client(subscribed: asyncio.Event, ready: list[int]) -> list[int]:
        async with websockets.asyncio.client.connect(gateway.url, origin="http://allowed.example", compression=None) as ws:
            await ws.send(json.dumps({"op": "auth", "token": token}))
            await ws.send(json.dumps({"op": "sub", "ch": ["model:res.partner"]}))
            seqs: list[int] = []
            while len(seqs) < ORDERED_EVENTS:
                message = json.loads(await ws.recv())
                if message["t"] == "subscribed":
                    ready.append(1)
                    if len(ready) == ORDERED_CLIENTS:
                        subscribed.set()
                elif message["t"] == "event":
                    seqs.append(message["seq"])
            return seqs

    async def scenario() -> list[list[int]]:
        subscribed, ready = asyncio.Event(), []
        clients = [asyncio.create_task(client(subscribed, ready)) for _ in range(ORDERED_CLIENTS)]
        async with asyncio.timeout(60):
            await subscribed.wait()
            for seq in range(1, ORDERED_EVENTS + 1):  # a new epoch's sequence starts at 1
                ids = range(seq * IDS_PER_EVENT, (seq + 1) * IDS_PER_EVENT)
                redis_client.publish(channel, encode_change_message("e1", seq, model, Op.WRITE, ids))
            return await asyncio.gather(*clients)

    received = asyncio.run(scenario())
    assert all(seqs == list(range(1, ORDERED_EVENTS + 1)) for seqs in received), [s[:10] for s in received if s != sorted(s)][:3]
    assert gateway.metric("zero_sudo_gateway_slow_clients_dropped_total") == 0


# What a flood may cost the gateway: its frames are refused past the burst (20 frames, within
# one 4 KiB parse slice), so the pongs it queued stay under gateway_max_buffer_bytes (docs/
# gateway.md, "Bounded memory"); it grew by 338 MB in 10 s before. 8 MiB is allocator noise.
FLOOD_RSS_GROWTH_MIB = 8


@pytest.mark.parametrize(
    ("first", "frame"),
    [
        (b"", client_frame(Opcode.PING, b"p" * 125)),
        (b"", client_frame(Opcode.PONG, b"p" * 125)),
        (b"", client_frame(Opcode.PING)),  # the smallest frame: the most pongs per byte read
        (client_frame(Opcode.TEXT, b"{", fin=False), client_frame(Opcode.CONT, fin=False)),  # a never-ending message
    ],
    ids=["ping", "pong", "empty-ping", "empty-continuation"],
)
def test_an_unauthenticated_flood_of_any_frame_kind_is_closed_and_costs_bounded_memory(bus_db, start_gateway, first, frame):
    gateway = start_gateway(bus_db)
    flooder = RawClient(gateway.port)  # never reads: every pong would stay in the gateway
    rss_before = gateway.rss_kib()
    flooder.sock.sendall(first)
    flooder.flood(frame, max_bytes=256 * 2**20, seconds=3.0)
    received, reset = flooder.read_until_closed(timeout=5.0)  # well before the 10 s auth timeout
    assert reset or close_codes(received) == [CloseCode.POLICY_VIOLATION], close_codes(received)
    growth_mib = (gateway.rss_kib() - rss_before) / 1024
    assert growth_mib < FLOOD_RSS_GROWTH_MIB, "gateway RSS grew by %.1f MiB for one flooding client" % growth_mib
    assert gateway.metric('zero_sudo_gateway_protocol_violations_total{code="1008"}') == 1
    assert gateway.metric("zero_sudo_gateway_connections") == 0
    assert gateway.healthy()


def test_a_ping_flood_from_a_reading_client_is_closed_with_policy_violation(bus_db, start_gateway):
    gateway = start_gateway(bus_db)
    client, _ = authenticated_client(gateway, ["model:res.partner"])
    with pytest.raises(ConnectionClosed):
        for index in range(1000):
            client.ping(b"%d" % index)
    assert closed_with(client) == (CloseCode.POLICY_VIOLATION, "rate limit exceeded")


# Connections frozen out of the collector's sight while open (docs/gateway.md, "Garbage
# collection") must still be freed once closed. Without the cycle the gateway breaks when a
# connection is lost, each round of 2 000 kept ~4 MB (16 MB over the rounds compared); with
# it, 0.5-3.5 MB of allocator noise.
CHURN_CLIENTS = 2000
CHURN_ROUNDS = 6
CHURN_RSS_GROWTH_MIB = 8


def test_connections_frozen_while_open_are_freed_once_closed(bus_db, start_gateway):
    gateway = start_gateway(bus_db)
    rss_after_round = []
    for _round in range(CHURN_ROUNDS):
        sockets = open_stalled_clients(gateway, CHURN_CLIENTS, ["model:res.partner"])
        wait_until(lambda: gateway.metric("zero_sudo_gateway_subscriptions") == CHURN_CLIENTS, 30, what="clients subscribed")
        time.sleep(0.5)  # frozen while open: several freezes go by
        for sock in sockets:
            sock.close()
        wait_until(lambda: gateway.metric("zero_sudo_gateway_connections") == 0, 30, what="every client gone")
        time.sleep(0.5)
        rss_after_round.append(gateway.rss_kib())
    growth_mib = (rss_after_round[-1] - rss_after_round[1]) / 1024  # the first round warms the allocator
    assert growth_mib < CHURN_RSS_GROWTH_MIB, "RSS after each round (KiB): %s" % rss_after_round


# 2000 stalled clients are written 12 KB events until they are dropped, among 10 000
# connections, while /healthz is probed. Before: full garbage collections walking every
# connection, each /metrics scrape counting the frozen objects (0.12 s) and fan-outs holding
# the loop for 0.2-0.4 s made the 95th percentile 150-220 ms and the worst 0.3-0.4 s here
# (3.7 s in issue 11). Now (fan-out in 5 ms slices, survivors frozen every 0.2 s): p95
# ~30 ms, worst 33-150 ms. The target (docs/gateway.md) is 100 ms, asserted for 95 % of the
# probes; the worst gets a ceiling with room for a busy 2-core machine.
DROPPED_CLIENTS = 2000
IDLE_CLIENTS = 8000
HEALTHZ_TARGET_S = 0.1
HEALTHZ_CEILING_S = 0.4


def test_healthz_answers_while_thousands_of_slow_clients_are_dropped(bus_db, start_gateway, redis_client):
    gateway = start_gateway(bus_db, "--gateway-max-buffer-bytes", "16384")
    sockets = open_stalled_clients(gateway, IDLE_CLIENTS, ["model:res.users"])  # never get an event
    sockets += open_stalled_clients(gateway, DROPPED_CLIENTS, ["model:res.partner"])
    try:
        wait_until(
            lambda: gateway.metric("zero_sudo_gateway_subscriptions") == len(sockets), 30, what="stalled clients subscribed"
        )
        latencies: list[float] = []
        done = threading.Event()

        def probe() -> None:
            while not done.is_set():
                started = time.perf_counter()
                status, _ = gateway.get("/healthz")
                latencies.append(time.perf_counter() - started if status == 200 else float("inf"))
                time.sleep(0.01)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            time.sleep(0.2)
            channel, model = bus_channel(bus_db), model_key("res.partner")
            # 12 KB events 0.1 s apart: each fan-out is short, so a slow probe means a stall;
            # the kernel takes ~600 KB per stalled socket before the gateway buffers any.
            ids = list(range(10_000, 12_000))
            seq = 0
            while gateway.metric("zero_sudo_gateway_slow_clients_dropped_total") < DROPPED_CLIENTS and seq < 150:
                redis_client.publish(channel, encode_change_message("e1", seq, model, Op.WRITE, ids))
                seq += 1
                time.sleep(0.1)
            wait_until(
                lambda: gateway.metric("zero_sudo_gateway_connections") == len(sockets) - DROPPED_CLIENTS,
                10,
                what="every stalled client dropped",
            )
            time.sleep(0.5)
        finally:
            done.set()
            prober.join()
    finally:
        for sock in sockets:
            sock.close()
    assert gateway.metric("zero_sudo_gateway_slow_clients_dropped_total") == DROPPED_CLIENTS
    latencies.sort()
    p95, worst = latencies[int(len(latencies) * 0.95)], latencies[-1]
    print(
        "healthz while %d clients were dropped: %d probes, p95 %.0f ms, worst %.0f ms"
        % (DROPPED_CLIENTS, len(latencies), p95 * 1000, worst * 1000)
    )
    assert p95 < HEALTHZ_TARGET_S, "/healthz took %.2fs (95th percentile) while slow clients were dropped" % p95
    assert worst < HEALTHZ_CEILING_S, "/healthz took %.2fs while slow clients were dropped" % worst


def test_redis_restart_sends_every_client_a_resync(bus_db, start_gateway, private_redis):
    gateway = start_gateway(bus_db, redis_url=private_redis.url)
    client, _ = authenticated_client(gateway, ["model:res.partner"])
    private_redis.stop()
    wait_until(lambda: not gateway.healthy(), what="gateway unhealthy without Redis")
    private_redis.start()
    assert receive_until(client, "resync", timeout=30)["reason"] == "reconnect"
    gateway.wait_healthy()


def test_sigterm_closes_every_client_with_going_away_then_exits(bus_db, start_gateway):
    gateway = start_gateway(bus_db)
    clients = [authenticated_client(gateway, ["model:res.partner"])[0] for _ in range(3)]
    gateway.proc.send_signal(signal.SIGTERM)
    for client in clients:
        assert closed_with(client)[0] == CloseCode.GOING_AWAY
    assert gateway.proc.wait(20) == 0
    assert any("gateway stopped" in line for line in gateway.output)


def test_ops_endpoints_and_client_files_on_the_websocket_port(bus_db, start_gateway):
    gateway = start_gateway(bus_db)
    status, body = gateway.get("/healthz")
    assert status == 200 and json.loads(body)["bus"] is True
    status, body = gateway.get("/metrics")
    for name in (
        "zero_sudo_gateway_connections",
        "zero_sudo_gateway_subscriptions",
        "zero_sudo_gateway_events_in_total",
        "zero_sudo_gateway_messages_out_total",
        "zero_sudo_gateway_slow_clients_dropped_total",
        "zero_sudo_gateway_auth_failures_total",
    ):
        assert name in body
    assert "class ZeroSudoGateway" in gateway.get("/zero_sudo_gateway.js")[1]
    assert "zero_sudo_gateway.js" in gateway.get("/demo.html")[1]
    assert gateway.get("/nope")[0] == 404
    assert SECRET not in body


# -- wiring ----------------------------------------------------------------------------------------


def test_gateway_settings_and_launcher_entry():
    settings = resolve_settings([], {"ZERO_SUDO_GATEWAY_TOKEN_SECRET": "x"})
    assert (settings.gateway_port, settings.gateway_token_secret, settings.session_prefix) == (9104, "x", "zero_sudo:")
    assert DAEMONS["gateway"] == "zero_sudo_daemons.gateway"
