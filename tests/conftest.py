"""Shared fixtures: fresh PostgreSQL databases, relay processes and bus recorders, all real."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import secrets
import signal
import subprocess
import sys
import threading
import types
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import psycopg
import pytest
import redis
from live_stack import free_port, wait_for

from zero_sudo_bus.protocol import PG_CHANNEL, BusMessage, model_key
from zero_sudo_bus.subscriber import ThreadedBusSubscriber

PG_HOST = os.environ.get("ZERO_SUDO_DB_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("ZERO_SUDO_DB_PORT", "5432"))
REDIS_URL = os.environ.get("ZERO_SUDO_REDIS_URL", "redis://127.0.0.1:6379/0")


ADDONS = pathlib.Path(__file__).resolve().parent.parent / "addons"


def addon_module(addon: str, path: str) -> types.ModuleType:
    """A pure module of an addon (one that imports no Odoo), loaded from its file.

    For the few tests here that play Odoo's side of a wire (its RabbitMQ publisher); the
    addons' own suites run under Odoo, in scripts/odoo_tests.sh.
    """
    name = "zero_sudo_addon_%s_%s" % (addon, path.replace("/", "_").removesuffix(".py"))
    spec = importlib.util.spec_from_file_location(name, ADDONS / addon / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def addon_tools(addon: str) -> types.ModuleType:
    """``addons/<addon>/tools`` as a package of its own, ``<addon>_tools`` (loaded once).

    For the tests of an addon's pure tools (they import no Odoo): ``from zero_sudo_tools.executor
    import BoundedExecutor`` works once ``addon_tools("zero_sudo")`` has run.
    """
    name = "%s_tools" % addon
    if name not in sys.modules:
        tools = ADDONS / addon / "tools"
        spec = importlib.util.spec_from_file_location(name, tools / "__init__.py", submodule_search_locations=[str(tools)])
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        spec.loader.exec_module(package)
    return sys.modules[name]


def pg_conninfo(db: str) -> str:
    return "host=%s port=%d dbname=%s" % (PG_HOST, PG_PORT, db)


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """:func:`wait_for` with the defaults of the daemons' tests (events arrive in milliseconds)."""
    return wait_for(predicate, timeout, what, interval=interval)


def ids_for_payload_of(total_bytes: int, model: str = "res.partner") -> list[int]:
    """Five-digit IDs whose single WRITE payload is exactly ``total_bytes`` long."""
    header = len("[%d,2" % model_key(model)) + 1  # + "]"
    count, rest = divmod(total_bytes - header, 6)  # ",12345"
    ids = [10000 + i for i in range(count)]
    if rest:  # widen the last ID by ``rest`` digits
        ids[-1] = int("9" * (5 + rest))
    return ids


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A fresh, empty database, dropped afterwards (WITH FORCE: relays may still hold it)."""
    name = "zs_t_" + secrets.token_hex(4)
    with psycopg.connect(pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute('CREATE DATABASE "%s"' % name)
    yield name
    with psycopg.connect(pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def notify(db: str, *payloads: str) -> None:
    """Send each payload with a real NOTIFY, committed in one transaction."""
    with psycopg.connect(pg_conninfo(db)) as conn:
        for payload in payloads:
            conn.execute("SELECT pg_notify(%s, %s)", (PG_CHANNEL, payload))


class DaemonProcess:
    """A real daemon (``python -m module``) in a subprocess: its output kept, its ops port probed."""

    def __init__(self, module: str, port_flag: str, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                module,
                "--db-host",
                PG_HOST,
                "--db-port",
                str(PG_PORT),
                port_flag,
                str(self.port),
                "--log-format",
                "text",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path), timeout=2) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def role(self) -> str | None:
        status, body = self.get("/healthz")
        return json.loads(body)["role"] if status in (200, 503) else None

    def metric(self, sample: str) -> float:
        """The sum of the samples named ``sample``: a metric name, or a name with its labels."""
        _status, body = self.get("/metrics")
        total = 0.0
        for line in body.splitlines():
            name, _, value = line.rpartition(" ")
            if name == sample or name.startswith(sample + "{"):
                total += float(value)
        return total

    def wait_role(self, role: str, timeout: float = 15.0) -> None:
        wait_until(lambda: self.role() == role, timeout, what="role %s (log: %s)" % (role, "".join(self.output[-20:])))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send ``sig`` (unless it already exited); its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


class RelayProcess(DaemonProcess):
    """A real relay daemon."""

    def __init__(self, db: str, redis_url: str = REDIS_URL) -> None:
        self.db = db
        super().__init__(
            "zero_sudo_daemons.relay", "--relay-http-port", "--db-name", db, "--redis-url", redis_url, "--log-level", "DEBUG"
        )


@pytest.fixture
def start_relay() -> Iterator[Callable[[str], RelayProcess]]:
    relays: list[RelayProcess] = []

    def start(db: str, redis_url: str = REDIS_URL) -> RelayProcess:
        relay = RelayProcess(db, redis_url)
        relays.append(relay)
        return relay

    yield start
    for relay in relays:
        if relay.proc.poll() is None:
            relay.proc.kill()
            relay.proc.wait()


class BusRecorder:
    """Records what a real ThreadedBusSubscriber delivers: changes and flush reasons."""

    def __init__(self, db: str, redis_url: str = REDIS_URL) -> None:
        self.events: list[tuple[str, object]] = []
        self._lock = threading.Lock()
        self.subscriber = ThreadedBusSubscriber(redis_url, db, self._on_change, self._on_flush)

    def _on_change(self, message: BusMessage) -> None:
        with self._lock:
            self.events.append(("change", message))

    def _on_flush(self, reason: str) -> None:
        with self._lock:
            self.events.append(("flush", reason))

    def changes(self) -> list[BusMessage]:
        with self._lock:
            return [m for kind, m in self.events if kind == "change"]

    def ids(self) -> list[int]:
        return [i for m in self.changes() for i in m.ids]

    def flushes(self) -> list[str]:
        with self._lock:
            return [r for kind, r in self.events if kind == "flush"]


@pytest.fixture
def bus_recorder() -> Iterator[Callable[[str], BusRecorder]]:
    recorders: list[BusRecorder] = []

    def make(db: str, redis_url: str = REDIS_URL) -> BusRecorder:
        recorder = BusRecorder(db, redis_url)
        recorder.subscriber.start()
        wait_until(recorder.subscriber.connected.is_set, what="bus subscriber connected")
        recorders.append(recorder)
        return recorder

    yield make
    for recorder in recorders:
        recorder.subscriber.stop()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def private_redis():
    from private_servers import PrivateRedis

    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pgbouncer():
    """Debian's pgbouncer running the operators' docker/pgbouncer.ini before the shared PostgreSQL."""
    from private_servers import PGBOUNCER, PrivatePgBouncer

    if not os.path.exists(PGBOUNCER):
        pytest.skip("Debian's pgbouncer is not installed (scripts/ensure_services.sh installs it)")
    server = PrivatePgBouncer(PG_HOST, PG_PORT)
    server.start()
    yield server
    server.stop()
