"""make bench-relay: what the relay costs PostgreSQL, what it loses, and how late it delivers.

In one run, on one machine whose two cores PostgreSQL, pgbench and the listeners share:

(a) pgbench commits ``pg_notify`` transactions as fast as PostgreSQL takes them (several
    client connections) for a fixed time while a bare listener (the relay's own driver,
    psycopg2 on uvloop) only counts them;
(b) the same load with the relay attached and a Redis subscriber counting what arrives;
    (a) and (b) alternate for several rounds and the medians are compared;
(c) at half of (b)'s rate, each event is timed from its transaction to the Redis subscriber:
    every ID is ``clock_timestamp()`` in µs × 64 + pgbench's client id, taken inside the
    transaction just before its commit, so a latency includes the commit itself.

A throughput is events delivered / (last delivery - load start): a consumer that falls
behind and catches up after the load stops is not credited for it.
Last line: BENCH relay bare_listener_tps=… relay_tps=… ratio=… lost=… p50_ms=… p99_ms=…
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import hiredis
import uvloop

from zero_sudo_bus.protocol import PG_CHANNEL, bus_channel, model_key
from zero_sudo_daemons.pg_async import AsyncPgConnection

PG_HOST = os.environ.get("ZERO_SUDO_DB_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("ZERO_SUDO_DB_PORT", "5432"))
REDIS_URL = os.environ.get("ZERO_SUDO_REDIS_URL", "redis://127.0.0.1:6379/0")
CLIENT_BITS = 64  # pgbench client ids are folded into the low bits of each ID

PGBENCH_SCRIPT = """\\set key %d
SELECT pg_notify('%s', '[' || :key || ',2,' || ((extract(epoch from clock_timestamp()) * 1000000)::bigint * %d + :client_id) || ']');
""" % (model_key("res.partner"), PG_CHANNEL, CLIENT_BITS)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Counter:
    """Counts delivered IDs and remembers when the last one arrived."""

    def __init__(self, keep_latencies: bool = False) -> None:
        self.count = 0
        self.ids: set[int] = set()
        self.last_at = 0.0
        self.latencies_ms: list[float] | None = [] if keep_latencies else None

    def add(self, ids: list[int]) -> None:
        now = time.time()
        self.count += len(ids)
        self.ids.update(ids)
        self.last_at = now
        if self.latencies_ms is not None:
            now_us = now * 1e6
            self.latencies_ms.extend((now_us - i // CLIENT_BITS) / 1000.0 for i in ids)

    async def settle(self, quiet_s: float = 1.0) -> None:
        """Wait until nothing has arrived for ``quiet_s``."""
        while True:
            seen = self.count
            await asyncio.sleep(quiet_s)
            if self.count == seen:
                return


async def run_pgbench(db: str, script: str, seconds: int, clients: int, rate: float | None = None) -> int:
    """Run pgbench; return the number of committed transactions."""
    args = ["pgbench", "-h", PG_HOST, "-p", str(PG_PORT), "-n", "-f", script, "-c", str(clients), "-j", "2", "-T", str(seconds)]
    if rate:
        args += ["-R", str(int(rate))]
    proc = await asyncio.create_subprocess_exec(*args, db, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    text = out.decode()
    match = re.search(r"number of transactions actually processed: (\d+)", text)
    if proc.returncode != 0 or not match:
        raise SystemExit("pgbench failed:\n" + text)
    return int(match.group(1))


async def phase_bare(db: str, script: str, seconds: int, clients: int) -> tuple[float, int, int]:
    counter = Counter()
    conn = await AsyncPgConnection.connect(5.0, host=PG_HOST, port=PG_PORT, dbname=db)
    conn.listen_with(lambda batch: counter.add([0] * len(batch)))
    await conn.execute('LISTEN "%s"' % PG_CHANNEL)
    started = time.time()
    committed = await run_pgbench(db, script, seconds, clients)
    await counter.settle()
    conn.close()
    return counter.count / (counter.last_at - started), committed, counter.count


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc)."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RelayUnderTest:
    """The real relay daemon as a subprocess, with a Redis subscriber counting its output."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None

    async def __aenter__(self) -> RelayUnderTest:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "zero_sudo_daemons.relay",
                "--db-name",
                self.db,
                "--db-host",
                PG_HOST,
                "--db-port",
                str(PG_PORT),
                "--redis-url",
                REDIS_URL,
                "--relay-http-port",
                str(self.port),
                "--log-level",
                "WARNING",
            ],
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.port, timeout=1) as resp:
                    if json.loads(resp.read())["role"] == "active":
                        return self
            except OSError:
                pass
            await asyncio.sleep(0.1)
        raise SystemExit("the relay did not become active")

    async def __aexit__(self, *_exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(20)


async def subscribe(db: str, counter: Counter) -> asyncio.Task:
    """A lean Redis subscriber (one socket, hiredis, no client library) so that the benchmark
    measures the relay and not its own subscriber: redis-py spends ~100 µs per message."""
    reader, writer = await asyncio.open_connection("127.0.0.1", 6379)
    channel = bus_channel(db).encode()
    writer.write(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(channel), channel))
    parser = hiredis.Reader()
    confirmed = asyncio.Event()

    async def consume() -> None:
        try:
            while True:
                parser.feed(await reader.read(1 << 20))
                while (reply := parser.gets()) is not False:
                    if reply[0] == b"subscribe":
                        confirmed.set()
                    elif reply[0] == b"message":
                        body = json.loads(reply[2])
                        if body["kind"] == "change":
                            counter.add(body["ids"])
        finally:
            writer.close()

    task = asyncio.create_task(consume())
    async with asyncio.timeout(5):
        await confirmed.wait()
    return task


async def phase_relay(db: str, script: str, seconds: int, clients: int, rate: float | None = None) -> tuple[float, int, Counter]:
    counter = Counter(keep_latencies=rate is not None)
    async with RelayUnderTest(db) as relay:
        task = await subscribe(db, counter)
        started, cpu_before = time.time(), cpu_seconds(relay.proc.pid)
        committed = await run_pgbench(db, script, seconds, clients, rate)
        await counter.settle()
        cpu_used = cpu_seconds(relay.proc.pid) - cpu_before
        task.cancel()
    print(
        "    relay CPU under load: %.1f µs per event, %.0f%% of one core"
        % (cpu_used / max(1, counter.count) * 1e6, 100 * cpu_used / (counter.last_at - started)),
        flush=True,
    )
    return counter.count / (counter.last_at - started), committed, counter


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=6, help="length of each load phase")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of (a) and (b)")
    parser.add_argument("--clients", type=int, default=8, help="pgbench client connections")
    args = parser.parse_args()

    db = "zs_bench_relay_" + secrets.token_hex(3)
    admin = await AsyncPgConnection.connect(5.0, host=PG_HOST, port=PG_PORT, dbname="postgres")
    await admin.execute('CREATE DATABASE "%s"' % db)
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
            handle.write(PGBENCH_SCRIPT)
        bare_rates, relay_rates, lost_total = [], [], 0
        for round_no in range(1, args.rounds + 1):
            bare_tps, bare_committed, bare_count = await phase_bare(db, handle.name, args.seconds, args.clients)
            relay_tps, committed, counter = await phase_relay(db, handle.name, args.seconds, args.clients)
            lost = committed - len(counter.ids)
            lost_total += lost
            bare_rates.append(bare_tps)
            relay_rates.append(relay_tps)
            print(
                "round %d: (a) bare listener %.0f/s (%d of %d) | (b) relay %.0f/s (%d of %d, lost %d)"
                % (round_no, bare_tps, bare_count, bare_committed, relay_tps, len(counter.ids), committed, lost),
                flush=True,
            )
        bare, relay = statistics.median(bare_rates), statistics.median(relay_rates)
        target_rate = relay / 2
        _tps, committed, counter = await phase_relay(db, handle.name, args.seconds, args.clients, rate=target_rate)
        lost_total += committed - len(counter.ids)
        p50, p99 = percentile(counter.latencies_ms, 0.50), percentile(counter.latencies_ms, 0.99)
        print(
            "(c) at %.0f/s: %d events, commit-to-subscriber p50 %.2f ms, p99 %.2f ms, max %.2f ms"
            % (target_rate, len(counter.latencies_ms), p50, p99, max(counter.latencies_ms)),
            flush=True,
        )
        os.unlink(handle.name)
    finally:
        await admin.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db)
        admin.close()
    print(
        "BENCH relay bare_listener_tps=%.0f relay_tps=%.0f ratio=%.3f lost=%d p50_ms=%.2f p99_ms=%.2f"
        % (bare, relay, relay / bare, lost_total, p50, p99)
    )


if __name__ == "__main__":
    uvloop.run(main())
