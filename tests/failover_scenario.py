"""A Redis master killed under load, the whole chain running on Sentinels: what users notice.

Shared by ``tests/test_redis_failover.py`` (which asserts) and ``make bench-failover`` (which
measures). A real Odoo 18 (prefork, two workers: each its own cache follower and Redis pool)
on a fresh database, the relay and the gateway, all configured with the Sentinels of a private
:class:`~redis_ha.RedisHA`. Sessions are logged in first (each acknowledged by the replica,
``session_replica_wait_ms``); then a few threads write partners and log in, a WebSocket client
follows ``model:res.partner`` through the gateway, and the master is killed.

Odoo is driven through ``live_stack.OdooServer`` (reused as it is): a real server with the
addon loaded server-wide is what runs the session store and the followers in production, and
the relay and the gateway run beside it as processes, as they do in a deployment.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import redis
from live_stack import Daemon, JsonRpc, OdooInstall, OdooServer, wait_for
from redis_ha import SERVICE, RedisHA
from websockets.sync.client import connect

from zero_sudo_bus.protocol import epoch_key

SESSIONS_BEFORE = 20  # logins made before the kill, each to be still valid after it
WRITERS = 4  # threads writing and logging in during the failover
LOGIN_EVERY = 4  # every 4th request of a writer is a fresh login
# A request that takes this long has hung: far beyond any failover of this test (seconds).
HANG_S = 30.0
AFTER_RESUME_S = 3.0  # the stream goes on this long after the relay resumed
FOLLOWER_PREFIX = "zero_sudo_cache_"  # coherence.Follower's Redis client names
ADMIN = ("admin", "admin")


@dataclass
class RequestLog:
    """Every request of the stream: when it started, how long it took, whether it worked."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    entries: list[tuple[float, float, bool, str]] = field(default_factory=list)

    def add(self, started: float, ok: bool, what: str) -> None:
        with self.lock:
            self.entries.append((started, time.monotonic() - started, ok, what))


@dataclass
class FailoverReport:
    redis_failover_s: float  # kill → the Sentinels name a new master
    relay_resumed_s: float  # new master named → the relay's new epoch on it
    epoch_before: str
    epoch_after: str
    relay_flushes: float  # flushes the relay published over the failover
    followers_before: set[str]
    followers_after: set[str]
    gateway_resynced: bool
    gateway_events_of_new_epoch: int
    sessions_before: int
    sessions_lost: int
    requests: int
    requests_failed: int
    requests_hung: int
    longest_request_s: float


def _relay_flushes(relay: Daemon) -> float:
    """The flushes the relay published, whatever other labels (db) the counter carries."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % relay.port, timeout=5) as response:
        lines = response.read().decode().splitlines()
    return sum(
        float(line.rpartition(" ")[2])
        for line in lines
        if line.startswith("zero_sudo_relay_messages_published_total{") and 'kind="flush"' in line
    )


def _followers(port: int) -> set[str]:
    with redis.Redis(port=port, decode_responses=True, socket_timeout=2) as client:
        return {c["name"] for c in client.client_list() if c["name"].startswith(FOLLOWER_PREFIX) and c.get("sub") != "0"}


def _epoch(port: int, db: str) -> str | None:
    try:
        with redis.Redis(port=port, decode_responses=True, socket_timeout=1, socket_connect_timeout=1) as client:
            return client.get(epoch_key(db))
    except redis.exceptions.RedisError:
        return None


def _writer(server: OdooServer, db: str, log: RequestLog, stopping: threading.Event, index: int) -> None:
    """Write a partner, again and again; every LOGIN_EVERY-th request logs in afresh."""
    rpc = JsonRpc(server.url, db, *ADMIN)
    partner = rpc.call_kw("res.partner", "create", [{"name": "failover writer %d" % index}])
    count = 0
    while not stopping.is_set():
        count += 1
        started = time.monotonic()
        login = count % LOGIN_EVERY == 0
        try:
            if login:
                rpc = JsonRpc(server.url, db, *ADMIN)
            else:
                rpc.call_kw("res.partner", "write", [[partner], {"name": "failover writer %d #%d" % (index, count)}])
            log.add(started, True, "login" if login else "write")
        except (OSError, RuntimeError, KeyError, urllib.error.URLError):
            log.add(started, False, "login" if login else "write")
            time.sleep(0.05)


def _valid(server: OdooServer, rpc: JsonRpc) -> bool:
    try:
        return rpc.call("/web/session/get_session_info", {}).get("uid") == rpc.uid
    except (OSError, RuntimeError):
        return False


class GatewayWatcher:
    """A browser's WebSocket through the gateway, logged in by its Odoo cookie, following partners."""

    def __init__(self, gateway: Daemon, origin: str, session_id: str) -> None:
        self.client = connect(
            "ws://127.0.0.1:%d/ws" % gateway.port,
            origin=origin,
            additional_headers={"Cookie": "session_id=%s" % session_id},
            open_timeout=10,
            legacy=True,  # a plain connection object, closed by close()
        )
        self.client.send(json.dumps({"op": "sub", "ch": ["model:res.partner"]}))
        self.messages: list[tuple[float, dict]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for raw in self.client:
                self.messages.append((time.monotonic(), json.loads(raw)))
        except Exception:  # noqa: BLE001 (the connection ends with the test)
            return

    def since(self, moment: float) -> list[dict]:
        return [message for at, message in self.messages if at >= moment]

    def close(self) -> None:
        self.client.close()


def run_failover(odoo: OdooInstall) -> FailoverReport:
    """Start everything, kill the master under load, and report what users saw."""
    ha = RedisHA().start()
    server = OdooServer(odoo, ["zero_sudo_live"], workers=2)  # zero_sudo_live: partners' events
    daemons: list[Daemon] = []
    watcher: GatewayWatcher | None = None
    try:
        previous = os.environ.get("ZERO_SUDO_REDIS_URL")
        os.environ["ZERO_SUDO_REDIS_URL"] = ha.url  # write_odoo_conf's redis_url
        try:
            server.install()
        finally:
            if previous is None:
                os.environ.pop("ZERO_SUDO_REDIS_URL")
            else:
                os.environ["ZERO_SUDO_REDIS_URL"] = previous
        with open(server.conf, "a") as conf:  # its last section is [zero_sudo]
            conf.write("redis_sentinels = %s\nredis_sentinel_service = %s\n" % (ha.sentinels, SERVICE))
        server.start()
        db = server.db
        common = ("--db-name", db, "--db-host", os.environ.get("ZERO_SUDO_DB_HOST", "127.0.0.1"), "--redis-url", ha.url)
        sentinel = ("--redis-sentinels", ha.sentinels, "--redis-sentinel-service", SERVICE)
        relay = Daemon("relay", "--relay-http-port", *common, *sentinel)
        daemons.append(relay)
        gateway = Daemon("gateway", "--gateway-port", *common, *sentinel, "--gateway-allowed-origins", server.url)
        daemons.append(gateway)

        first_master = ha.master()
        sessions = [JsonRpc(server.url, db, *ADMIN) for _ in range(SESSIONS_BEFORE)]
        partner_model = sessions[0].call_kw("ir.model", "search", [[["model", "=", "res.partner"]]])
        sessions[0].call_kw("ir.model", "write", [partner_model, {"zero_sudo_live_publish": True}])
        sessions[0].call("/my/gateway/grants", {})  # its cookie now grants the partners' channel
        watcher = GatewayWatcher(gateway, server.url, sessions[0].session_id)
        epoch_before = wait_for(lambda: _epoch(first_master[1], db), 30, "the relay's epoch")

        log = RequestLog()
        stopping = threading.Event()
        writers = [
            threading.Thread(target=_writer, args=(server, db, log, stopping, index), daemon=True) for index in range(WRITERS)
        ]
        for thread in writers:
            thread.start()
        wait_for(lambda: len(_followers(first_master[1])) >= 2, 60, "both Odoo workers following the relay")
        wait_for(
            lambda: any(m.get("t") == "event" for m in watcher.since(0)),
            30,
            "gateway events before the kill",
            lambda: "gateway said %s\n%s" % (watcher.since(0)[:5], gateway.output.tail()),
        )
        followers_before = _followers(first_master[1])
        flushes_before = _relay_flushes(relay)

        killed_at = time.monotonic()
        ha.kill_master()
        new_master = wait_for(lambda: ha.master() != first_master and ha.master(), 60, "a new master")
        promoted_at = time.monotonic()
        wait_for(lambda: _epoch(new_master[1], db) not in (None, epoch_before), 60, "the relay's new epoch")
        resumed_at = time.monotonic()
        epoch_after = _epoch(new_master[1], db)
        time.sleep(AFTER_RESUME_S)
        stopping.set()
        for thread in writers:
            thread.join(HANG_S + 5)

        followers_after = wait_for(
            lambda: _followers(new_master[1]) >= followers_before and _followers(new_master[1]), 30, "the followers back"
        )
        after = watcher.since(killed_at)
        wait_for(
            lambda: any(m.get("t") == "event" and m.get("epoch") == epoch_after for m in watcher.since(killed_at)),
            30,
            "gateway events of the new epoch",
        )
        after = watcher.since(killed_at)
        entries = list(log.entries)
        return FailoverReport(
            redis_failover_s=promoted_at - killed_at,
            relay_resumed_s=resumed_at - promoted_at,
            epoch_before=epoch_before,
            epoch_after=epoch_after,
            relay_flushes=_relay_flushes(relay) - flushes_before,
            followers_before=followers_before,
            followers_after=followers_after,
            gateway_resynced=any(m.get("t") == "resync" for m in after),
            gateway_events_of_new_epoch=sum(1 for m in after if m.get("t") == "event" and m.get("epoch") == epoch_after),
            sessions_before=len(sessions),
            sessions_lost=sum(1 for rpc in sessions if not _valid(server, rpc)),
            requests=len(entries),
            requests_failed=sum(1 for entry in entries if not entry[2]),
            requests_hung=sum(1 for entry in entries if entry[1] >= HANG_S) + sum(t.is_alive() for t in writers),
            longest_request_s=max((entry[1] for entry in entries), default=0.0),
        )
    finally:
        if watcher is not None:
            watcher.close()
        for daemon in daemons:
            daemon.stop()
        server.drop()
        ha.stop()
