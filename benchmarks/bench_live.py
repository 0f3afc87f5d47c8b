"""Live Odoo against Odoo's own bus: from a COMMIT to the event at 1 000 WebSocket clients.

One run, everything real and on loopback (``tests/live_stack.py``): Odoo 18 in prefork mode
(``--workers 2``, its gevent process serving ``/websocket``), the relay, the gateway, and
Debian's nginx running ``docker/nginx.conf`` in front of all three, so every client goes
through nginx as users do.

* **live**: ``--clients`` WebSockets on nginx's ``/ws`` (the gateway), authenticated by an
  Odoo session cookie and subscribed to ``model:res.partner`` (a published model). Each
  round writes one partner through Odoo's JSON-RPC (``/web/dataset/call_kw``); the COMMIT
  is the moment that transaction's NOTIFY reaches a LISTEN connection of this process
  (PostgreSQL delivers it at commit), and each client's latency is from then to the frame
  naming that partner's ID.
* **odoo_bus**: as many WebSockets on nginx's ``/websocket`` (Odoo's gevent process),
  subscribed to a channel. Each round runs, through the same JSON-RPC, a server action that
  writes a record and calls ``bus.bus._sendone`` on that channel in the same transaction,
  plus a marker NOTIFY for the COMMIT time; latency to the frame carrying that round's tag.

Rounds alternate (live, bus, live, ...) with both client sets connected all along, so both
see the same machine. Clients live in ``--load-processes`` processes and are bare asyncio
protocols (handshake, pongs, frame boundaries, one ``bytes.find`` per frame): the generator
must not measure itself. Times are CLOCK_MONOTONIC, common to all processes.

``unpublished_write_ratio``: ORM writes per second on a model nobody published
(res.partner.category, each write flushed, a commit every 50 writes) on a database with
zero_sudo_live installed, divided by the same on a database without it, in one Odoo process
(``--write-throughput``, run with Odoo's Python; zero_sudo's server-wide patches loaded for
both, as in a server): 31 rounds of one block per database side by side, order alternating,
the median of the rounds' ratios. Measured before the servers start. The ratio reported is
of writes per CPU second of that Odoo process: the work the addon adds is that process's
Python (PostgreSQL runs the same statements for both), and on a shared machine wall-clock
rates swing by tens of percent with other processes' load; the wall-clock ratio is printed
too.

Last line: ``BENCH live clients=… p50_ms=… p99_ms=… odoo_bus_p50_ms=… odoo_bus_p99_ms=…
unpublished_write_ratio=…``. Targets: p99 ≤ 100 ms and below Odoo bus's p99; ratio ≥ 0.98.
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
import statistics
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from live_stack import REDIS_URL_DEFAULT, JsonRpc, LiveStack, OdooServer, find_odoo  # noqa: E402

BUS_CHANNEL = "zs_bench_live_" + secrets.token_hex(4)
ROUND_TIMEOUT_S = 30.0  # a round whose event has not reached every client by then counts them as lost
ROUND_GAP_S = 0.3  # idle time between rounds: each round measures an idle chain, not a queue
# Handshakes in flight per load process and kind. Odoo's gevent process opens a cursor per
# handshake from a pool of db_maxconn (64) it shares with its dispatching: more at once and
# it answers 500 (a pool-sizing limit of Odoo's, not what is measured here).
CONCURRENT_HANDSHAKES = {"live": 32, "bus": 8}
WRITES_PER_COMMIT = 50


# -- load processes -------------------------------------------------------------------------


def _frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame (RFC 6455: clients mask; the zero key is valid)."""
    length = len(payload)
    if length < 126:
        header = bytes([0x80 | opcode, 0x80 | length])
    elif length < 65536:
        header = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big")
    return header + b"\0\0\0\0" + payload


class Client(asyncio.Protocol):
    """One WebSocket client: handshake, subscription, pongs, and the arrival time of each tag."""

    def __init__(self, kind: str, spec: dict, tags: list[bytes], ready: asyncio.Future, seen_round) -> None:
        self.kind, self.spec, self.tags, self.ready, self.seen_round = kind, spec, tags, ready, seen_round
        self.buffer = b""
        self.upgraded = False
        self.arrivals: dict[int, float] = {}
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        headers = [
            "GET %s HTTP/1.1" % self.spec["path"],
            "Host: %s" % self.spec["host"],
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: %s" % key,
            "Sec-WebSocket-Version: 13",
            "Origin: %s" % self.spec["origin"],
        ]
        if self.spec.get("cookie"):
            headers.append("Cookie: %s" % self.spec["cookie"])
        transport.write(("\r\n".join(headers) + "\r\n\r\n").encode())

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buffer.startswith(b"HTTP/1.1 101"):
                if not self.ready.done():
                    self.ready.set_exception(RuntimeError("handshake refused: %r" % self.buffer[:200]))
                return
            self.upgraded = True
            self.buffer = self.buffer[end + 4 :]
            if self.kind == "bus":
                message = {"event_name": "subscribe", "data": {"channels": [self.spec["channel"]], "last": 0}}
                self.transport.write(_frame(json.dumps(message).encode()))
                self.ready.set_result(True)
        while True:
            frame = self._next_frame()
            if frame is None:
                return
            opcode, payload = frame
            if opcode == 0x9:
                self.transport.write(_frame(payload, 0xA))
            elif opcode == 0x1:
                self._on_text(payload, now)
            elif opcode == 0x8 and not self.ready.done():
                self.ready.set_exception(RuntimeError("closed: %r" % payload[:100]))

    def _next_frame(self) -> tuple[int, bytes] | None:
        buffer = self.buffer
        if len(buffer) < 2:
            return None
        length, offset = buffer[1] & 0x7F, 2
        if length == 126:
            if len(buffer) < 4:
                return None
            length, offset = int.from_bytes(buffer[2:4], "big"), 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            length, offset = int.from_bytes(buffer[2:10], "big"), 10
        if len(buffer) < offset + length:
            return None
        self.buffer = buffer[offset + length :]
        return buffer[0] & 0x0F, buffer[offset : offset + length]

    def _on_text(self, payload: bytes, now: float) -> None:
        if self.kind == "live" and not self.ready.done():
            if b'"t":"hello"' in payload:
                self.transport.write(_frame(json.dumps({"op": "sub", "ch": [self.spec["channel"]]}).encode()))
            elif b'"t":"subscribed"' in payload:
                self.ready.set_result(True)
            return
        for number, tag in enumerate(self.tags):
            if number not in self.arrivals and tag in payload:
                self.arrivals[number] = now
                self.seen_round(number)


async def _load(specs: dict[str, dict], counts: dict[str, int], tags: dict[str, list[bytes]], pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    clients: dict[str, list[Client]] = {kind: [] for kind in specs}
    seen: dict[tuple[str, int], int] = {}

    def seen_round(kind: str, number: int) -> None:
        seen[(kind, number)] = seen.get((kind, number), 0) + 1
        if seen[(kind, number)] == counts[kind]:
            pipe.send(("round", kind, number))

    gates = {kind: asyncio.Semaphore(CONCURRENT_HANDSHAKES[kind]) for kind in specs}

    async def open_one(kind: str) -> None:
        async with gates[kind]:
            ready = loop.create_future()
            client = Client(kind, specs[kind], tags[kind], ready, lambda number, kind=kind: seen_round(kind, number))
            await loop.create_connection(lambda: client, "127.0.0.1", specs[kind]["port"])
            await asyncio.wait_for(ready, 30)
            clients[kind].append(client)

    await asyncio.gather(*(open_one(kind) for kind, count in counts.items() for _ in range(count)))
    pipe.send(("ready",))
    await loop.run_in_executor(None, pipe.recv)  # the parent says when the rounds are over
    pipe.send(("arrivals", {kind: [client.arrivals for client in group] for kind, group in clients.items()}))


def load_main(specs: dict, counts: dict, tags: dict, pipe: Connection) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(_load(specs, counts, tags, pipe))
    except Exception as exc:  # noqa: BLE001 (reported to the parent, which fails the run)
        pipe.send(("error", repr(exc)))


# -- write throughput (runs with Odoo's Python) -----------------------------------------------


def write_throughput(conf: str, with_db: str, without_db: str, rounds: int, writes: int) -> dict[str, dict[str, list[float]]]:
    """Writes per second on an unpublished model, per database, in rounds of one block each,
    the order alternating: the k-th blocks of both databases ran next to each other."""
    import odoo
    from odoo import api
    from odoo.modules.registry import Registry
    from odoo.service import server

    odoo.tools.config.parse_config(["-c", conf])
    server.load_server_wide_modules()  # zero_sudo's patches, as in a server process
    results: dict[str, dict[str, list[float]]] = {db: {"cpu": [], "wall": []} for db in (with_db, without_db)}
    registries = {db: Registry(db) for db in results}
    ids = {}
    for db, registry in registries.items():
        with registry.cursor() as cr:
            env = api.Environment(cr, api.SUPERUSER_ID, {})
            ids[db] = env["res.partner.category"].create([{"name": "bench %d" % n} for n in range(100)]).ids
    for number in range(rounds):
        order = [with_db, without_db] if number % 2 == 0 else [without_db, with_db]
        for db in order:
            with registries[db].cursor() as cr:
                env = api.Environment(cr, api.SUPERUSER_ID, {})
                records = env["res.partner.category"].browse(ids[db])
                started, cpu_started = time.perf_counter(), time.process_time()
                for n in range(writes):
                    records[n % 100].write({"name": "bench %d %d" % (number, n)})
                    env.flush_all()  # as each request's transaction does before it commits
                    if n % WRITES_PER_COMMIT == WRITES_PER_COMMIT - 1:
                        cr.commit()
                cr.commit()
                results[db]["wall"].append(writes / (time.perf_counter() - started))
                results[db]["cpu"].append(writes / (time.process_time() - cpu_started))
    return results


# -- the run ------------------------------------------------------------------------------------


class CommitListener:
    """LISTEN on the live channel and the bench's marker: when each transaction committed."""

    def __init__(self, db: str) -> None:
        import psycopg

        self.conn = psycopg.connect("host=%s dbname=%s" % (os.environ.get("ZERO_SUDO_DB_HOST", "127.0.0.1"), db), autocommit=True)
        self.conn.execute("LISTEN zero_sudo_events")
        self.conn.execute("LISTEN zs_bench_commit")
        self.received: list[tuple[float, str, str]] = []
        self.stopping = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stopping:
            for notify in self.conn.notifies(timeout=0.2):
                self.received.append((time.monotonic(), notify.channel, notify.payload))

    def commit_time(self, channel: str, needle: str, after: int, timeout: float = 10.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for when, name, payload in self.received[after:]:
                if name == channel and needle in payload:
                    return when
            time.sleep(0.001)
        raise TimeoutError("no NOTIFY %s containing %s" % (channel, needle))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def run(args: argparse.Namespace) -> int:
    odoo = find_odoo()
    if odoo is None:
        print("BENCH live skipped=no-odoo")
        return 0
    stack = LiveStack(odoo, ["zero_sudo_live"], args.redis_url)
    plain = OdooServer(odoo, ["zero_sudo"])
    try:
        print("installing two databases (with and without zero_sudo_live)...", flush=True)
        stack.odoo.install()
        plain.install()
        env = {**os.environ, "PYTHONPATH": odoo.src + os.pathsep + os.environ.get("PYTHONPATH", "")}
        done = subprocess.run(
            [odoo.python, __file__, "--write-throughput", "--conf", stack.odoo.conf, "--with-db", stack.odoo.db,
             "--without-db", plain.db, "--write-rounds", str(args.write_rounds), "--writes", str(args.writes)],
            capture_output=True, text=True, env=env, cwd=stack.odoo.dir,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError("write throughput failed:\n%s" % done.stderr[-3000:])
        rates = json.loads(done.stdout.strip().splitlines()[-1])
        ratios = {}
        for clock in ("cpu", "wall"):
            with_rates, without_rates = rates[stack.odoo.db][clock], rates[plain.db][clock]
            # Each round's two blocks ran side by side: their ratio cancels what the machine's
            # other work did to both, and the median of the ratios drops the rounds it hit one of.
            ratios[clock] = statistics.median(w / wo for w, wo in zip(with_rates, without_rates, strict=True))
            print(
                "unpublished writes per %s second: with zero_sudo_live %.0f, without %.0f (medians of %d rounds of %d writes); median ratio %.3f"
                % (
                    clock,
                    statistics.median(with_rates),
                    statistics.median(without_rates),
                    args.write_rounds,
                    args.writes,
                    ratios[clock],
                )
            )
        ratio = ratios["cpu"]
        plain.drop()  # before the servers start: one idle database less

        stack.start()
        if stack.odoo.gevent_problem:
            raise RuntimeError(stack.odoo.gevent_problem + " (pip install 'zope.interface<7' 'zope.event<6' there)")
        try:
            return _measure(args, stack, ratio)
        except Exception:
            print("Odoo's last lines:\n%s" % stack.odoo.output.tail(40), file=sys.stderr)
            raise
    finally:
        plain.drop()
        stack.stop()


def _measure(args: argparse.Namespace, stack: LiveStack, ratio: float) -> int:
    admin = JsonRpc(stack.origin, stack.odoo.db, "admin", "admin")
    admin.call_kw(
        "ir.model",
        "write",
        [admin.call_kw("ir.model", "search", [[["model", "=", "res.partner"]]]), {"zero_sudo_live_publish": True}],
    )
    admin.call("/my/gateway/grants", {})  # the admin's cookie now grants the partners' channel
    partners = admin.call_kw("res.partner", "create", [[{"name": "bench live %d" % n} for n in range(args.rounds + 1)]])
    category = admin.call_kw("res.partner.category", "create", [{"name": "bench bus"}])
    model_id = admin.call_kw("ir.model", "search", [[["model", "=", "res.partner.category"]]])[0]
    code = (
        "n = env.context['zs_round']\n"
        "env['res.partner.category'].browse(%d).write({'name': 'bench bus %%d' %% n})\n"
        "env['bus.bus']._sendone(%r, 'zs_bench', {'tag': 'zsr%%dz' %% n})\n"
        "env.cr.execute(\"SELECT pg_notify('zs_bench_commit', %%s)\", ['zsr%%dz' %% n])\n"
    ) % (category, BUS_CHANNEL)
    action = admin.call_kw(
        "ir.actions.server", "create", [{"name": "bench bus", "model_id": model_id, "state": "code", "code": code}]
    )

    host = "127.0.0.1:%d" % stack.nginx.port
    specs = {
        "live": {"port": stack.nginx.port, "host": host, "origin": stack.origin, "path": "/ws",
                 "cookie": "session_id=%s" % admin.session_id, "channel": "model:res.partner"},
        "bus": {"port": stack.nginx.port, "host": host, "origin": stack.origin, "path": "/websocket", "channel": BUS_CHANNEL},
    }  # fmt: skip
    tags = {"live": [b'"ids":[%d]' % pid for pid in partners], "bus": [b"zsr%dz" % n for n in range(args.rounds + 1)]}
    per_process = [
        args.clients // args.load_processes + (1 if n < args.clients % args.load_processes else 0)
        for n in range(args.load_processes)
    ]
    listener = CommitListener(stack.odoo.db)
    context = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for count in per_process:
        parent, child = context.Pipe()
        process = context.Process(target=load_main, args=(specs, {"live": count, "bus": count}, tags, child), daemon=True)
        process.start()
        pipes.append(parent)
        processes.append(process)
    for pipe in pipes:
        message = pipe.recv()
        if message[0] != "ready":
            raise RuntimeError("load process failed: %s" % (message,))
    print("%d live and %d Odoo bus clients connected through nginx" % (args.clients, args.clients), flush=True)
    time.sleep(1.0)  # let Odoo's websockets finish their subscriptions (it answers none)

    commits: dict[str, dict[int, float]] = {"live": {}, "bus": {}}
    # Round 0 warms up and is not counted: Odoo acknowledges no subscription, so its first
    # event is also the proof that every bus client is subscribed.
    for number in range(args.rounds + 1):
        for kind in ("live", "bus"):
            mark = len(listener.received)
            if kind == "live":
                admin.call_kw("res.partner", "write", [[partners[number]], {"name": "bench live %d written" % number}])
                commits[kind][number] = listener.commit_time("zero_sudo_events", ",%d]" % partners[number], mark)
            else:
                admin.call_kw("ir.actions.server", "run", [[action]], {"context": {"zs_round": number}})
                commits[kind][number] = listener.commit_time("zs_bench_commit", "zsr%dz" % number, mark)
            waiting = set(range(len(pipes)))
            deadline = time.monotonic() + ROUND_TIMEOUT_S * (2 if number == 0 else 1)
            while waiting and time.monotonic() < deadline:
                for index in list(waiting):
                    if pipes[index].poll(0.01):
                        message = pipes[index].recv()
                        if message == ("round", kind, number):
                            waiting.discard(index)
            time.sleep(ROUND_GAP_S)
    listener.stopping = True

    latencies: dict[str, list[float]] = {"live": [], "bus": []}
    lost = {"live": 0, "bus": 0}
    for pipe in pipes:
        pipe.send("report")
        while True:
            message = pipe.recv()
            if message[0] == "arrivals":
                break
        for kind, clients in message[1].items():
            for arrivals in clients:
                for number in range(1, args.rounds + 1):
                    if number in arrivals:
                        latencies[kind].append((arrivals[number] - commits[kind][number]) * 1000)
                    else:
                        lost[kind] += 1
    for process in processes:
        process.join(10)

    result = {kind: (percentile(values, 0.5), percentile(values, 0.99)) for kind, values in latencies.items()}
    print(
        "rounds=%d samples live=%d bus=%d lost live=%d bus=%d; live p50/p99 %.1f/%.1f ms, Odoo bus %.1f/%.1f ms"
        % (args.rounds, len(latencies["live"]), len(latencies["bus"]), lost["live"], lost["bus"], *result["live"], *result["bus"])
    )
    met = result["live"][1] <= 100 and result["live"][1] < result["bus"][1] and ratio >= 0.98 and not any(lost.values())
    print(
        "targets (p99 <= 100 ms and below Odoo bus's p99, unpublished_write_ratio >= 0.98, nothing lost): %s"
        % ("met" if met else "NOT met")
    )
    print(
        "BENCH live clients=%d p50_ms=%.1f p99_ms=%.1f odoo_bus_p50_ms=%.1f odoo_bus_p99_ms=%.1f unpublished_write_ratio=%.3f"
        % (args.clients, *result["live"], *result["bus"], ratio)
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument("--write-rounds", type=int, default=31)
    parser.add_argument("--writes", type=int, default=400)
    parser.add_argument("--redis-url", default=os.environ.get("ZERO_SUDO_REDIS_URL", REDIS_URL_DEFAULT))
    parser.add_argument("--write-throughput", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--conf", help=argparse.SUPPRESS)
    parser.add_argument("--with-db", help=argparse.SUPPRESS)
    parser.add_argument("--without-db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_throughput:
        print(json.dumps(write_throughput(args.conf, args.with_db, args.without_db, args.write_rounds, args.writes)))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
