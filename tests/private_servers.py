"""Servers of a test's own, on free ports, that it may stop and restart without disturbing
anyone else using the machine's shared PostgreSQL, Redis and RabbitMQ."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile

import redis

from conftest import free_port, wait_until

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


class PrivatePgBouncer:
    """Debian's PgBouncer in front of the shared PostgreSQL, in transaction pooling mode (the
    common setting at scale), on a port of its own; trust auth like the server behind it."""

    def __init__(self, pg_host: str, pg_port: int, pool_mode: str = "transaction") -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="zs_pgbouncer_")
        shutil.chown(self.dir, "postgres")
        user = os.environ.get("USER") or "root"
        with open(os.path.join(self.dir, "userlist.txt"), "w") as handle:
            handle.write('"%s" ""\n"postgres" ""\n' % user)
        with open(os.path.join(self.dir, "pgbouncer.ini"), "w") as handle:
            handle.write(
                "[databases]\n* = host=%s port=%d\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = %d\n"
                "unix_socket_dir =\nauth_type = trust\nauth_file = %s/userlist.txt\npool_mode = %s\n"
                "max_client_conn = 200\ndefault_pool_size = 10\nlogfile = %s/pgbouncer.log\n"
                % (pg_host, pg_port, self.port, self.dir, pool_mode, self.dir)
            )
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

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
