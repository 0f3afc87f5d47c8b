"""Servers of a test's own, on free ports, that it may stop and restart without disturbing
anyone else using the machine's shared PostgreSQL, Redis and RabbitMQ."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg
import redis
from psycopg.rows import dict_row

from conftest import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = "/usr/lib/postgresql/%s/bin" % (
    sorted(os.listdir("/usr/lib/postgresql"))[-1] if os.path.isdir("/usr/lib/postgresql") else ""
)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = "redis://127.0.0.1:%d/0" % self.port
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        wait_until(lambda: _pings(client), what="private redis-server up")
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False


class PrivatePostgres:
    """A throw-away cluster (initdb, trust auth, fsync off), run as the postgres OS user."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="zs_pg_")
        shutil.chown(self.dir, "postgres")
        self.data = os.path.join(self.dir, "data")
        self._as_postgres("%s/initdb -D %s -A trust -U postgres" % (PG_BIN, self.data))

    def _as_postgres(self, command: str) -> None:
        subprocess.run(["su", "postgres", "-c", command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> None:
        options = "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off" % (self.port, self.dir)
        self._as_postgres("%s/pg_ctl -D %s -o '%s' -l %s/log -w start" % (PG_BIN, self.data, options, self.dir))

    def stop(self) -> None:
        self._as_postgres("%s/pg_ctl -D %s -m fast -w stop" % (PG_BIN, self.data))

    def remove(self) -> None:
        if _port_open(self.port):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRabbit:
    """A RabbitMQ node of its own (name, ports, data directory), no plugins."""

    def __init__(self) -> None:
        self.port = free_port()
        self.node = "zs_test_%d@localhost" % self.port
        self.url = "amqp://guest:guest@127.0.0.1:%d/" % self.port
        self.dir = tempfile.mkdtemp(prefix="zs_rmq_")
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as handle:
            handle.write("listeners.tcp.local = 127.0.0.1:%d\n" % self.port)
        with open(os.path.join(self.dir, "plugins"), "w") as handle:
            handle.write("[].\n")
        os.chmod(self.dir, 0o777)
        self.env = dict(
            os.environ,
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(free_port()),
            RABBITMQ_CONFIG_FILE=os.path.join(self.dir, "rabbitmq.conf"),
            RABBITMQ_MNESIA_BASE=os.path.join(self.dir, "mnesia"),
            RABBITMQ_LOG_BASE=os.path.join(self.dir, "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(self.dir, "plugins"),
            RABBITMQ_PID_FILE=os.path.join(self.dir, "pid"),
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["rabbitmq-server"], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: _port_open(self.port), timeout=60, interval=0.2, what="private RabbitMQ node up")

    def stop(self) -> None:
        subprocess.run(
            ["rabbitmqctl", "-n", self.node, "stop"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        if self.proc is not None:
            self.proc.wait(60)

    def remove(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


PGBOUNCER = "/usr/sbin/pgbouncer"
OPERATORS_PGBOUNCER_INI = ROOT / "docker" / "pgbouncer.ini"
OPERATORS_POSTGRES = "host=db port=5432"  # the compose service docker/pgbouncer.ini forwards to


class PrivatePgBouncer:
    """Debian's PgBouncer running the operators' docker/pgbouncer.ini (Odoo's databases pooled
    per transaction, the common setting at scale; the "postgres" database per session) in
    front of the shared PostgreSQL, on a port of its own; trust auth like the server behind it.

    The file is the operators' own, its server address aside; the lines appended here win (a
    repeated key takes its last value, and [pgbouncer] is the file's last section).
    """

    def __init__(self, pg_host: str, pg_port: int) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="zs_pgbouncer_")
        shutil.chown(self.dir, "postgres")
        self.user = os.environ.get("USER") or "root"
        with open(os.path.join(self.dir, "userlist.txt"), "w") as handle:
            handle.write('"%s" ""\n"postgres" ""\n' % self.user)
        ini = OPERATORS_PGBOUNCER_INI.read_text()
        if OPERATORS_POSTGRES not in ini:
            raise AssertionError("docker/pgbouncer.ini no longer has %r" % OPERATORS_POSTGRES)
        ini = ini.replace(OPERATORS_POSTGRES, "host=%s port=%d" % (pg_host, pg_port))
        ini += (
            "listen_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir =\nauth_type = trust\nauth_file = %s/userlist.txt\n"
            "logfile = %s/pgbouncer.log\nstats_users = %s\n" % (self.port, self.dir, self.dir, self.user)
        )
        with open(os.path.join(self.dir, "pgbouncer.ini"), "w") as handle:
            handle.write(ini)
        for name in os.listdir(self.dir):
            shutil.chown(os.path.join(self.dir, name), "postgres")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", PGBOUNCER, os.path.join(self.dir, "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: _port_open(self.port), what="private pgbouncer up")

    def clients(self, db: str) -> int:
        """How many client connections the pooler holds on ``db`` (its admin console's SHOW CLIENTS)."""
        console = "host=127.0.0.1 port=%d dbname=pgbouncer user=%s" % (self.port, self.user)
        with psycopg.connect(console, autocommit=True, row_factory=dict_row) as conn:  # the console has no transactions
            clients = conn.execute("SHOW CLIENTS").fetchall()
        return sum(1 for client in clients if client["database"] == db)

    def log(self) -> str:
        path = Path(self.dir, "pgbouncer.log")
        return path.read_text()[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
