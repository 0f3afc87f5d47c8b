"""The poller daemon: sources that must be polled, published to the ingestion exchange.

Each source (``--poller-sources``, a JSON file; see the README) is polled every
``interval_s`` with ±10 % jitter, at most ``poller_concurrency`` at a time, each fetch bounded
by ``poller_timeout_ms``. Requests are conditional (``If-None-Match`` / ``If-Modified-Since``),
so an unchanged source costs a 304 and publishes nothing. A failing source backs off
exponentially from its interval, and after five failures in a row its circuit opens: it is
tried once per minute until it answers. Every item of an answer becomes one persistent,
confirmed message on the exchange webhook data goes to; the landing daemon de-duplicates on
(stream, external ID), so polling the same data twice lands it once. The validators of an
answer are remembered only after all its messages are confirmed: a crash re-polls, it never
skips.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aio_pika
import aiohttp
import aiormq
from aio_pika.abc import AbstractExchange
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from zero_sudo_bus.backoff import Backoff
from zero_sudo_bus.ingest import EXCHANGE, encode_ingest_message, routing_key

from .amqp_session import LIVENESS_CHECK_S, amqp_connection, connection_lost
from .errors import ConfigurationError, ConnectionLost, ZeroSudoDaemonError
from .polling import CircuitBreaker, ConditionalState, Source, extract_messages, jittered, load_sources
from .runtime import daemon_main, supervise, wait_or_stop
from .settings import Settings

_logger = logging.getLogger("zero_sudo.poller")

CLIENT_NAME = "zero_sudo_poller"
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # one answer is held in memory while it is parsed
PUBLISH_CHUNK = 500  # confirmations awaited together: the broker confirms in batches too
BREAKER_THRESHOLD = 5
BREAKER_COOLDOWN_S = 60.0

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


FETCH_ERRORS = (FetchFailed, aiohttp.ClientError, asyncio.TimeoutError, ValueError)


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
        self.role = "starting"
        self._slots = asyncio.Semaphore(settings.poller_concurrency)
        self._states = {
            s.name: SourceState(
                CircuitBreaker(BREAKER_THRESHOLD, BREAKER_COOLDOWN_S),
                Backoff(base=s.interval_s, cap=BREAKER_COOLDOWN_S, rng=self.rng),
            )
            for s in self.sources
        }

    def health(self) -> tuple[bool, dict[str, object]]:
        return self.role == "polling", {"role": self.role, "sources": len(self.sources)}

    async def run(self, stopping: asyncio.Event) -> None:
        def on_failure(_exc: BaseException) -> None:
            self.role = "recovering"

        await supervise("poller", lambda: self._session(stopping), stopping, TRANSIENT_ERRORS, on_failure=on_failure)

    async def _session(self, stopping: asyncio.Event) -> None:
        async with amqp_connection(self.settings.amqp_url, CLIENT_NAME) as amqp:
            channel = await amqp.channel(publisher_confirms=True)
            exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
            timeout = aiohttp.ClientTimeout(total=self.settings.poller_timeout_ms / 1000)
            async with aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": "zero_sudo-poller"}) as http:
                self.role = "polling"
                _logger.info("poller polling sources=%d concurrency=%d", len(self.sources), self.settings.poller_concurrency)
                pollers = [
                    asyncio.create_task(self._poll_forever(s, http, exchange, stopping), name="poll:" + s.name)
                    for s in self.sources
                ]
                closed = asyncio.ensure_future(amqp.closed())
                stop = asyncio.ensure_future(stopping.wait())
                try:
                    done: set[asyncio.Future] = set()
                    while not done:
                        done, _ = await asyncio.wait(
                            {*pollers, closed, stop}, timeout=LIVENESS_CHECK_S, return_when=asyncio.FIRST_COMPLETED
                        )
                        if not done and connection_lost(amqp, channel):
                            raise ConnectionLost("RabbitMQ connection lost")
                    for task in done & set(pollers):
                        task.result()  # a publishing failure ends the session
                    if closed in done and not stopping.is_set():
                        raise ConnectionLost("RabbitMQ connection lost")
                    await asyncio.gather(*pollers)  # stopping: each finishes the poll in hand
                    self.role = "stopped"
                finally:
                    for task in (*pollers, closed, stop):
                        task.cancel()

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
                        "poll failed source=%s error=%r failures=%d retry_in=%.1fs",
                        source.name,
                        exc,
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
            body = await response.content.read(MAX_ANSWER_BYTES + 1)
            if len(body) > MAX_ANSWER_BYTES:
                raise FetchFailed("answer larger than %d bytes" % MAX_ANSWER_BYTES)
            answer = json.loads(body)
            validators = response.headers
        extracted = extract_messages(source, answer)
        for reason in extracted.rejected:
            self.metrics.rejected.labels(source.name).inc()
            _logger.warning("poll item rejected source=%s reason=%s", source.name, reason)
        key = routing_key(self.settings.db_name, source.stream)
        for start in range(0, len(extracted.messages), PUBLISH_CHUNK):
            chunk = extracted.messages[start : start + PUBLISH_CHUNK]
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            encode_ingest_message(m), delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=m.external_id
                        ),
                        key,
                    )
                    for m in chunk
                )
            )
            self.metrics.published.labels(source.name).inc(len(chunk))
        state.conditional.remember(validators)  # only once everything is confirmed
        return "fetched"


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
