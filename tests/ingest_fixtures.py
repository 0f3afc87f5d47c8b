"""Ingestion test helpers: the addon's two tables in a plain database, a landing daemon
process, and a confirmed publisher. Real PostgreSQL and RabbitMQ throughout."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import aio_pika
import psycopg

from conftest import DaemonProcess, pg_conninfo
from zero_sudo_bus.ingest import (
    EXCHANGE,
    REASON_HEADER,
    IngestMessage,
    dead_letter_queue,
    encode_ingest_message,
    landing_queue,
    routing_key,
    topology,
)
from zero_sudo_bus.landing_table import MINIMAL_DDL
from zero_sudo_daemons.amqp_session import declare_topology

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
T = TypeVar("T")


def create_schema(db: str, *streams: str) -> dict[str, int]:
    with psycopg.connect(pg_conninfo(db)) as conn:
        conn.execute(MINIMAL_DDL)
        return {
            code: conn.execute(
                "INSERT INTO zero_sudo_ingest_stream (code, name) VALUES (%s, %s) RETURNING id", (code, code)
            ).fetchone()[0]
            for code in streams
        }


def landed(db: str) -> list[tuple[str, str, dict]]:
    with psycopg.connect(pg_conninfo(db)) as conn:
        return conn.execute(
            "SELECT s.code, l.external_id, l.payload FROM zero_sudo_ingest_landing l JOIN zero_sudo_ingest_stream s ON s.id = l.stream_id ORDER BY l.id"
        ).fetchall()


def landed_count(db: str) -> int:
    with psycopg.connect(pg_conninfo(db)) as conn:
        return conn.execute("SELECT count(*) FROM zero_sudo_ingest_landing").fetchone()[0]


class LandingProcess(DaemonProcess):
    def __init__(self, db: str, *extra: str) -> None:
        super().__init__("zero_sudo_daemons.landing", "--landing-http-port", "--db-name", db, "--amqp-url", AMQP_URL, *extra)

    def wait_consuming(self, timeout: float = 20.0) -> None:
        self.wait_role("consuming", timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


async def publish(db: str, messages: list[IngestMessage], raw: list[tuple[str, bytes]] = ()) -> None:
    """Publish persistent messages with publisher confirms, as the controller and poller do."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await ingest_exchange(channel, db)
        pending = []
        for message in messages:
            body = encode_ingest_message(message)
            pending.append(
                exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=message.external_id),
                    routing_key(db, message.stream),
                )
            )
            if len(pending) >= 1000:
                await _confirm_all(pending)
        for stream, body in raw:
            pending.append(
                exchange.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key(db, stream))
            )
        await _confirm_all(pending)


async def _confirm_all(pending: list) -> None:
    await asyncio.gather(*pending)
    pending.clear()


async def ingest_exchange(channel: aio_pika.abc.AbstractChannel, db: str) -> aio_pika.abc.AbstractExchange:
    """The exchange producers publish to, with the database's whole topology declared."""
    exchanges, _queues = await declare_topology(channel, topology(db))
    return exchanges[EXCHANGE]


async def declare_queues(db: str) -> None:
    """Declare the database's topology before publishing, so nothing is routed to nowhere."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        await declare_topology(await connection.channel(), topology(db))


async def delete_queues(db: str) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for name in (landing_queue(db), dead_letter_queue(db)):
            await channel.queue_delete(name)


async def drain(queue_name: str, convert: Callable[[aio_pika.abc.AbstractIncomingMessage], T]) -> list[T]:
    """Take every message waiting in ``queue_name`` (acknowledged), converted."""
    connection = await aio_pika.connect(AMQP_URL)
    out = []
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        while (message := await queue.get(fail=False)) is not None:
            out.append(convert(message))
            await message.ack()
    return out


async def dead_letters(db: str) -> list[tuple[bytes, str]]:
    return await drain(dead_letter_queue(db), lambda message: (message.body, message.headers.get(REASON_HEADER)))


async def queue_state(db: str) -> tuple[int, int]:
    """(messages ready, consumers) of the landing queue."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(landing_queue(db), passive=True)
        return queue.declaration_result.message_count, queue.declaration_result.consumer_count


class RawHeaderString(str):
    """A header value sent as an AMQP long string of arbitrary bytes (``raw``), not UTF-8.

    The AMQP encoder calls ``value.encode("utf-8")``; this hands it the raw bytes instead, as
    a producer in another language may.
    """

    raw: bytes

    def __new__(cls, raw: bytes) -> RawHeaderString:
        value = super().__new__(cls, raw.decode("latin-1"))
        value.raw = raw
        return value

    def encode(self, *_args: object, **_kwargs: object) -> bytes:  # type: ignore[override]
        return self.raw


async def publish_raw(db: str, stream: str, bodies: list[bytes], headers: dict | None = None) -> None:
    """Publish ``bodies`` as they are (confirmed, persistent), with ``headers`` on each."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await ingest_exchange(channel, db)
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(body, headers=headers, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key(db, stream),
                )
                for body in bodies
            )
        )


async def dead_letter_messages(db: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message of the dead-letter queue, whole (body and headers)."""
    return await drain(dead_letter_queue(db), lambda message: message)
