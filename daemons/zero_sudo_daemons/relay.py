"""The invalidation relay: PostgreSQL LISTEN → Redis pub/sub, one active replica at a time.

One *epoch* is one stretch of leadership with working connections:

1. connect to PostgreSQL and poll ``pg_try_advisory_lock`` on :data:`LEADER_LOCK_KEY` (a
   session lock: PostgreSQL releases it the moment the holder's backend goes away) until
   this replica is the active one; the others stay standby on the same poll;
2. connect to Redis, ``LISTEN`` on :data:`~zero_sudo_bus.protocol.PG_CHANNEL`, *then*
   publish ``flush`` with ``seq`` 0 under a fresh epoch id: whatever was committed before
   the LISTEN took effect is covered by that flush, whatever after it is relayed;
3. relay: each NOTIFY is decoded (malformed ones are counted and dropped), coalesced per
   (model, op) and published by a single publisher with consecutive ``seq`` numbers.

Any lost connection ends the epoch (the supervisor backs off and starts a new one, whose
flush tells subscribers that events may have been missed); SIGTERM ends it in order:
UNLISTEN, publish what is pending, then close, which hands leadership to a standby.

A leader that stops without dying (SIGSTOP, a paused VM, a long pause of its loop) is fenced
on both sides: its session carries ``idle_session_timeout`` (:data:`LEADER_LEASE_MS`), so
PostgreSQL ends it, and with it the leader lock, once the leader has been silent that long;
and every publish checks, atomically in Redis, that the relay's epoch is still the current
one (:func:`~zero_sudo_bus.protocol.epoch_key`), so the frozen relay, when it wakes,
publishes nothing into its successor's epoch.

A relay follows one database (``db_name``); ``relay_databases`` or ``relay_dbfilter`` make one
deployment follow every database of an Odoo server, one :class:`Relay` each
(:mod:`.relay_databases`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import NoReturn

import psycopg2
import psycopg2.extensions
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from zero_sudo_bus.lockhash import deterministic_hash
from zero_sudo_bus.protocol import (
    PG_CHANNEL,
    FlushReason,
    MessageKind,
    Rejected,
    bus_channel,
    chunk_ids,
    decode_notify_payload,
    encode_change_message,
    encode_flush_message,
    epoch_key,
)
from zero_sudo_bus.redis_clients import RedisTarget

from .coalescing import Coalescer, Drained
from .errors import ConfigurationError, ConnectionLost, DatabaseDropped, TransientError
from .logs import LogThrottle
from .pg_async import AsyncPgConnection
from .redis_publisher import RedisPublisher
from .runtime import Daemon, Role, daemon_main, supervise, task_group, wait_or_stop
from .settings import Settings

_logger = logging.getLogger("zero_sudo.relay")

LEADER_LOCK_KEY = deterministic_hash("zero_sudo.relay", "leader")

# How the relay's connections show in pg_stat_activity and Redis CLIENT LIST.
CLIENT_NAME = "zero_sudo_relay"

# A standby retries the leader lock this often: takeover happens within one interval of the
# active replica's backend going away, well inside the 2 s promise, for 4 cheap queries/s.
LEADER_POLL_S = 0.25

# Under sustained load the publisher sends at most one round per window: a burst becomes one
# Redis message per (model, op) per millisecond instead of one per NOTIFY, which is where the
# relay's CPU goes. An event arriving after a quiet millisecond is published at once, so the
# window adds at most ~1 ms, and only while busy.
BURST_WINDOW_S = 0.001

# Both connections are probed this often while active, so a connection that died silently
# (a killed Redis client, a half-open socket) ends the epoch within about a second.
KEEPALIVE_S = 1.0
KEEPALIVE_TIMEOUT_S = 2.0

# The leader's lease: PostgreSQL ends a leader session idle this long (idle_session_timeout),
# which frees the leader lock, so a standby takes over within LEADER_LEASE_MS + LEADER_POLL_S
# (2.25 s) of a frozen leader's last statement, inside the 3 s promise. A live leader speaks
# every LEASE_PROBE_S, so only a leader stalled for 1.5 s beyond that is fenced.
LEADER_LEASE_MS = 2000
LEASE_PROBE_S = 0.5

# Failures that mean "a server or the network went away": retried. (A lost Redis connection
# raises ConnectionLost, a TransientError, which the supervisor always retries.)
TRANSIENT_ERRORS = (OSError, asyncio.TimeoutError, psycopg2.OperationalError)

# Asked after a failure, when one deployment follows many databases: True when the relay's
# database is gone (DROP DATABASE ... WITH (FORCE) ends its connections like any failure does).
DatabaseGone = Callable[[], Awaitable[bool]]


def pooler_refusal(settings: Settings) -> ConfigurationError:
    """The one line that says the relay was pointed at a connection pooler, and what to set."""
    return ConfigurationError(
        "db_host %s port %d is a connection pooler, not PostgreSQL: the relay needs a session of its own "
        "(LISTEN, the leader lock); set [zero_sudo] db_host/db_port (or --db-host/--db-port) to PostgreSQL itself"
        % (settings.db_host, settings.db_port)
    )


class RelayMetrics:
    """The relay's Prometheus metrics, on a registry of its own (one per relay instance)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.notifications = Counter("zero_sudo_relay_notifications", "NOTIFY payloads received", registry=r)
        self.rejected = Counter(
            "zero_sudo_relay_rejected_payloads", "NOTIFY payloads rejected as malformed", ["reason"], registry=r
        )
        self.published = Counter("zero_sudo_relay_messages_published", "Redis messages published", ["kind"], registry=r)
        self.published_ids = Counter("zero_sudo_relay_ids_published", "record IDs published after coalescing", registry=r)
        self.epochs = Counter("zero_sudo_relay_epochs", "epochs started (each begins with a flush)", ["reason"], registry=r)
        self.overflows = Counter("zero_sudo_relay_overflows", "pending buffer overflows replaced by a flush", registry=r)
        self.active = Gauge("zero_sudo_relay_active", "1 while this replica is the active one", registry=r)
        self.pending_ids = Gauge("zero_sudo_relay_pending_ids", "IDs received and not yet published", registry=r)
        self.lag = Histogram(
            "zero_sudo_relay_lag_seconds",
            "from the oldest NOTIFY of a batch arriving to its Redis publish being acknowledged",
            buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )


class Relay:
    """One relay replica; :meth:`run` runs epochs under the supervisor until stopped."""

    def __init__(
        self, settings: Settings, metrics: RelayMetrics | None = None, database_gone: DatabaseGone | None = None
    ) -> None:
        self.settings = settings
        # None (one database): a missing database is waited for, as an operator will create it.
        self._database_gone = database_gone
        self.metrics = metrics or RelayMetrics()
        self.registry = self.metrics.registry
        self.channel = bus_channel(settings.db_name)
        self.epoch_key = epoch_key(settings.db_name)
        self.role = Role.STARTING
        self.epoch: str | None = None
        self._seq = 0
        self._epochs_started = 0
        self._coalescer = Coalescer(settings.relay_max_pending_ids)
        self._flush_reason = FlushReason.START
        self._wakeup = asyncio.Event()
        self._closing = False
        self._log_throttle = LogThrottle()
        self.metrics.pending_ids.set_function(lambda: self._coalescer.pending_ids)

    # -- health ------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, object]]:
        """Healthy while active or standing by; not while recovering from a lost connection."""
        return self.role in (Role.ACTIVE, Role.STANDBY), {"role": self.role, "epoch": self.epoch, "channel": self.channel}

    # -- the supervised work loop ------------------------------------------------------
    async def run(self, stopping: asyncio.Event) -> None:
        def on_failure(_exc: BaseException) -> None:
            self.role = Role.RECOVERING
            self.metrics.active.set(0)

        name = "relay db=%s" % self.settings.db_name
        try:
            await supervise(name, lambda: self._epoch_unless_dropped(stopping), stopping, TRANSIENT_ERRORS, on_failure=on_failure)
        except DatabaseDropped:
            self.role = Role.STOPPED
            self.metrics.active.set(0)
            _logger.info("relay stopped: database %s was dropped", self.settings.db_name)

    async def _epoch_unless_dropped(self, stopping: asyncio.Event) -> None:
        """One epoch; a failure because the database was dropped ends the relay instead of
        being retried (it would be retried forever, and reported as a database to create)."""
        try:
            await self._run_epoch(stopping)
        except (*TRANSIENT_ERRORS, TransientError) as exc:
            if self._database_gone is not None and await self._database_gone():
                raise DatabaseDropped(self.settings.db_name) from exc
            raise

    async def _run_epoch(self, stopping: asyncio.Event) -> None:
        pg = await AsyncPgConnection.connect(
            KEEPALIVE_TIMEOUT_S * 2, application_name=CLIENT_NAME, **self.settings.libpq_kwargs()
        )
        lost = pg.lost
        await self._refuse_a_pooler(pg)
        try:
            self.role = Role.STANDBY
            if not await self._become_leader(pg, stopping, lost):
                return
            # The lease: a leader silent this long loses its session, and the lock with it.
            await pg.execute("SET idle_session_timeout = %d" % LEADER_LEASE_MS, (), KEEPALIVE_TIMEOUT_S)
            bus = await RedisPublisher.connect(RedisTarget.of(self.settings), CLIENT_NAME, KEEPALIVE_TIMEOUT_S)
            try:
                await self._relay(pg, bus, stopping, lost)
            finally:
                await bus.close()
        finally:
            self.metrics.active.set(0)
            pg.close()

    async def _refuse_a_pooler(self, pg: AsyncPgConnection) -> None:
        """Stop, with one line, if a connection pooler (PgBouncer) stands between the relay and
        PostgreSQL: LISTEN and the leader lock belong to a server session, which a pooler in
        transaction mode hands to other clients between transactions (events would be lost
        and two relays could both lead). A pooler answers the start-up with a backend key of
        its own, so the server's process ID differs from the one the connection announced.
        """
        if await pg.fetchval("SELECT pg_backend_pid()", (), KEEPALIVE_TIMEOUT_S) != pg.backend_pid:
            raise pooler_refusal(self.settings)

    async def _become_leader(self, pg: AsyncPgConnection, stopping: asyncio.Event, lost: asyncio.Event) -> bool:
        """Poll the leader lock until held (True) or until asked to stop (False)."""
        while not await pg.fetchval("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,), KEEPALIVE_TIMEOUT_S):
            if lost.is_set():
                raise ConnectionLost("PostgreSQL connection lost while standing by")
            if await wait_or_stop(stopping, LEADER_POLL_S):
                return False
        return True

    async def _relay(self, pg: AsyncPgConnection, bus: RedisPublisher, stopping: asyncio.Event, lost: asyncio.Event) -> None:
        self._start_epoch()
        await bus.claim_epoch(self.epoch_key, self.epoch)
        pg.listen_with(self._on_notifications)
        await pg.execute('LISTEN "%s"' % PG_CHANNEL, (), KEEPALIVE_TIMEOUT_S)
        self.role = Role.ACTIVE
        self.metrics.active.set(1)
        _logger.info(
            "relay active db=%s epoch=%s pg_channel=%s redis_channel=%s",
            self.settings.db_name,
            self.epoch,
            PG_CHANNEL,
            self.channel,
        )
        try:
            # The first failure of the publisher, of a probe or of the PostgreSQL connection
            # ends the epoch (the supervisor starts a new one); stopping hands over in order.
            async with task_group() as tasks:
                publisher = tasks.create_task(self._publish_forever(bus), name="relay.publisher")
                probes = (
                    tasks.create_task(self._keepalive(pg, bus), name="relay.keepalive"),
                    tasks.create_task(_raise_when_set(lost, "PostgreSQL connection lost"), name="relay.pg_lost"),
                )
                await stopping.wait()
                # Graceful stop: accept no more, let the publisher send what is pending, let go.
                await pg.execute("UNLISTEN *", (), KEEPALIVE_TIMEOUT_S)
                self._closing = True
                self._wakeup.set()
                async with asyncio.timeout(KEEPALIVE_TIMEOUT_S):
                    await publisher
                for probe in probes:
                    probe.cancel()
            _logger.info("relay stopped db=%s epoch=%s last_seq=%d", self.settings.db_name, self.epoch, self._seq - 1)
        finally:
            self.role = Role.STOPPED if stopping.is_set() else Role.RECOVERING

    def _start_epoch(self) -> None:
        """A fresh epoch whose first message, seq 0, is a flush."""
        reason = FlushReason.START if self._epochs_started == 0 else FlushReason.RECOVER
        self._epochs_started += 1
        self.epoch = secrets.token_hex(8)
        self._seq = 0
        self._closing = False
        self._coalescer.drain()
        self._coalescer.require_flush()
        self._flush_reason = reason
        self.metrics.epochs.labels(reason).inc()
        self._wakeup.set()

    # -- receiving ---------------------------------------------------------------------
    def _on_notifications(self, batch: Sequence[psycopg2.extensions.Notify]) -> None:
        """Everything libpq read in one poll: decode, buffer, wake the publisher once."""
        self.metrics.notifications.inc(len(batch))
        now = time.perf_counter()
        for notify in batch:
            decoded = decode_notify_payload(notify.payload)
            if isinstance(decoded, Rejected):
                self._reject(decoded, notify.payload)
            elif self._coalescer.add(decoded, now):
                self.metrics.overflows.inc()
                self._flush_reason = FlushReason.OVERFLOW
                _logger.warning("relay buffer overflow: pending IDs replaced by a flush")
        self._wakeup.set()

    def _reject(self, rejected: Rejected, payload: str) -> None:
        self.metrics.rejected.labels(rejected.reason).inc()
        suppressed = self._log_throttle.allow(rejected.reason)
        if suppressed is not None:
            _logger.warning(
                "rejected NOTIFY payload reason=%s detail=%s head=%r suppressed_since_last=%d",
                rejected.reason,
                rejected.detail,
                payload[:80],
                suppressed,
            )

    # -- publishing --------------------------------------------------------------------
    async def _publish_forever(self, bus: RedisPublisher) -> None:
        """The single publisher: what arrives while it publishes goes out in its next round."""
        loop = asyncio.get_running_loop()
        last_round_at = 0.0
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            since_last = loop.time() - last_round_at
            if since_last < BURST_WINDOW_S and not self._closing:
                await asyncio.sleep(BURST_WINDOW_S - since_last)
            last_round_at = loop.time()
            await self._publish_pending(bus)
            if self._closing:
                await self._publish_pending(bus)  # what arrived during the last round
                return

    async def _publish_pending(self, bus: RedisPublisher) -> None:
        drained = self._coalescer.drain()
        if not drained:
            return
        messages = self._encode(drained)
        await bus.publish_fenced(self.epoch_key, self.epoch, self.channel, [message for _kind, message in messages])
        for kind, _message in messages:
            self.metrics.published.labels(kind).inc()
        if drained.oldest_at is not None:
            self.metrics.lag.observe(time.perf_counter() - drained.oldest_at)

    def _encode(self, drained: Drained) -> Sequence[tuple[MessageKind, bytes]]:
        messages: list[tuple[MessageKind, bytes]] = []
        if drained.flush_required:
            messages.append((MessageKind.FLUSH, encode_flush_message(self.epoch, self._next_seq(), self._flush_reason)))
        for key, op, ids in drained.changes:
            self.metrics.published_ids.inc(len(ids))
            for chunk in chunk_ids(ids):
                messages.append((MessageKind.CHANGE, encode_change_message(self.epoch, self._next_seq(), key, op, chunk)))
        return messages

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    async def _keepalive(self, pg: AsyncPgConnection, bus: RedisPublisher) -> None:
        """Probe both connections, each on its own clock: a slow Redis never lets the lease lapse."""

        async def renew_lease() -> None:
            while True:
                await asyncio.sleep(LEASE_PROBE_S)
                await pg.fetchval("SELECT 1", (), KEEPALIVE_TIMEOUT_S)

        async def ping_redis() -> None:
            while True:
                await asyncio.sleep(KEEPALIVE_S)
                async with asyncio.timeout(KEEPALIVE_TIMEOUT_S):
                    await bus.ping()

        async with task_group() as probes:  # the probe that fails first ends the epoch
            probes.create_task(renew_lease(), name="relay.lease")
            probes.create_task(ping_redis(), name="relay.redis_ping")


async def _raise_when_set(event: asyncio.Event, why: str) -> NoReturn:
    """Turn ``event`` (a connection's "lost" flag) into the failure of a task group."""
    await event.wait()
    raise ConnectionLost(why)


def build(settings: Settings) -> tuple[Daemon, str, int]:
    """One database's relay (``db_name``), or one per database relay_databases/relay_dbfilter select."""
    from .relay_databases import DatabaseRelays, DatabaseSelection  # that module builds on this one

    selection = DatabaseSelection.from_settings(settings)
    daemon = Relay(settings) if selection is None else DatabaseRelays(settings, selection)
    return daemon, settings.relay_http_host, settings.relay_http_port


def main(argv: Sequence[str] | None = None) -> int:
    return daemon_main("zero-sudo-relay", __doc__.splitlines()[0], argv, build)


if __name__ == "__main__":
    sys.exit(main())
