"""The whole live chain on loopback, for the browser test and ``make bench-live``: a real Odoo 18
(prefork, ``--workers 2``) on a fresh database, the relay, the gateway, and Debian's nginx in
front with the operators' own ``docker/nginx.conf``.

Odoo is found as every script of the repository finds it (``scripts/find_odoo.sh``: ``ODOO_PATH``,
``ODOO_PYTHON``), never downloaded; :func:`find_odoo` returns None when there is none.

Standard library only (and ``make run``'s own ``zero_sudo_daemons.stack``): ``bench-live``
imports it in Odoo's Python too, which has none of the test suite's packages. The suite's
``conftest`` takes :func:`wait_for` and :func:`free_port` from here.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.cookiejar import CookieJar
from pathlib import Path

from zero_sudo_daemons.stack import OdooInstall, write_local_proxy
from zero_sudo_daemons.stack import find_odoo as find_odoo_in

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
NGINX = os.environ.get("ZERO_SUDO_NGINX", "/usr/sbin/nginx")
REDIS_URL_DEFAULT = "redis://127.0.0.1:6379/0"
TOKEN_SECRET = "live-stack-secret-" + secrets.token_hex(8)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    predicate: Callable[[], object], timeout: float, what: str, log: Callable[[], str] = lambda: "", interval: float = 0.05
) -> object:
    """Poll ``predicate`` until it is truthy and return its value; after ``timeout`` seconds,
    ``TimeoutError`` naming ``what`` (and what ``log()`` says). A safety net for tests, servers
    and benchmarks alike, never a speed assertion."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(("timed out after %.1fs waiting for %s\n%s" % (timeout, what, log())).rstrip())
        time.sleep(interval)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def find_odoo() -> OdooInstall | None:
    """Odoo 18 as every script of the repository finds it (scripts/find_odoo.sh), or None."""
    return find_odoo_in(os.environ)


def gevent_problem(odoo: OdooInstall) -> str | None:
    """Why Odoo's gevent process (its /websocket bus) cannot start with this Python, or None.

    The live chain does not need it; Odoo's own bus, which bench-live compares against, does.
    """
    probe = subprocess.run([odoo.python, "-c", "import gevent.monkey; gevent.monkey.patch_all()"], capture_output=True, text=True)
    if probe.returncode == 0:
        return None
    last = (probe.stderr.strip().splitlines() or ["?"])[-1]
    return "Odoo's gevent process cannot start in %s: %s" % (odoo.python, last)


def _bash(function_call: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(
        ["bash", "-c", '. "%s/find_odoo.sh"; find_odoo; %s' % (SCRIPTS, function_call)],
        check=True,
        env={**os.environ, **(env or {})},
    )


class OutputCollector:
    """Keeps a subprocess's output lines (for failure messages)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        threading.Thread(target=self._collect, args=(proc,), daemon=True).start()

    def _collect(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.append(line)

    def tail(self, count: int = 30) -> str:
        return "".join(self.lines[-count:])


class OdooServer:
    """A real Odoo server on a fresh database of its own, in prefork mode.

    ``pooler``: the host and port of a connection pooler that Odoo reaches PostgreSQL through,
    to install its modules and to serve, as its ``db_host``/``db_port``; the database itself is
    created and dropped on PostgreSQL, as an operator does with psql.
    """

    def __init__(
        self,
        odoo: OdooInstall,
        modules: list[str],
        workers: int = 2,
        db: str | None = None,
        pooler: tuple[str, int] | None = None,
    ) -> None:
        self.odoo = odoo
        self.modules = modules
        self.workers = workers
        self.pooler = pooler
        self.db = db or "zs_live_" + secrets.token_hex(4)
        self.http_port = free_port()
        self.gevent_port = free_port()
        self.dir = tempfile.mkdtemp(prefix="zs_odoo_")
        self.conf = os.path.join(self.dir, "odoo.conf")
        self.proc: subprocess.Popen | None = None
        self.output: OutputCollector | None = None
        self.installed = False
        self.gevent_problem: str | None = None

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.http_port

    def _command(self, *args: str, subcommand: str | None = None) -> list[str]:
        """odoo-bin [subcommand] on this server's configuration and database, with ``args``."""
        head = [self.odoo.python, self.odoo.bin] + ([subcommand] if subcommand else [])
        return [*head, "-c", self.conf, "-d", self.db, *args]

    def install(self) -> None:
        """Make sure Odoo's Python has this repository's library, write the configuration,
        create the database as an operator would, install the modules (as odoo_tests.sh does)."""
        check = subprocess.run([self.odoo.python, "-c", "import zero_sudo_bus.tokens"], capture_output=True)
        if check.returncode != 0:
            subprocess.run(
                [self.odoo.python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", "%s[odoo]" % ROOT],
                check=True,
            )
        env = {"ZERO_SUDO_TEST_HTTP_PORT": str(self.http_port), "ZERO_SUDO_TEST_GEVENT_PORT": str(self.gevent_port)}
        if self.pooler is not None:
            env.update(ZERO_SUDO_DB_HOST=self.pooler[0], ZERO_SUDO_DB_PORT=str(self.pooler[1]))  # its db_host, db_port
        _bash('write_odoo_conf "%s" "%s" "%s"' % (self.conf, self.db, self.dir), env)
        self.add_settings(gateway_token_secret=TOKEN_SECRET)
        _bash('fresh_database "%s"' % self.db)
        log = os.path.join(self.dir, "install.log")
        with open(log, "w") as out:
            done = subprocess.run(
                self._command("-i", ",".join(self.modules), "--stop-after-init"),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
            )
        if done.returncode != 0:
            raise RuntimeError("installing %s failed:\n%s" % (self.modules, Path(log).read_text()[-3000:]))
        self.installed = True

    def start(self) -> OdooServer:
        self.proc = subprocess.Popen(
            self._command(
                "--db-filter",
                "^%s$" % self.db,
                "--workers",
                str(self.workers),
                "--max-cron-threads",
                "0",
                "--http-interface",
                "127.0.0.1",
                "--proxy-mode",
                "--limit-time-real",
                "600",
                "--log-level",
                "warn",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.dir,
        )
        self.output = OutputCollector(self.proc)
        wait_for(self._healthy, 120, "Odoo /web/health", lambda: self.output.tail())
        self.gevent_problem = gevent_problem(self.odoo)
        if self.gevent_problem is None:
            wait_for(lambda: port_open(self.gevent_port), 60, "Odoo's gevent port", lambda: self.output.tail())
        return self

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError("Odoo exited with %s:\n%s" % (self.proc.returncode, self.output.tail()))
        try:
            with urllib.request.urlopen(self.url + "/web/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def shell(self, script: str, timeout: float = 300) -> str:
        """Run ``script`` in ``odoo shell`` on this server's configuration and database (as an
        operator would, through the same ``db_host``); its standard output."""
        done = subprocess.run(
            self._command("--no-http", "--log-level", "warn", subcommand="shell"),
            input=script,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.dir,
        )
        if done.returncode != 0:
            raise RuntimeError("odoo shell failed (%d):\n%s" % (done.returncode, done.stderr[-3000:]))
        return done.stdout

    def add_settings(self, **values: object) -> None:
        """Append keys to the ``[zero_sudo]`` section (the last of the file) of odoo.conf."""
        with open(self.conf, "a") as conf:
            conf.writelines("%s = %s\n" % item for item in values.items())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def drop(self) -> None:
        self.stop()
        _bash(
            'psql -h "${ZERO_SUDO_DB_HOST:-127.0.0.1}" -p "${ZERO_SUDO_DB_PORT:-5432}" -d postgres -qAtc \'DROP DATABASE IF EXISTS "%s" WITH (FORCE)\' >/dev/null'
            % self.db
        )
        shutil.rmtree(self.dir, ignore_errors=True)


class Daemon:
    """A daemon of this repository (``python -m zero_sudo_daemons.<name>``) on a free ops port."""

    def __init__(self, name: str, port_flag: str, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zero_sudo_daemons.%s" % name, port_flag, str(self.port), "--log-format", "text", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = OutputCollector(self.proc)
        wait_for(self._healthy, 30, "%s healthy" % name, lambda: self.output.tail())

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError("daemon exited with %s:\n%s" % (self.proc.returncode, self.output.tail()))
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.port, timeout=2) as response:
                return response.status == 200
        except urllib.error.HTTPError as exc:
            return exc.code == 200
        except OSError:
            return False

    def metric(self, sample: str) -> float:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.port, timeout=5) as response:
            body = response.read().decode()
        total = 0.0
        for line in body.splitlines():
            name, _, value = line.rpartition(" ")
            if name == sample or name.startswith(sample + "{"):
                total += float(value)
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def ensure_nginx() -> None:
    """Debian's nginx, installed with apt-get when missing (as root), or one actionable error."""
    if os.access(NGINX, os.X_OK):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError("%s is missing: run 'apt-get install -y nginx' as root (or set ZERO_SUDO_NGINX)" % NGINX)
    print("live stack: installing nginx with apt-get", file=sys.stderr)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "nginx"],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        stdout=subprocess.DEVNULL,
        check=True,
    )


class PrivateNginx:
    """Debian's nginx on a loopback port, running docker/nginx.conf with loopback upstreams."""

    def __init__(self, odoo_port: int, gevent_port: int, gateway_port: int, worker_connections: int = 8192) -> None:
        ensure_nginx()
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="zs_nginx_")
        self.conf = write_local_proxy(
            Path(self.dir), "127.0.0.1", self.port, odoo_port, gevent_port, gateway_port, worker_connections
        )
        self.proc: subprocess.Popen | None = None

    @property
    def origin(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    def start(self) -> PrivateNginx:
        self.proc = subprocess.Popen(
            [NGINX, "-p", self.dir, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: self.proc.poll() is None and port_open(self.port), 20, "nginx up", self.log)
        return self

    def log(self) -> str:
        path = Path(self.dir, "error.log")
        return path.read_text()[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        shutil.rmtree(self.dir, ignore_errors=True)


class LiveStack:
    """Odoo, relay, gateway and nginx together; ``origin`` is the one origin users open."""

    def __init__(self, odoo: OdooInstall, modules: list[str], redis_url: str, gateway_args: tuple[str, ...] = ()) -> None:
        self.odoo = OdooServer(odoo, modules)
        self.redis_url = redis_url
        self.gateway_args = gateway_args
        self.relay: Daemon | None = None
        self.gateway: Daemon | None = None
        self.nginx: PrivateNginx | None = None

    def start(self) -> LiveStack:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> LiveStack:
        if not self.odoo.installed:
            self.odoo.install()
        self.odoo.start()
        db = self.odoo.db
        common = ("--db-name", db, "--db-host", os.environ.get("ZERO_SUDO_DB_HOST", "127.0.0.1"), "--redis-url", self.redis_url)
        self.relay = Daemon("relay", "--relay-http-port", *common)
        gateway_port = free_port()
        self.nginx = PrivateNginx(self.odoo.http_port, self.odoo.gevent_port, gateway_port)
        self._gateway_command = (
            "gateway",
            "--gateway-port",
            *common,
            "--gateway-token-secret",
            TOKEN_SECRET,
            "--gateway-allowed-origins",
            "%s,%s" % (self.nginx.origin, self.odoo.url),
            *self.gateway_args,
        )
        self.gateway = Daemon(*self._gateway_command, port=gateway_port)
        self.nginx.start()
        return self

    def stop_gateway(self) -> None:
        """Stop the gateway (SIGTERM: its clients are closed with 1001)."""
        self.gateway.stop()

    def start_gateway(self) -> None:
        """Start a gateway again on the same port, behind the same nginx."""
        self.gateway = Daemon(*self._gateway_command, port=self.gateway.port)

    @property
    def origin(self) -> str:
        return self.nginx.origin

    def stop(self) -> None:
        for part in (self.nginx, self.gateway, self.relay):
            if part is not None:
                part.stop()
        self.odoo.drop()


class JsonRpc:
    """A logged-in Odoo JSON-RPC client (cookie session), as the web client calls Odoo."""

    def __init__(self, origin: str, db: str, login: str, password: str) -> None:
        self.origin = origin
        self.cookies = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.uid = self.call("/web/session/authenticate", {"db": db, "login": login, "password": password})["uid"]

    def call(self, path: str, params: dict) -> object:
        body = json.dumps({"jsonrpc": "2.0", "method": "call", "id": 1, "params": params}).encode()
        request = urllib.request.Request(self.origin + path, body, {"Content-Type": "application/json"})
        with self.opener.open(request, timeout=60) as response:
            answer = json.loads(response.read())
        if "error" in answer:
            raise RuntimeError("JSON-RPC %s failed: %s" % (path, answer["error"].get("data", {}).get("message", answer["error"])))
        return answer["result"]

    def call_kw(self, model: str, method: str, args: list, kwargs: dict | None = None) -> object:
        return self.call(
            "/web/dataset/call_kw/%s/%s" % (model, method),
            {"model": model, "method": method, "args": args, "kwargs": kwargs or {}},
        )

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.opener.open(self.origin + path, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    @property
    def session_id(self) -> str:
        return next(cookie.value for cookie in self.cookies if cookie.name == "session_id")
