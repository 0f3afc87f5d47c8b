"""make bench-drivers: which PostgreSQL driver should the daemons LISTEN with?

Each candidate, on uvloop, drains the same backlog: N distinct NOTIFYs committed in one
transaction (by psql, another process) while it listens, handing each payload to the same
Python function. What is measured is the reading side only: the CPU
the listening process spends per notification, and the wall-clock rate. The relay is
CPU-bound on a machine it shares with PostgreSQL, so CPU per notification decides.
Last line: BENCH pg_listen asyncpg_us=… psycopg3_us=… psycopg2_us=… (CPU µs per notification)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import time

import asyncpg
import psycopg
import psycopg2
import psycopg2.extensions
import uvloop

PG_HOST = os.environ.get("ZERO_SUDO_DB_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("ZERO_SUDO_DB_PORT", "5432"))
CHANNEL = "zero_sudo_bench"


def conninfo(db: str) -> str:
    return "host=%s port=%d dbname=%s" % (PG_HOST, PG_PORT, db)


async def send_backlog(db: str, count: int) -> None:
    """Commit the backlog from another process (psql), so its CPU is not counted here."""
    sql = "SELECT count(pg_notify('%s', '[1,2,' || i || ']')) FROM generate_series(1, %d) AS i" % (CHANNEL, count)
    proc = await asyncio.create_subprocess_exec(
        "psql", "-qAt", "-h", PG_HOST, "-p", str(PG_PORT), "-d", db, "-c", sql, stdout=asyncio.subprocess.DEVNULL
    )
    if await proc.wait() != 0:
        raise SystemExit("psql failed to send the backlog")


def consume(payload: str) -> int:
    """The same per-notification Python call for every driver (the relay decodes each one)."""
    return len(payload)


async def drain_asyncpg(db: str, count: int) -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, database=db)
    done, received = asyncio.Event(), 0

    def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        nonlocal received
        consume(payload)
        received += 1
        if received == count:
            done.set()

    await conn.add_listener(CHANNEL, on_notify)
    await send_backlog(db, count)
    await done.wait()
    await conn.close()


async def drain_psycopg3(db: str, count: int) -> None:
    conn = await psycopg.AsyncConnection.connect(conninfo(db), autocommit=True)
    await conn.execute("LISTEN %s" % CHANNEL)
    await send_backlog(db, count)
    received = 0
    async for notify in conn.notifies():
        consume(notify.payload)
        received += 1
        if received == count:
            break
    await conn.close()


async def drain_psycopg2(db: str, count: int) -> None:
    conn = psycopg2.connect(conninfo(db))
    conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    conn.cursor().execute("LISTEN %s" % CHANNEL)
    loop = asyncio.get_running_loop()
    done, received = asyncio.Event(), 0

    def on_readable() -> None:
        nonlocal received
        conn.poll()
        for notify in conn.notifies:
            consume(notify.payload)
        received += len(conn.notifies)
        conn.notifies.clear()
        if received >= count:
            done.set()

    loop.add_reader(conn.fileno(), on_readable)
    await send_backlog(db, count)
    await done.wait()
    loop.remove_reader(conn.fileno())
    conn.close()


DRIVERS = {"asyncpg": drain_asyncpg, "psycopg3": drain_psycopg3, "psycopg2": drain_psycopg2}


async def measure(driver: str, db: str, count: int) -> tuple[float, float]:
    """(CPU µs per notification, notifications per second of wall time)."""
    cpu, wall = time.process_time(), time.perf_counter()
    await DRIVERS[driver](db, count)
    return (time.process_time() - cpu) / count * 1e6, count / (time.perf_counter() - wall)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    db = "zs_bench_drivers_" + secrets.token_hex(3)
    with psycopg.connect(conninfo("postgres"), autocommit=True) as admin:
        admin.execute('CREATE DATABASE "%s"' % db)
    try:
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in DRIVERS}
        for _ in range(args.repeats):
            for name in DRIVERS:  # interleaved, so that noise hits every driver alike
                results[name].append(await measure(name, db, args.count))
        medians = {}
        for name, runs in results.items():
            medians[name] = statistics.median(cpu for cpu, _rate in runs)
            print(
                "%-9s CPU %.2f µs/notification (median of %d), %.0f notifications/s wall"
                % (name, medians[name], len(runs), statistics.median(rate for _cpu, rate in runs))
            )
    finally:
        with psycopg.connect(conninfo("postgres"), autocommit=True) as admin:
            admin.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db)
    print(
        "BENCH pg_listen asyncpg_us=%.2f psycopg3_us=%.2f psycopg2_us=%.2f"
        % (medians["asyncpg"], medians["psycopg3"], medians["psycopg2"])
    )


if __name__ == "__main__":
    uvloop.run(main())
