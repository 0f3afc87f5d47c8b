"""make fuzz-landing: the landing daemon against hostile input and two SIGKILLs, nothing lost.

Publishes N messages (default 100 000) to the ingestion exchange of a fresh database: valid
messages interleaved with random bytes, random JSON (deep nesting, lone surrogates, numbers
out of range, NULs, NaN, wrong envelope types) and random headers (every AMQP type, strings
that are not UTF-8, nested tables), while a real landing daemon consumes them; the daemon is
SIGKILLed twice and restarted. Every message carries its number as AMQP message ID, so the
dead letters can be told apart.

Passes when every valid message landed exactly once, every other one was dead-lettered with a
reason, and the daemon never exited on its own. Last line:
BENCH fuzz messages=… valid=… landed=… dead_lettered=… lost=… daemon_exits=…
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time

import aio_pika
import psycopg
from ingest_fixtures import (
    AMQP_URL,
    LandingProcess,
    RawHeaderString,
    create_schema,
    declare_queues,
    delete_queues,
    ingest_exchange,
)

from conftest import pg_conninfo
from zero_sudo_bus.ingest import REASON_HEADER, dead_letter_queue, routing_key

STREAM = "fuzz"
CONFIRM_WINDOW = 1000  # publishes in flight before awaiting their confirms


def random_text(rng: random.Random) -> str:
    alphabet = 'aé€😀\u0000\ud800\udfff"\\\n'
    return "".join(
        rng.choice(alphabet) if rng.random() < 0.3 else chr(rng.randrange(32, 127)) for _ in range(rng.randrange(0, 20))
    )


def random_json(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return rng.randrange(-(10**30), 10**30)
    if kind == 1:
        return rng.choice([0.5, -1e-300, 1.7976931348623157e308, 123.456])
    if kind == 2:
        return random_text(rng)
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return "plain"
    if kind == 5:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {random_text(rng): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def hostile_body(rng: random.Random, n: int) -> bytes:
    """A message that can never land; which kind, drawn at random."""
    envelope = '{"v":1,"stream":"%s","external_id":"x%d","data":%%s}' % (STREAM, n)
    kind = rng.randrange(10)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 200))
    if kind == 1:
        depth = rng.choice([1_000, 10_000, 100_000])
        return (envelope % ("[" * depth + "]" * depth)).encode()
    if kind == 2:
        return (envelope % '{"s":"a\\ud800b"}').encode()
    if kind == 3:
        return (
            envelope % rng.choice(['{"n":1e400}', '{"n":-1e999}', '{"n":NaN}', '{"n":Infinity}', '{"n":1%s}' % ("0" * 5000)])
        ).encode()
    if kind == 4:
        return (envelope % '{"s":"nul\\u0000here"}').encode()
    if kind == 5:
        return json.dumps(
            {"v": 1, "stream": STREAM, "external_id": rng.choice([None, True, 1.5, [], {}, "", "x" * 300])}
        ).encode()
    if kind == 6:
        return json.dumps({"v": rng.choice([0, 2, "1", None]), "stream": STREAM, "external_id": "e%d" % n, "data": {}}).encode()
    if kind == 7:
        return json.dumps({"v": 1, "stream": "no-such-stream", "external_id": "e%d" % n, "data": {}}).encode()
    if kind == 8:
        return json.dumps(random_json(rng)).encode("utf-8", "surrogatepass")
    return rng.randbytes(8) + b'{"v":1}'


def random_headers(rng: random.Random) -> dict | None:
    if rng.random() < 0.5:
        return None
    values = [
        lambda: rng.randrange(-(2**63), 2**63),
        lambda: rng.random(),
        lambda: rng.choice([True, False]),
        lambda: None,
        lambda: "ascii",
        lambda: "é€😀",
        lambda: RawHeaderString(rng.randbytes(rng.randrange(1, 40))),  # not UTF-8
        lambda: bytearray(rng.randbytes(rng.randrange(0, 40))),
        lambda: {"nested": RawHeaderString(b"\xff\xfe"), "n": 1},
        lambda: ["a", 1, RawHeaderString(b"\xc3\x28")],
        lambda: "y" * 10_000,
    ]
    return {"x-h%d" % i: rng.choice(values)() for i in range(rng.randrange(1, 5))}


async def publish_all(db: str, messages: list[tuple[str, bytes, dict | None]]) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await ingest_exchange(channel, db)
        pending = []
        for message_id, body, headers in messages:
            message = aio_pika.Message(
                body, headers=headers, message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            )
            pending.append(exchange.publish(message, routing_key(db, STREAM)))
            if len(pending) >= CONFIRM_WINDOW:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)


async def dead_letter_ids(db: str) -> dict[str, str]:
    """Message ID → reason of every dead letter so far (taken off the queue)."""
    connection = await aio_pika.connect(AMQP_URL)
    found = {}
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(dead_letter_queue(db), passive=True)
        while (message := await queue.get(fail=False)) is not None:
            found[message.message_id] = message.headers.get(REASON_HEADER) or ""
            await message.ack()
    return found


def landed_ids(db: str) -> list[str]:
    with psycopg.connect(pg_conninfo(db)) as conn:
        return [external_id for (external_id,) in conn.execute("SELECT external_id FROM zero_sudo_ingest_landing")]


def fuzz(db: str, total: int, kills: int, seed: int, timeout_s: float = 600.0) -> dict[str, int]:
    """Run the whole fuzz on database ``db``; the figures of the BENCH line."""
    rng = random.Random(seed)
    create_schema(db, STREAM)
    asyncio.run(declare_queues(db))
    messages, valid, hostile = [], set(), set()
    for n in range(total):
        message_id = "m%d" % n
        if rng.random() < 0.7:
            valid.add("e%d" % n)
            body = json.dumps({"v": 1, "stream": STREAM, "external_id": "e%d" % n, "data": {"n": n, "text": "é€😀"}}).encode()
        else:
            hostile.add(message_id)
            body = hostile_body(rng, n)
        messages.append((message_id, body, random_headers(rng)))

    exits = 0
    daemon = LandingProcess(db, "--log-level", "WARNING")
    try:
        daemon.wait_consuming()
        publisher = asyncio.get_event_loop_policy().new_event_loop()
        task = publisher.create_task(publish_all(db, messages))
        kill_at = [len(valid) * (k + 1) // (kills + 1) for k in range(kills)]
        dead: dict[str, str] = {}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            publisher.run_until_complete(asyncio.sleep(0.2))
            landed = len(landed_ids(db))
            if kill_at and landed >= kill_at[0]:
                kill_at.pop(0)
                daemon.kill()
                daemon = LandingProcess(db, "--log-level", "WARNING")
                daemon.wait_consuming()
            if daemon.proc.poll() is not None:
                exits += 1
                print("the daemon exited by itself (code %s):\n%s" % (daemon.proc.returncode, "".join(daemon.output[-30:])))
                daemon = LandingProcess(db, "--log-level", "WARNING")
                daemon.wait_consuming()
            if task.done() and landed >= len(valid):
                dead.update(asyncio.run(dead_letter_ids(db)))
                if hostile <= dead.keys():
                    break
        publisher.run_until_complete(task)
        publisher.close()
        if daemon.proc.poll() is not None:
            exits += 1
        rows = landed_ids(db)
    finally:
        daemon.kill()
        asyncio.run(delete_queues(db))
    unreasoned = [message_id for message_id, reason in dead.items() if not reason]
    lost = len(valid - set(rows)) + len(hostile - dead.keys())
    if unreasoned:
        print("dead letters without a reason: %d" % len(unreasoned))
    duplicates = len(rows) - len(set(rows))
    return {
        "messages": total,
        "valid": len(valid),
        "landed": len(set(rows)),
        "duplicates": duplicates,
        "dead_lettered": len(dead.keys() & hostile),
        "lost": lost + len(unreasoned),
        "daemon_exits": exits,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    db = "zs_fuzz_%d" % int(time.time())
    with psycopg.connect(pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute('CREATE DATABASE "%s"' % db)
    try:
        started = time.monotonic()
        figures = fuzz(db, args.messages, args.kills, args.seed)
        print("fuzz took %.0f s" % (time.monotonic() - started))
    finally:
        with psycopg.connect(pg_conninfo("postgres"), autocommit=True) as conn:
            conn.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db)
    print("BENCH fuzz " + " ".join("%s=%d" % item for item in figures.items()))
    ok = figures["lost"] == 0 and figures["daemon_exits"] == 0 and figures["duplicates"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
