"""The landing daemon: RabbitMQ → the ``zero_sudo_ingest`` landing table, nothing lost, nothing twice.

One session is one pair of connections (PostgreSQL first: while it is down, nothing is
consumed). Messages arrive with a bounded prefetch and are gathered into batches by count
and by time (:class:`~zero_sudo_daemons.batching.BatchWindow`). Each batch is landed in one
transaction: one multi-row ``INSERT … ON CONFLICT (stream_id, external_id) DO NOTHING``,
then the ID-only NOTIFYs of the new rows through the shared encoder, then COMMIT, and only
then one ``ack(multiple=True)``. A crash before the ack redelivers the batch, and the
conflict clause makes the second landing a no-op: the effect is exactly once.

Messages that can never land (malformed, unknown or archived stream, rejected by the
database) are republished, confirmed, to the dead-letter exchange with the reason in a
header before the ack. A lost connection ends the session: the unacknowledged messages go
back to the queue, and the supervisor reconnects with backoff. SIGTERM: stop consuming,
land the batch in hand, close.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence

import aio_pika
import aiormq
import psycopg
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage
from prometheus_client import CollectorRegistry, Counter, Histogram

from zero_sudo_bus.ingest import DEAD_LETTER_EXCHANGE, REASON_HEADER, landing_queue, topology
from zero_sudo_bus.landing_table import ACTIVE_STREAMS, INSERT_ROWS, LANDING_MODEL, LANDING_TABLE, NOTIFY_ALL
from zero_sudo_bus.protocol import PG_CHANNEL, Op, encode_notify_payloads

from .amqp_session import LIVENESS_CHECK_S, amqp_connection, connection_lost, declare_topology
from .batching import BatchWindow
from .errors import ConnectionLost
from .landing_plan import (
    LandingPlan,
    LandingRow,
    RedeliveryLedger,
    decode_batch,
    encodable_headers,
    is_row_fault,
    plan_landing,
    stream_codes,
)
from .runtime import Role, daemon_main, supervise
from .settings import Settings

_logger = logging.getLogger("zero_sudo.landing")

CLIENT_NAME = "zero_sudo_landing"
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 30_000  # a batch insert of thousands of rows, on a loaded server

TRANSIENT_ERRORS = (
    OSError,
    asyncio.TimeoutError,
    # Every PostgreSQL error that is not the data's fault (see landing_plan.is_row_fault):
    # a lost server, a conflict, the addon not installed (yet). The batch stays unacknowledged.
    psycopg.Error,
    # Anything the broker answers, channel closed or delivery refused included: the messages
    # stay queued, and a new session retries them after a backoff.
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
)


class RowRefused(Exception):
    """PostgreSQL refused the data of a batch (SQLSTATE class 22, 23 or 54)."""

    def __init__(self, error: psycopg.Error) -> None:
        super().__init__(str(error))
        self.reason = "rejected by PostgreSQL: %s" % (str(error).strip().splitlines() or [error.sqlstate])[0][:200]


class LandingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.consumed = Counter("zero_sudo_landing_consumed", "messages received from RabbitMQ", registry=r)
        self.landed = Counter("zero_sudo_landing_landed", "new landing rows committed", registry=r)
        self.duplicates = Counter(
            "zero_sudo_landing_duplicates", "messages whose (stream, external ID) had landed before", registry=r
        )
        self.dead = Counter("zero_sudo_landing_dead_lettered", "messages sent to the dead-letter queue", ["reason"], registry=r)
        self.batch_latency = Histogram(
            "zero_sudo_landing_batch_seconds",
            "from a batch's first message arriving to the batch being acknowledged",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.batch_size = Histogram(
            "zero_sudo_landing_batch_size",
            "messages per landed batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000),
            registry=r,
        )


class LandingDaemon:
    def __init__(self, settings: Settings, metrics: LandingMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or LandingMetrics()
        self.registry = self.metrics.registry
        self.queue_name = landing_queue(settings.db_name)
        self.role = Role.STARTING
        self._ledger = RedeliveryLedger()

    def health(self) -> tuple[bool, dict[str, object]]:
        return self.role is Role.CONSUMING, {"role": self.role, "queue": self.queue_name}

    async def run(self, stopping: asyncio.Event) -> None:
        def on_failure(_exc: BaseException) -> None:
            self.role = Role.RECOVERING

        await supervise("landing", lambda: self._session(stopping), stopping, TRANSIENT_ERRORS, on_failure=on_failure)

    async def _session(self, stopping: asyncio.Event) -> None:
        async with await psycopg.AsyncConnection.connect(
            autocommit=True,  # transactions are explicit, one per batch
            application_name=CLIENT_NAME,
            connect_timeout=CONNECT_TIMEOUT_S,
            options="-c statement_timeout=%d" % STATEMENT_TIMEOUT_MS,
            **self.settings.libpq_kwargs(),
        ) as pg:
            await pg.execute("SELECT 1 FROM %s LIMIT 0" % LANDING_TABLE)  # the addon's table is there (else: reported once)
            async with amqp_connection(self.settings.amqp_url, CLIENT_NAME) as amqp:
                await self._consume(pg, amqp, stopping)

    async def _consume(self, pg: psycopg.AsyncConnection, amqp: aio_pika.abc.AbstractConnection, stopping: asyncio.Event) -> None:
        channel = await amqp.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=self.settings.landing_prefetch)
        exchanges, queues = await declare_topology(channel, topology(self.settings.db_name))
        queue, dead_exchange = queues[self.queue_name], exchanges[DEAD_LETTER_EXCHANGE]
        inbox: asyncio.Queue[tuple[AbstractIncomingMessage, float]] = asyncio.Queue()  # bounded by the prefetch

        async def on_message(message: AbstractIncomingMessage) -> None:
            inbox.put_nowait((message, time.perf_counter()))

        consumer_tag = await queue.consume(on_message)
        self.role = Role.CONSUMING
        _logger.info(
            "landing consuming queue=%s prefetch=%d batch=%d/%dms",
            self.queue_name,
            self.settings.landing_prefetch,
            self.settings.landing_batch_size,
            self.settings.landing_batch_ms,
        )
        window: BatchWindow[tuple[AbstractIncomingMessage, float]] = BatchWindow(
            self.settings.landing_batch_size, self.settings.landing_batch_ms / 1000
        )
        watch = {
            asyncio.create_task(stopping.wait()): "stopping",
            amqp.closed(): "RabbitMQ connection lost",  # already a future (shielded: cancelling it is safe)
        }
        try:
            while not stopping.is_set():
                await self._fill(window, inbox, watch)
                for task, why in watch.items():
                    if task.done() and why != "stopping":
                        raise ConnectionLost(why)
                if connection_lost(amqp, channel):
                    raise ConnectionLost("RabbitMQ connection lost")
                if window.items:
                    await self._land(pg, dead_exchange, window.take())
                elif not stopping.is_set():
                    await pg.execute("SELECT 1")  # idle: a server that went away ends the session now
            # Graceful stop: no more deliveries; land what is in hand, then close.
            await queue.cancel(consumer_tag)
            while not inbox.empty():
                window.add(inbox.get_nowait(), 0.0)
                if window.full or inbox.empty():
                    await self._land(pg, dead_exchange, window.take())
            self.role = Role.STOPPED
            _logger.info("landing stopped")
        finally:
            for task in watch:
                task.cancel()

    async def _fill(self, window: BatchWindow, inbox: asyncio.Queue, watch: dict[asyncio.Future, str]) -> None:
        """Add to ``window`` until it is full or due, or until something watched happens."""
        while not window.full:
            if not inbox.empty():
                window.add(inbox.get_nowait(), time.perf_counter())
                continue
            remaining = window.remaining(time.perf_counter())
            if remaining == 0.0:
                return
            timeout = LIVENESS_CHECK_S if remaining is None else min(remaining, LIVENESS_CHECK_S)
            getter = asyncio.create_task(inbox.get())
            await asyncio.wait({getter, *watch}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()  # due, idle for a liveness check, or something watched happened
                return
            window.add(getter.result(), time.perf_counter())

    async def _land(
        self, pg: psycopg.AsyncConnection, dead_exchange: AbstractExchange, batch: Sequence[tuple[AbstractIncomingMessage, float]]
    ) -> None:
        """Land one batch: rows and NOTIFYs committed, dead letters confirmed, then one ack."""
        self.metrics.consumed.inc(len(batch))
        given_up, fresh = [], []
        for message, _at in batch:
            if message.redelivered and self._ledger.redelivered(message.routing_key or "", message.body):
                given_up.append((message, "gave up: delivered %d times without landing" % self._ledger.limit))
            else:
                fresh.append((message, message.body))
        decoded = decode_batch(fresh)
        codes = stream_codes(decoded)
        stream_ids = dict(await (await pg.execute(ACTIVE_STREAMS, (codes,))).fetchall()) if codes else {}
        plan = plan_landing(decoded, stream_ids)
        plan.dead.extend(given_up)
        if plan.rows:
            try:
                await self._commit_rows(pg, plan.rows)
            except RowRefused as exc:
                _logger.warning("batch refused by PostgreSQL (%s); landing its %d rows one by one", exc.reason, len(plan.rows))
                await self._commit_one_by_one(pg, plan)
        # Confirmed together: the broker confirms in batches, one round trip for them all.
        await asyncio.gather(*(self._dead_letter(dead_exchange, message, reason) for message, reason in plan.dead))
        await batch[-1][0].ack(multiple=True)
        self.metrics.batch_size.observe(len(batch))
        self.metrics.batch_latency.observe(time.perf_counter() - batch[0][1])

    async def _commit_rows(self, pg: psycopg.AsyncConnection, rows: Sequence[LandingRow]) -> None:
        """Insert ``rows`` and NOTIFY the new ones in one transaction; RowRefused if the data is refused."""
        try:
            async with pg.transaction():
                cursor = await pg.execute(
                    INSERT_ROWS, ([r.stream_id for r in rows], [r.external_id for r in rows], [r.payload for r in rows])
                )
                ids = [row_id for (row_id,) in await cursor.fetchall()]
                if ids:
                    await pg.execute(NOTIFY_ALL, (PG_CHANNEL, list(encode_notify_payloads(LANDING_MODEL, Op.CREATE, ids))))
        except psycopg.Error as exc:
            if is_row_fault(exc.sqlstate) and not pg.broken:
                raise RowRefused(exc) from exc
            raise
        self.metrics.landed.inc(len(ids))
        self.metrics.duplicates.inc(len(rows) - len(ids))

    async def _commit_one_by_one(self, pg: psycopg.AsyncConnection, plan: LandingPlan) -> None:
        """Isolate what PostgreSQL refuses: every other row of the batch still lands."""
        for row, message in zip(plan.rows, plan.row_messages, strict=True):
            try:
                await self._commit_rows(pg, [row])
            except RowRefused as exc:
                plan.dead.append((message, exc.reason))

    async def _dead_letter(self, dead_exchange: AbstractExchange, message: AbstractIncomingMessage, reason: str) -> None:
        headers = encodable_headers(message.headers or {})
        headers[REASON_HEADER] = reason
        await dead_exchange.publish(
            aio_pika.Message(
                message.body,
                headers=headers,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message.message_id,
                content_type=message.content_type,
            ),
            routing_key=self.settings.db_name,
        )
        label = reason.split(":", 1)[0]
        self.metrics.dead.labels(label).inc()
        _logger.warning("dead-lettered message_id=%s reason=%s", message.message_id, reason)


def main(argv: Sequence[str] | None = None) -> int:
    return daemon_main(
        "zero-sudo-landing", __doc__.splitlines()[0], argv, lambda s: (LandingDaemon(s), s.landing_http_host, s.landing_http_port)
    )


if __name__ == "__main__":
    sys.exit(main())
