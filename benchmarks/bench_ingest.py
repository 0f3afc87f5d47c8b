"""make bench-ingest: how close the landing daemon comes to the broker's own limit.

In one run, with the publisher in this process and the consumer in another:

1. broker: N persistent, confirmed messages published to a queue of our own and consumed
   with batched acks (prefetch 1 000) by a bare aio-pika consumer: no database;
2. landed: the same N messages through the ingestion exchange, consumed by the real landing
   daemon, landed and committed in PostgreSQL (end: the NOTIFY of the last landed row);
3. latency: at half of (2)'s rate for a fixed time, each message stamped with its publish
   time; publish-to-committed is measured per row when its NOTIFY arrives.

Last line: BENCH ingest broker_msgs_per_s=… landed_msgs_per_s=… ratio=… p99_land_ms=…
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request

import aio_pika
import uvloop

from zero_sudo_bus.ingest import EXCHANGE, IngestMessage, encode_ingest_message, landing_queue, routing_key, topology
from zero_sudo_bus.landing_table import MINIMAL_DDL, STREAM_TABLE
from zero_sudo_bus.protocol import PG_CHANNEL, ChangeBatch, decode_notify_payload
from zero_sudo_daemons.amqp_session import declare_topology
from zero_sudo_daemons.pg_async import AsyncPgConnection

PG_HOST = os.environ.get("ZERO_SUDO_DB_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("ZERO_SUDO_DB_PORT", "5432"))
AMQP_URL = os.environ.get("ZERO_SUDO_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
CONFIRM_WINDOW = 1000  # publishes in flight before awaiting their confirms


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def publish(exchange: aio_pika.abc.AbstractExchange, key: str, bodies, rate: float | None = None) -> None:
    """Publish persistent messages with confirms, CONFIRM_WINDOW in flight; paced if ``rate``."""
    pending, started, sent = [], time.perf_counter(), 0
    for body in bodies:
        pending.append(exchange.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), key))
        sent += 1
        if len(pending) >= (CONFIRM_WINDOW if rate is None else max(1, int(rate / 200))):
            await asyncio.gather(*pending)
            pending.clear()
            if rate is not None:
                ahead = sent / rate - (time.perf_counter() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
    await asyncio.gather(*pending)


def bodies(count: int, offset: int = 0, stamped: bool = False):
    for n in range(offset, offset + count):
        data = {"n": n, "t": time.time()} if stamped else {"n": n, "pad": "x" * 64}
        yield encode_ingest_message(IngestMessage("bench", str(n), data))


async def raw_consumer(queue_name: str, count: int) -> None:
    """Child-process mode: consume ``count`` messages with batched acks, print the end time."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1000)
        queue = await channel.declare_queue(queue_name, durable=True)
        done, received = asyncio.Event(), 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal received
            received += 1
            if received % 500 == 0 or received == count:
                await message.ack(multiple=True)
            if received == count:
                done.set()

        await queue.consume(on_message)
        print("ready", flush=True)
        await done.wait()
        print(time.time(), flush=True)


async def phase_broker(channel: aio_pika.abc.AbstractChannel, count: int) -> float:
    queue_name = "zero_sudo.bench.raw." + secrets.token_hex(3)
    queue = await channel.declare_queue(queue_name, durable=True)
    consumer = subprocess.Popen(
        [sys.executable, __file__, "--raw-consumer", queue_name, str(count)], stdout=subprocess.PIPE, text=True
    )
    assert consumer.stdout.readline().strip() == "ready"
    started = time.time()
    await publish(channel.default_exchange, queue_name, bodies(count))
    finished = float(await asyncio.to_thread(consumer.stdout.readline))
    consumer.wait(10)
    await queue.delete(if_unused=False, if_empty=False)
    return count / (finished - started)


class LandedClock:
    """LISTENs like the relay: records when each landed row's NOTIFY arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}
        self.changed = asyncio.Event()

    def on_notifications(self, batch) -> None:
        now = time.time()
        for notify in batch:
            decoded = decode_notify_payload(notify.payload)
            if isinstance(decoded, ChangeBatch):
                for row_id in decoded.ids:
                    self.arrivals[row_id] = now
        self.changed.set()

    async def wait_for(self, total: int) -> float:
        while len(self.arrivals) < total:
            self.changed.clear()
            async with asyncio.timeout(60):
                await self.changed.wait()
        return max(self.arrivals.values())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def main(args: argparse.Namespace) -> None:
    db = "zs_bench_ingest_" + secrets.token_hex(3)
    admin = await AsyncPgConnection.connect(5.0, host=PG_HOST, port=PG_PORT, dbname="postgres")
    await admin.execute('CREATE DATABASE "%s"' % db)
    daemon = None
    connection = await aio_pika.connect(AMQP_URL)
    try:
        pg = await AsyncPgConnection.connect(5.0, host=PG_HOST, port=PG_PORT, dbname=db)
        await pg.execute(MINIMAL_DDL)
        await pg.execute("INSERT INTO %s (code, name) VALUES ('bench', 'bench')" % STREAM_TABLE)
        channel = await connection.channel(publisher_confirms=True)
        broker_rate = await phase_broker(channel, args.count)
        print("1. broker: %.0f msgs/s publish -> consume, no database" % broker_rate, flush=True)

        exchanges, _queues = await declare_topology(channel, topology(db))
        exchange = exchanges[EXCHANGE]
        clock = LandedClock()
        pg.listen_with(clock.on_notifications)
        await pg.execute('LISTEN "%s"' % PG_CHANNEL)
        port = _free_port()
        daemon = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "zero_sudo_daemons.landing",
                "--db-name",
                db,
                "--db-host",
                PG_HOST,
                "--db-port",
                str(PG_PORT),
                "--amqp-url",
                AMQP_URL,
                "--landing-http-port",
                str(port),
                "--log-level",
                "WARNING",
                "--landing-batch-size",
                str(args.batch_size),
                "--landing-prefetch",
                str(args.batch_size * 4),
            ],
        )
        await wait_consuming(port)
        started = time.time()
        await publish(exchange, routing_key(db, "bench"), bodies(args.count))
        finished = await clock.wait_for(args.count)
        landed_rate = args.count / (finished - started)
        print(
            "2. landed: %.0f msgs/s publish -> committed in PostgreSQL (ratio %.2f)" % (landed_rate, landed_rate / broker_rate),
            flush=True,
        )

        rate = landed_rate / 2
        total = int(rate * args.seconds)
        before = len(clock.arrivals)
        await publish(exchange, routing_key(db, "bench"), bodies(total, offset=args.count, stamped=True), rate=rate)
        await clock.wait_for(before + total)
        rows = await pg.fetchall("SELECT id, (payload->>'t')::float FROM zero_sudo_ingest_landing WHERE payload ? 't'", (), 60)
        latencies = [(clock.arrivals[row_id] - stamp) * 1000 for row_id, stamp in rows]
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        print(
            "3. at %.0f msgs/s for %ds: publish-to-committed p50 %.1f ms, p99 %.1f ms (%d messages)"
            % (rate, args.seconds, p50, p99, len(latencies)),
            flush=True,
        )
        pg.close()
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(20)
        cleanup = await connection.channel()
        await cleanup.queue_delete(landing_queue(db))
        await connection.close()
        await admin.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db)
        admin.close()
    print(
        "BENCH ingest broker_msgs_per_s=%.0f landed_msgs_per_s=%.0f ratio=%.2f p99_land_ms=%.1f"
        % (broker_rate, landed_rate, landed_rate / broker_rate, p99)
    )


async def wait_consuming(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=1) as resp:
                if json.loads(resp.read())["role"] == "consuming":
                    return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("the landing daemon did not start consuming")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000, help="messages in phases 1 and 2")
    parser.add_argument("--seconds", type=int, default=10, help="length of phase 3")
    parser.add_argument("--batch-size", type=int, default=500, help="the landing daemon's batch size")
    parser.add_argument("--raw-consumer", nargs=2, metavar=("QUEUE", "COUNT"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.raw_consumer:
        uvloop.run(raw_consumer(arguments.raw_consumer[0], int(arguments.raw_consumer[1])))
    else:
        uvloop.run(main(arguments))
