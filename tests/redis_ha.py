"""A highly available Redis of a test's own on loopback: a master, a replica, three Sentinels.

Debian's ``redis-server`` plays every part (``--sentinel`` makes it a Sentinel, as the
redis-sentinel package does). Sentinels declare a master down after :data:`DOWN_AFTER_MS`,
so a killed master is replaced within a few seconds instead of production's 30 s default.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile

import redis

from conftest import free_port, wait_for

SERVICE = "zs_test"
SENTINELS = 3
QUORUM = 2  # a majority of the three: one Sentinel alone never fails the master over
# Long enough that a busy test machine's scheduling hiccup is not a "down" master, short
# enough that a failover takes seconds.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 10_000
START_TIMEOUT_S = 30.0


def _answers(port: int, *command: str) -> object:
    """The reply to ``command`` (parsed by redis-py, decoded), or None when the server does not answer."""
    try:
        with redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1, decode_responses=True) as client:
            return client.execute_command(*command)
    except redis.exceptions.RedisError:
        return None


class RedisHA:
    """Master, replica and Sentinels on free ports, in a temporary directory removed on stop."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="zs_redis_ha_")
        self.master_port = free_port()
        self.replica_port = free_port()
        self.sentinel_ports = [free_port() for _ in range(SENTINELS)]
        self.procs: dict[int, subprocess.Popen] = {}

    @property
    def sentinels(self) -> str:
        """The ``redis_sentinels`` setting for this group."""
        return ",".join("127.0.0.1:%d" % port for port in self.sentinel_ports)

    @property
    def url(self) -> str:
        """A ``redis_url`` whose host the Sentinels override (only the database counts)."""
        return "redis://127.0.0.1:%d/0" % self.master_port

    def _server(self, port: int, *args: str) -> None:
        self.procs[port] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *args],
            stdout=subprocess.DEVNULL,
            cwd=self.dir,
        )

    def start(self) -> RedisHA:
        # Diskless sync without delay: the replica has the master's data in milliseconds.
        self._server(self.master_port, "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
        wait_for(lambda: _answers(self.master_port, "PING"), START_TIMEOUT_S, "redis master up")
        self._server(self.replica_port, "--replicaof", "127.0.0.1", str(self.master_port))
        wait_for(self._replica_in_sync, START_TIMEOUT_S, "redis replica in sync")
        for port in self.sentinel_ports:
            conf = os.path.join(self.dir, "sentinel_%d.conf" % port)
            with open(conf, "w") as handle:  # a Sentinel rewrites its file: one each, writable
                handle.write(
                    "port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s 127.0.0.1 %d %d\n"
                    "sentinel down-after-milliseconds %s %d\nsentinel failover-timeout %s %d\n"
                    % (port, self.dir, SERVICE, self.master_port, QUORUM, SERVICE, DOWN_AFTER_MS, SERVICE, FAILOVER_TIMEOUT_MS)
                )
            self.procs[port] = subprocess.Popen(["redis-server", conf, "--sentinel"], stdout=subprocess.DEVNULL, cwd=self.dir)
        wait_for(self._sentinels_ready, START_TIMEOUT_S, "Sentinels knowing each other and the replica")
        return self

    def _replica_in_sync(self) -> bool:
        info = _answers(self.replica_port, "INFO", "replication")  # parsed by redis-py into a dict
        return bool(info) and info.get("master_link_status") == "up"

    def _sentinels_ready(self) -> bool:
        """Every Sentinel sees the master, the replica and the two other Sentinels: a failover can happen."""
        for port in self.sentinel_ports:
            state = _answers(port, "SENTINEL", "MASTER", SERVICE)
            if not state:
                return False
            if int(state["num-slaves"]) < 1 or int(state["num-other-sentinels"]) < SENTINELS - 1:
                return False
        return True

    def master(self) -> tuple[str, int] | None:
        """The master the Sentinels name now (the first that answers), or None."""
        for port in self.sentinel_ports:
            reply = _answers(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            if reply:
                return reply[0], int(reply[1])
        return None

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=2)

    def kill_master(self) -> int:
        """SIGKILL the current master, as a crashed host would go; returns its port."""
        _host, port = self.master()
        self.procs[port].send_signal(signal.SIGKILL)
        self.procs[port].wait(10)
        return port

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
