"""Gateway fan-out: N WebSocket clients on loopback, the time until all of them have an event.

One run, two servers, the same load:

* the gateway (``python -m zero_sudo_daemons.gateway``, uvloop, one encoding per event,
  ``broadcast()``, bounded buffers);
* the baseline: the simplest correct gateway (``--baseline-server`` below: same client
  protocol, plain asyncio, one ``await ws.send`` per client in a loop).

The load generator runs in ``--clients`` processes apart from the server, one per CPU the
server does not have (see :data:`SERVER_CPUS`): more would only add the scheduler's noise. Each client is a
bare asyncio protocol that speaks just enough WebSocket (handshake, masked commands, pongs,
frame boundaries) and finds an event's ``seq`` with one ``bytes.find``: no JSON decoding
per client message, or the generator would measure itself. Events are published straight
to the relay's Redis channel (the gateway's input), so PostgreSQL and the relay are not in
the measured path (``make bench-relay`` measures them).

Phases: ``--events`` single events, each waited for (fan-out latency: publish → the last
of N clients has it, CLOCK_MONOTONIC being common to all processes); then ``--burst`` events
published back to back (events per second, each reaching every client). RSS is the
server's, read from /proc once every client is subscribed; ``kb_per_conn`` is its growth
over the idle server divided by N.

``--rounds`` (5) repeats both phases on the same gateway process, each round with N fresh
clients (the previous ones disconnected): a garbage collection walking every connection
shows up as a p99 spike in some rounds only, so the worst round's p99 is reported next to
the medians, and the reconnections show whether the process keeps memory across rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import multiprocessing
import os
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from multiprocessing.connection import Connection

import redis
import redis.asyncio

from zero_sudo_bus.protocol import Op, bus_channel, encode_change_message, model_key
from zero_sudo_bus.tokens import sign_token

REDIS_URL = os.environ.get("ZERO_SUDO_REDIS_URL", "redis://127.0.0.1:6379/0")
MODEL = "bench.item"
CHANNEL = "model:" + MODEL
SECRET = "bench-secret"

# Handshakes in flight per load process: enough to open 10 000 connections in seconds
# without overflowing the server's accept backlog.
CONCURRENT_HANDSHAKES = 64

# The server under test gets a CPU of its own, the load processes and this coordinator the
# others, as when the load comes from other machines: on a machine of few cores the load
# processes would otherwise preempt the server in the middle of a fan-out, and the figures
# would measure the scheduler. With a single CPU, both share it.
_CPUS = sorted(os.sched_getaffinity(0))
SERVER_CPUS = {_CPUS[0]}
LOAD_CPUS = set(_CPUS[1:]) or SERVER_CPUS

# A single event that has not reached every client after this long is counted as lost.
EVENT_TIMEOUT_S = 30.0

# Pause between latency samples so each one measures an idle gateway, not a queue.
LATENCY_GAP_S = 0.05

# After a round's clients disconnect, the server takes this long to notice 10 000 closed
# sockets before the next round connects as many again (it would refuse them at capacity).
DISCONNECT_SETTLE_S = 3.0


def raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kib(pid: int) -> int:
    with open("/proc/%d/status" % pid) as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open("/proc/%d/stat" % pid) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the load generator --------------------------------------------------------------------


def _frame(text: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame; the all-zero masking key is valid and spares the XOR."""
    length = bytes([0x80 | len(text)]) if len(text) < 126 else bytes([0x80 | 126]) + len(text).to_bytes(2, "big")
    return bytes([0x80 | opcode]) + length + b"\0\0\0\0" + text


class LoadProcess:
    """The clients of one load process, and per event how many of them have it."""

    def __init__(self, port: int, count: int, commands: bytes, report: Connection) -> None:
        self.port, self.count, self.commands, self.report = port, count, commands, report
        self.subscribed = 0
        self.closed = 0
        self.received: dict[int, int] = {}
        self.all_subscribed = asyncio.Event()

    def on_event(self, seq: int) -> None:
        got = self.received.get(seq, 0) + 1
        self.received[seq] = got
        if got == self.count:
            self.report.send(("done", seq, time.perf_counter()))
            del self.received[seq]

    def on_subscribed(self) -> None:
        self.subscribed += 1
        if self.subscribed == self.count:
            self.all_subscribed.set()


class BenchClient(asyncio.Protocol):
    __slots__ = ("load", "transport", "buffer", "upgraded")

    def __init__(self, load: LoadProcess) -> None:
        self.load = load
        self.buffer = bytearray()
        self.upgraded = False

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16))
        transport.write(
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                raise RuntimeError("handshake refused: %r" % bytes(buffer[:80]))
            del buffer[: end + 4]
            self.upgraded = True
            self.transport.write(self.load.commands)
        offset = 0
        while len(buffer) - offset >= 2:
            length = buffer[offset + 1] & 0x7F
            header = 2
            if length == 126:
                if len(buffer) - offset < 4:
                    break
                length, header = int.from_bytes(buffer[offset + 2 : offset + 4], "big"), 4
            elif length == 127:
                if len(buffer) - offset < 10:
                    break
                length, header = int.from_bytes(buffer[offset + 2 : offset + 10], "big"), 10
            if len(buffer) - offset < header + length:
                break
            opcode = buffer[offset] & 0x0F
            start, offset = offset + header, offset + header + length
            if opcode == 0x1:
                if buffer.startswith(b'{"t":"event"', start):
                    at = buffer.find(b'"seq":', start, offset)
                    self.load.on_event(int(buffer[at + 6 : offset - 1]))
                elif buffer.startswith(b'{"t":"subscribed"', start):
                    self.load.on_subscribed()
            elif opcode == 0x9:
                self.transport.write(_frame(bytes(buffer[start:offset]), 0xA))
        del buffer[:offset]

    def connection_lost(self, exc: Exception | None) -> None:
        self.load.closed += 1


async def _run_load(port: int, count: int, token: str, report: Connection) -> None:
    commands = _frame(json.dumps({"op": "auth", "token": token}).encode()) + _frame(
        json.dumps({"op": "sub", "ch": [CHANNEL]}).encode()
    )
    load = LoadProcess(port, count, commands, report)
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(CONCURRENT_HANDSHAKES)
    transports = []

    async def open_one() -> None:
        async with slots:
            transport, _ = await loop.create_connection(lambda: BenchClient(load), "127.0.0.1", port)
            transports.append(transport)

    await asyncio.gather(*(open_one() for _ in range(count)))
    await load.all_subscribed.wait()
    report.send(("ready", count))
    await loop.run_in_executor(None, report.recv)  # the coordinator says stop
    report.send(("closed_by_server", load.closed))
    for transport in transports:
        transport.abort()


def load_main(port: int, count: int, token: str, report: Connection) -> None:
    import uvloop

    raise_open_files_limit()
    os.sched_setaffinity(0, LOAD_CPUS)
    uvloop.run(_run_load(port, count, token, report))


# -- the baseline server ----------------------------------------------------------------------


async def _baseline(port: int, db: str) -> None:
    """The simplest correct gateway: same protocol, one ``await ws.send`` per client."""
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    from zero_sudo_bus.protocol import decode_bus_message
    from zero_sudo_bus.tokens import TokenError, verify_token

    subscribers: dict[int, set] = {}

    def dumps(body: dict) -> str:
        return json.dumps(body, separators=(",", ":"))

    async def handler(ws) -> None:
        keys: list[int] = []
        try:
            async for frame in ws:
                command = json.loads(frame)
                if command["op"] == "auth":
                    try:
                        verify_token(SECRET, command["token"], time.time())
                    except TokenError:
                        return
                    await ws.send(dumps({"t": "hello"}))
                elif command["op"] == "sub":
                    for channel in command["ch"]:
                        key = model_key(channel.split(":", 1)[1])
                        subscribers.setdefault(key, set()).add(ws)
                        keys.append(key)
                    await ws.send(dumps({"t": "subscribed", "ch": command["ch"]}))
        except ConnectionClosed:
            pass
        finally:
            for key in keys:
                subscribers[key].discard(ws)

    client = redis.asyncio.Redis.from_url(REDIS_URL)
    async with serve(handler, "127.0.0.1", port, compression=None, backlog=4096), client.pubsub() as pubsub:
        await pubsub.subscribe(bus_channel(db))
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            event = decode_bus_message(message["data"])
            if event.kind != "change":
                continue
            text = dumps(
                {
                    "t": "event",
                    "ch": CHANNEL,
                    "model": MODEL,
                    "op": "write",
                    "ids": list(event.ids),
                    "epoch": event.epoch,
                    "seq": event.seq,
                }
            )
            for ws in list(subscribers.get(event.model_key, ())):
                try:
                    await ws.send(text)
                except ConnectionClosed:
                    pass


# -- the coordinator ------------------------------------------------------------------------


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server exited with code %d" % proc.returncode)
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=1) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError:
            return  # the baseline answers, though it has no /healthz
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("server on port %d did not come up" % port)


def run_scenario(
    name: str, server_argv: list[str], port: int, db: str, args: argparse.Namespace, rounds: int
) -> list[dict[str, float]]:
    """Start the server, then ``rounds`` times: connect N clients, measure, disconnect them."""
    server = subprocess.Popen(server_argv, stdout=subprocess.DEVNULL)
    try:
        os.sched_setaffinity(server.pid, SERVER_CPUS)
        _wait_port(port, server)
        time.sleep(0.5)
        idle_kib = rss_kib(server.pid)
        results = []
        for index in range(rounds):
            result = run_round(name, server, port, db, args, idle_kib)
            print(
                "%s round %d: fan-out p50 %.1f ms p99 %.1f ms, rss %.1f MiB"
                % (name, index + 1, result["p50"], result["p99"], result["rss_mb"]),
                flush=True,
            )
            results.append(result)
        return results
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


def run_round(
    name: str, server: subprocess.Popen, port: int, db: str, args: argparse.Namespace, idle_kib: int
) -> dict[str, float]:
    """One round: N clients connect and subscribe, the two phases, the clients disconnect."""
    loads: list[tuple[multiprocessing.Process, Connection]] = []
    try:
        token = sign_token(SECRET, 2, db, [CHANNEL], int(time.time()) + 3600)
        share, extra = divmod(args.connections, args.clients)
        started = time.perf_counter()
        for index in range(args.clients):
            mine, theirs = multiprocessing.Pipe()
            count = share + (1 if index < extra else 0)
            process = multiprocessing.Process(target=load_main, args=(port, count, token, theirs), daemon=True)
            process.start()
            loads.append((process, mine))
        for _process, pipe in loads:
            if not pipe.poll(120):
                raise SystemExit("%s: clients not subscribed within 120 s" % name)
            assert pipe.recv()[0] == "ready"
        print("%s: %d clients subscribed in %.1fs" % (name, args.connections, time.perf_counter() - started), flush=True)
        time.sleep(1.0)
        loaded_kib = rss_kib(server.pid)

        publisher = redis.Redis.from_url(REDIS_URL)
        channel, key, epoch = bus_channel(db), model_key(MODEL), secrets.token_hex(8)

        def wait_done(seq: int) -> float | None:
            """When the last load process reported ``seq`` complete (None: lost)."""
            latest = 0.0
            for _process, pipe in loads:
                deadline = time.monotonic() + EVENT_TIMEOUT_S
                while True:
                    if not pipe.poll(max(0.0, deadline - time.monotonic())):
                        return None
                    kind, done_seq, at = pipe.recv()
                    if kind == "done" and done_seq == seq:
                        latest = max(latest, at)
                        break
            return latest

        latencies = []
        seq = 0
        for _ in range(args.events):
            sent = time.perf_counter()
            publisher.publish(channel, encode_change_message(epoch, seq, key, Op.WRITE, [seq + 1]))
            done = wait_done(seq)
            if done is not None:
                latencies.append((done - sent) * 1000)
            seq += 1
            time.sleep(LATENCY_GAP_S)
        cpu_before = cpu_seconds(server.pid)
        sent = time.perf_counter()
        pipeline = publisher.pipeline(transaction=False)
        for burst_seq in range(seq, seq + args.burst):
            pipeline.publish(channel, encode_change_message(epoch, burst_seq, key, Op.WRITE, [burst_seq + 1]))
        pipeline.execute()
        finished = sent
        for burst_seq in range(seq, seq + args.burst):
            done = wait_done(burst_seq)
            if done is not None:
                finished = max(finished, done)
        publisher.close()
        cpu_ms_per_event = (cpu_seconds(server.pid) - cpu_before) * 1000 / args.burst
        latencies.sort()
        return {
            "rss_mb": loaded_kib / 1024,
            "kb_per_conn": (loaded_kib - idle_kib) / args.connections,
            "p50": statistics.median(latencies) if latencies else float("nan"),
            "p99": latencies[math.ceil(len(latencies) * 0.99) - 1] if latencies else float("nan"),  # nearest rank
            "lost": args.events - len(latencies),
            "events_per_s": args.burst / (finished - sent),
            "cpu_ms_per_event": cpu_ms_per_event,
        }
    finally:
        for process, pipe in loads:
            try:
                pipe.send("stop")
            except OSError:
                pass
            process.join(10)
            if process.is_alive():
                process.kill()
        time.sleep(DISCONNECT_SETTLE_S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument(
        "--clients", type=int, default=len(LOAD_CPUS), help="load generator processes (default: one per CPU left to the load)"
    )
    parser.add_argument("--events", type=int, default=100, help="single events for the latency figures")
    parser.add_argument("--burst", type=int, default=100, help="events published back to back for events_per_s")
    parser.add_argument("--rounds", type=int, default=5, help="rounds on the gateway (fresh clients each)")
    parser.add_argument("--baseline-rounds", type=int, default=1, help="rounds on the baseline (a reference only)")
    parser.add_argument("--baseline-server", nargs=2, metavar=("PORT", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_open_files_limit()
    if args.baseline_server:
        asyncio.run(_baseline(int(args.baseline_server[0]), args.baseline_server[1]))
        return
    os.sched_setaffinity(0, LOAD_CPUS)  # the coordinator too: the server's CPU is its own
    db = "zs_gw_bench_" + secrets.token_hex(4)
    port = free_port()
    gateway_argv = [
        sys.executable,
        "-m",
        "zero_sudo_daemons.gateway",
        "--db-name",
        db,
        "--redis-url",
        REDIS_URL,
        "--gateway-port",
        str(port),
        "--gateway-token-secret",
        SECRET,
        "--gateway-max-connections",
        str(args.connections + 100),  # + room for the previous round's clients still closing
        "--log-level",
        "WARNING",
    ]
    gateway_rounds = run_scenario("gateway", gateway_argv, port, db, args, args.rounds)
    port = free_port()
    baseline_argv = [sys.executable, __file__, "--baseline-server", str(port), db]
    baseline_rounds = run_scenario("baseline", baseline_argv, port, db, args, args.baseline_rounds)
    gateway = summarize(gateway_rounds)
    baseline = summarize(baseline_rounds) if baseline_rounds else {"p99": math.nan}  # --baseline-rounds 0
    for name, result in [("gateway", gateway)] + ([("baseline", baseline)] if baseline_rounds else []):
        print(
            "%s (median of %d rounds): rss %.1f MiB (%.1f KiB/connection over idle), fan-out p50 %.1f ms p99 %.1f ms"
            " (worst round %.1f ms), %d lost, %.1f events/s, server CPU %.1f ms per event"
            % (
                name,
                result["rounds"],
                result["rss_mb"],
                result["kb_per_conn"],
                result["p50"],
                result["p99"],
                result["p99_worst"],
                result["lost"],
                result["events_per_s"],
                result["cpu_ms_per_event"],
            )
        )
    print(
        "BENCH gateway connections=%d rss_mb=%.1f kb_per_conn=%.1f fanout_p50_ms=%.1f fanout_p99_ms=%.1f"
        " fanout_p99_worst_ms=%.1f events_per_s=%d baseline_fanout_p99_ms=%.1f"
        % (
            args.connections,
            gateway["rss_mb"],
            gateway["kb_per_conn"],
            gateway["p50"],
            gateway["p99"],
            gateway["p99_worst"],
            round(gateway["events_per_s"]),
            baseline["p99"],
        )
    )


def summarize(rounds: list[dict[str, float]]) -> dict[str, float]:
    """The median of each figure over the rounds, the worst p99, and the lost events summed."""
    summary = {key: statistics.median(result[key] for result in rounds) for key in rounds[0]}
    summary["lost"] = sum(result["lost"] for result in rounds)
    summary["p99_worst"] = max(result["p99"] for result in rounds)
    summary["rounds"] = len(rounds)
    return summary


if __name__ == "__main__":
    main()
