"""The poller daemon: sources that must be polled, published to the ingestion exchange.

Each source (``--poller-sources``, a JSON file; see the README) is polled every
``interval_s`` with ±10 % jitter, at most ``poller_concurrency`` at a time, each fetch bounded
by ``poller_timeout_ms``. Requests are conditional (``If-None-Match`` / ``If-Modified-Since``),
so an unchanged source costs a 304 and publishes nothing. A failing source backs off
exponentially from its interval, and after five failures in a row its circuit opens: it is
tried once per minute (or per interval, if longer) until it answers. An answer is read whole,
up to MAX_ANSWER_BYTES; anything wrong with it (too large, not JSON, nested too deeply) fails
that source only. Every item of an answer becomes one persistent, confirmed message on the
exchange webhook data goes to; the landing daemon de-duplicates on
(stream, external ID), so polling the same data twice lands it once. The validators of an
answer are remembered only after all its messages are confirmed: a crash re-polls, it never
skips.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

import aio_pika
import aiohttp
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from zero_sudo_bus.backoff import Backoff
from zero_sudo_bus.ingest import EXCHANGE, routing_key, topology

from .amqp_session import LIVENESS_CHECK_S, amqp_connection, connection_lost, declare_topology
from .errors import ConfigurationError, ConnectionLost, ZeroSudoDaemonError
from .polling import (
    CircuitBreaker,
    ConditionalState,
    Source,
    decode_answer,
    extract_messages,
    jittered,
    load_sources,
    retry_backoff,
)
from .runtime import Role, daemon_main, supervise, task_group, wait_or_stop
from .settings import Settings

_logger = logging.getLogger("zero_sudo.poller")

CLIENT_NAME = "zero_sudo_poller"
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # one answer is held in memory while it is parsed
# Read at most this much at a time: memory stays within MAX_ANSWER_BYTES plus one read.
READ_CHUNK_BYTES = 256 * 1024
PUBLISH_CHUNK = 500  # confirmations awaited together: the broker confirms in batches too
BREAKER_THRESHOLD = 5
BREAKER_COOLDOWN_S = 60.0
MAX_ERROR_CHARS = 300  # of a failed poll's error in the log: a source's text must not flood it

# Anything the broker answers (channel closed, publish refused): the poll is not remembered
# as done, so a new session polls it again after a backoff.
TRANSIENT_ERRORS = (
    OSError,
    asyncio.TimeoutError,
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
)


class FetchFailed(ZeroSudoDaemonError):
    """A source answered badly (HTTP error, not JSON, too large): counted against its circuit."""


# What one poll of one source may raise that is that source's failure, not the poller's. An
# answer's own errors arrive as polling.AnswerUnusable (a ValueError); RecursionError and
# MemoryError are here as well because they must never end the loop of every source.
FETCH_ERRORS = (FetchFailed, aiohttp.ClientError, asyncio.TimeoutError, ValueError, RecursionError, MemoryError)


@dataclass
class SourceState:
    breaker: CircuitBreaker
    backoff: Backoff
    conditional: ConditionalState = field(default_factory=ConditionalState)


class PollerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.fetches = Counter("zero_sudo_poller_fetches", "fetches by outcome", ["source", "outcome"], registry=r)
        self.published = Counter("zero_sudo_poller_published", "messages published (confirmed)", ["source"], registry=r)
        self.rejected = Counter("zero_sudo_poller_rejected_items", "items without a usable external ID", ["source"], registry=r)
        self.circuit_open = Gauge("zero_sudo_poller_circuit_open", "1 while a source's circuit is open", ["source"], registry=r)
        self.fetch_seconds = Histogram(
            "zero_sudo_poller_fetch_seconds", "fetch and publish time of one poll", ["source"], registry=r
        )


class Poller:
    def __init__(
        self,
        settings: Settings,
        sources: Sequence[Source],
        metrics: PollerMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.sources = list(sources)
        self.metrics = metrics or PollerMetrics()
        self.registry = self.metrics.registry
        self.rng = rng or random.Random()
        self.role = Role.STARTING
        self._slots = asyncio.Semaphore(settings.poller_concurrency)
        self._states = {
            s.name: SourceState(
                CircuitBreaker(BREAKER_THRESHOLD, BREAKER_COOLDOWN_S),
                retry_backoff(s.interval_s, self.rng),
            )
            for s in self.sources
        }

    def health(self) -> tuple[bool, dict[str, object]]:
        return self.role is Role.POLLING, {"role": self.role, "sources": len(self.sources)}

    async def run(self, stopping: asyncio.Event) -> None:
        def on_failure(_exc: BaseException) -> None:
            self.role = Role.RECOVERING

        await supervise("poller", lambda: self._session(stopping), stopping, TRANSIENT_ERRORS, on_failure=on_failure)

    async def _session(self, stopping: asyncio.Event) -> None:
        async with amqp_connection(self.settings.amqp_url, CLIENT_NAME) as amqp:
            channel = await amqp.channel(publisher_confirms=True)
            exchanges, _queues = await declare_topology(channel, topology(self.settings.db_name))
            exchange = exchanges[EXCHANGE]
            timeout = aiohttp.ClientTimeout(total=self.settings.poller_timeout_ms / 1000)
            async with aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": "zero_sudo-poller"}) as http:
                self.role = Role.POLLING
                _logger.info("poller polling sources=%d concurrency=%d", len(self.sources), self.settings.poller_concurrency)
                # One source's publishing failure, or RabbitMQ gone, ends the session (and every
                # poll in flight); stopping lets each source finish the poll in hand.
                async with task_group() as tasks:
                    for s in self.sources:
                        tasks.create_task(self._poll_forever(s, http, exchange, stopping), name="poll:" + s.name)
                    watch = tasks.create_task(self._watch_amqp(amqp, channel), name="poll:amqp")
                    await stopping.wait()
                    watch.cancel()
                self.role = Role.STOPPED

    async def _watch_amqp(self, amqp: AbstractConnection, channel: AbstractChannel) -> NoReturn:
        """Raise :class:`ConnectionLost` as soon as RabbitMQ is gone: closed, or found dead by
        the check every :data:`LIVENESS_CHECK_S` (a dead socket is not always reported)."""
        while not connection_lost(amqp, channel):
            try:
                async with asyncio.timeout(LIVENESS_CHECK_S):
                    await amqp.closed()  # a fresh shielded future each time: a timeout cancels only it
                break
            except TimeoutError:
                continue
        raise ConnectionLost("RabbitMQ connection lost")

    async def _poll_forever(
        self, source: Source, http: aiohttp.ClientSession, exchange: AbstractExchange, stopping: asyncio.Event
    ) -> None:
        state = self._states[source.name]
        delay = self.rng.uniform(0, min(source.interval_s, 1.0))  # first polls spread, not delayed
        while not await wait_or_stop(stopping, delay):
            delay = jittered(source.interval_s, self.rng)
            if not state.breaker.allows(time.monotonic()):
                continue
            async with self._slots:
                started = time.perf_counter()
                try:
                    outcome = await self._poll_once(source, state, http, exchange)
                except FETCH_ERRORS as exc:
                    state.breaker.failure(time.monotonic())
                    delay = max(delay, state.backoff.next_delay())
                    outcome = "failed"
                    _logger.warning(
                        "poll failed source=%s error=%s: %s failures=%d retry_in=%.1fs",
                        source.name,
                        type(exc).__name__,
                        str(exc)[:MAX_ERROR_CHARS],
                        state.breaker.failures,
                        delay,
                    )
                else:
                    state.breaker.success()
                    state.backoff.reset()
                self.metrics.fetches.labels(source.name, outcome).inc()
                self.metrics.circuit_open.labels(source.name).set(0 if state.breaker.opened_at is None else 1)
                self.metrics.fetch_seconds.labels(source.name).observe(time.perf_counter() - started)

    async def _poll_once(
        self, source: Source, state: SourceState, http: aiohttp.ClientSession, exchange: AbstractExchange
    ) -> str:
        async with http.get(source.url, headers=state.conditional.request_headers()) as response:
            if response.status == 304:
                return "not_modified"
            if response.status != 200:
                raise FetchFailed("HTTP %d" % response.status)
            body = await read_answer(response.content, response.content_length, MAX_ANSWER_BYTES)
            validators = response.headers
        extracted = extract_messages(source, decode_answer(body))
        del body  # the parsed answer is enough: do not hold both while publishing
        if extracted.rejected:
            self.metrics.rejected.labels(source.name).inc(len(extracted.rejected))
            # One line per poll, not per item: a source of a million bad items must not flood the log.
            _logger.warning(
                "poll items rejected source=%s count=%d first=%s", source.name, len(extracted.rejected), extracted.rejected[0]
            )
        key = routing_key(self.settings.db_name, source.stream)
        outgoing = list(zip(extracted.messages, extracted.bodies, strict=True))
        for start in range(0, len(outgoing), PUBLISH_CHUNK):
            chunk = outgoing[start : start + PUBLISH_CHUNK]
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(payload, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=m.external_id),
                        key,
                    )
                    for m, payload in chunk
                )
            )
            self.metrics.published.labels(source.name).inc(len(chunk))
        state.conditional.remember(validators)  # only once everything is confirmed
        return "fetched"


async def read_answer(content: aiohttp.StreamReader, declared_length: int | None, limit: int) -> bytearray:
    """The whole body, up to ``limit`` bytes, else FetchFailed.

    ``read(n)`` alone returns what is buffered so far, which for a body sent in pieces is a
    truncated answer. A body is read to its end a chunk at a time, and reading stops as
    soon as it passes the limit, so that an endless or huge answer costs one chunk more.
    """
    if declared_length is not None and declared_length > limit:
        raise FetchFailed("answer of %d bytes, larger than %d bytes" % (declared_length, limit))
    body = bytearray()
    async for chunk in content.iter_chunked(READ_CHUNK_BYTES):
        body += chunk
        if len(body) > limit:
            raise FetchFailed("answer larger than %d bytes" % limit)
    return body


def read_sources(path: str) -> list[Source]:
    if not path:
        return []
    try:
        with open(path, encoding="utf-8") as handle:
            return load_sources(handle.read())
    except OSError as exc:
        raise ConfigurationError("cannot read poller sources %s: %s" % (path, exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    return daemon_main(
        "zero-sudo-poller",
        __doc__.splitlines()[0],
        argv,
        lambda s: (Poller(s, read_sources(s.poller_sources)), s.poller_http_host, s.poller_http_port),
    )


if __name__ == "__main__":
    sys.exit(main())
