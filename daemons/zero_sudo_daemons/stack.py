"""``make run``: the product a newcomer can click, on one URL.

When an Odoo 18 is found (``scripts/find_odoo.sh``, as the test command finds it), the runner
makes sure a demo database exists (created by Odoo itself, so ``pg_trgm`` is there, with
Odoo's demo data and every addon of ``addons/`` but the test-only ones), then starts Odoo in
prefork mode (2 HTTP workers, its gevent worker, one cron worker), the four daemons
(``zero-sudo-daemons``) and Debian's nginx running ``docker/nginx.conf``, the operators' own
proxy configuration, so that Odoo, its ``/websocket`` and the gateway's ``/ws`` share one
origin (the web client's live views authenticate to the gateway with Odoo's session cookie).
It prints, last, the URL and the login to use. Without Odoo, one line says so and how to point
at one, and the daemons run alone against the configured database.

Each child runs in a process group of its own, so a Ctrl-C (or a SIGTERM to the whole group,
which ``make`` also forwards to its child) reaches the runner only: it stops the parts in
order, proxy, daemons, Odoo, each with one graceful signal, and exits 0 when every part did.
Signals arriving within :data:`SAME_STOP_WINDOW_S` of the first are the same request (the
group's SIGTERM and make's copy of it); only a later, separate one forces the exit.

Its own settings are environment variables (:class:`RunSetting`); the daemons' are the usual
``ZERO_SUDO_*`` ones (``zero_sudo_bus.options``).
"""

from __future__ import annotations

import ast
import enum
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigurationError
from .launcher import DAEMONS
from .settings import Settings, resolve_settings

PROG = "zero-sudo run"
ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
ADDONS = ROOT / "addons"
TEST_CATEGORY = "Hidden/Tests"  # manifests of the suite's own addons: never in the demo
SAME_STOP_WINDOW_S = 1.0  # make forwards the group's SIGTERM to its child: one stop, two signals
POLL_S = 0.1
LOGIN = "admin"
PASSWORD = "admin"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "0.0.0.0", "::", "::1")


class RunSetting(enum.Enum):
    """The runner's own settings: (environment variable, default, meaning), in the README."""

    HOST = ("ZERO_SUDO_RUN_HOST", "127.0.0.1", "address the proxy listens on")
    PORT = ("ZERO_SUDO_RUN_PORT", "8080", "the one URL's port (nginx): Odoo, /websocket and the gateway's /ws")
    ODOO_PORT = ("ZERO_SUDO_RUN_ODOO_PORT", "8069", "Odoo's HTTP port (loopback, behind the proxy)")
    GEVENT_PORT = ("ZERO_SUDO_RUN_GEVENT_PORT", "8072", "Odoo's gevent port, its /websocket (loopback)")
    DB = ("ZERO_SUDO_RUN_DB", "zero_sudo_demo", "the demo database, created once with demo data, then reused")
    MODULES = ("ZERO_SUDO_RUN_MODULES", "", "addons installed in it, comma-separated (empty: every addon but test-only ones)")
    DIR = ("ZERO_SUDO_RUN_DIR", str(ROOT / ".run"), "work directory: odoo.conf, the filestore, nginx's files, logs")

    def get(self, environ: Mapping[str, str]) -> str:
        """The value in ``environ``, else the default (an empty value means the default too)."""
        return environ.get(self.value[0]) or self.value[1]


class Part(enum.Enum):
    """The processes the runner starts, in the order they are stopped."""

    PROXY = "proxy"
    DAEMONS = "daemons"
    ODOO = "odoo"


# How each part is asked to stop, then forced: nginx finishes its requests on SIGQUIT (WebSockets
# are cut after worker_shutdown_timeout); the launcher and Odoo take SIGTERM as graceful and a
# second signal as "force".
GRACEFUL: dict[Part, signal.Signals] = {Part.PROXY: signal.SIGQUIT, Part.DAEMONS: signal.SIGTERM, Part.ODOO: signal.SIGTERM}
FORCE: dict[Part, signal.Signals] = {Part.PROXY: signal.SIGTERM, Part.DAEMONS: signal.SIGTERM, Part.ODOO: signal.SIGINT}
STOP_TIMEOUT_S: dict[Part, float] = {Part.PROXY: 10.0, Part.DAEMONS: 30.0, Part.ODOO: 60.0}


class StopRequested(Exception):
    """The user asked to stop while the stack was starting."""


class PartDied(Exception):
    """A part exited on its own; the others are stopped and its code is the runner's."""

    def __init__(self, part: Part, code: int) -> None:
        super().__init__("%s exited with code %d" % (part.value, code))
        self.part = part
        self.code = code


@dataclass(frozen=True)
class OdooInstall:
    """Where scripts/find_odoo.sh found Odoo 18."""

    src: str
    python: str
    bin: str


def say(message: str) -> None:
    """One line of the runner's own, between the children's logs."""
    print("%s: %s" % (PROG, message), flush=True)


def find_odoo(environ: Mapping[str, str]) -> OdooInstall | None:
    """Odoo 18 as every script of the repository finds it (ODOO_PATH, ODOO_PYTHON), or None."""
    script = '. "%s/find_odoo.sh"; find_odoo && printf "%%s\\n%%s\\n%%s\\n" "$ODOO_SRC" "$ODOO_PY" "$ODOO_BIN"' % SCRIPTS
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=dict(environ))
    lines = result.stdout.split("\n")
    if result.returncode != 0 or len(lines) < 3:
        return None
    return OdooInstall(*lines[:3])


def demo_modules(environ: Mapping[str, str]) -> list[str]:
    """The addons the demo installs: the setting, else every addon of addons/ but the suite's own
    (category Hidden/Tests: test models and routes have no place in a product one clicks)."""
    chosen = RunSetting.MODULES.get(environ)
    if chosen:
        return [name.strip() for name in chosen.split(",") if name.strip()]
    modules = []
    for manifest in sorted(ADDONS.glob("*/__manifest__.py")):
        values = ast.literal_eval(manifest.read_text())
        if values.get("installable", True) and values.get("category") != TEST_CATEGORY:
            modules.append(manifest.parent.name)
    return modules


def http_status(url: str) -> int | None:
    """The status of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def psql(db: str, query: str, environ: Mapping[str, str]) -> tuple[bool, list[str]]:
    """A query with psql, as the repository's scripts run them (ZERO_SUDO_DB_HOST/PORT)."""
    host = environ.get("ZERO_SUDO_DB_HOST", "127.0.0.1")
    port = environ.get("ZERO_SUDO_DB_PORT", "5432")
    result = subprocess.run(
        ["psql", "-h", host, "-p", port, "-d", db, "-qAtc", query], capture_output=True, text=True, env=dict(environ)
    )
    return result.returncode == 0, [line for line in result.stdout.splitlines() if line]


def proxy_origins(host: str, port: int) -> list[str]:
    """The origins a browser may show for the proxy: both loopback spellings, or the host given."""
    if host in LOOPBACK_HOSTS:
        return ["http://localhost:%d" % port, "http://127.0.0.1:%d" % port]
    return ["http://%s:%d" % (host, port)]


def write_local_proxy(
    proxy_dir: Path,
    host: str,
    port: int,
    odoo_port: int,
    gevent_port: int,
    gateway_port: int,
    worker_connections: int = 4096,
) -> Path:
    """The operators' docker/nginx.conf with its three upstreams and its listen address made
    local, under a top-level nginx.conf of its own in ``proxy_dir``; returns that file (run it
    with ``nginx -p proxy_dir -c <it>``). ``make run`` and the suite's live stack both use it,
    so what they test is the file operators deploy."""
    proxy_dir.mkdir(parents=True, exist_ok=True)
    site = (ROOT / "docker" / "nginx.conf").read_text()
    for old, new in (
        ("server odoo:8069;", "server 127.0.0.1:%d;" % odoo_port),
        ("server odoo:8072;", "server 127.0.0.1:%d;" % gevent_port),
        ("server gateway:9104;", "server 127.0.0.1:%d;" % gateway_port),
        ("listen 80;", "listen %s:%d;" % ("[%s]" % host if ":" in host else host, port)),
    ):
        if old not in site:
            raise ConfigurationError("docker/nginx.conf no longer has %r: update %s" % (old, __file__))
        site = site.replace(old, new)
    (proxy_dir / "site.conf").write_text(site)
    temp = "".join(
        "  %s_temp_path %s/%s;\n" % (name, proxy_dir, name) for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = proxy_dir / "nginx.conf"
    # Each proxied WebSocket holds two descriptors (client and upstream): hence the file limit.
    conf.write_text(
        "%sworker_processes auto;\nworker_rlimit_nofile %d;\ndaemon off;\npid %s/nginx.pid;\n"
        "error_log %s/error.log warn;\nworker_shutdown_timeout 5s;\nevents { worker_connections %d; }\n"
        "http {\n  access_log off;\n%s  include %s/site.conf;\n}\n"
        % (
            "user root;\n" if os.geteuid() == 0 else "",
            worker_connections * 2,
            proxy_dir,
            proxy_dir,
            worker_connections,
            temp,
            proxy_dir,
        )
    )
    return conf


class Stack:
    """The runner: starts the parts, watches them, stops them in order on one signal."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = dict(environ)
        self.procs: dict[Part, subprocess.Popen] = {}
        self.installer: subprocess.Popen | None = None
        self.stop_at: float | None = None
        self.forced = False
        self.workdir = Path(RunSetting.DIR.get(environ))

    # -- signals ---------------------------------------------------------------------------
    def on_signal(self, signum: int, _frame: object) -> None:
        """First signal: stop in order (done by the main loop). A separate later one: force."""
        now = time.monotonic()
        if self.stop_at is None:
            self.stop_at = now
            return
        if now - self.stop_at < SAME_STOP_WINDOW_S or self.forced:
            return  # the same stop, delivered twice (the group's signal and make's copy)
        self.forced = True
        print("%s: %s again: forcing the exit" % (PROG, signal.Signals(signum).name), file=sys.stderr, flush=True)
        if self.installer is not None and self.installer.poll() is None:
            self.installer.kill()
        for part, proc in self.procs.items():
            if proc.poll() is None:
                proc.send_signal(FORCE[part])

    def check(self) -> None:
        """Between two waits while starting: a stop request or a dead part ends the start."""
        if self.stop_at is not None:
            raise StopRequested
        for part, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                raise PartDied(part, code)

    def wait_for(self, predicate: Callable[[], object], timeout: float, what: str) -> bool:
        """Poll ``predicate`` until true (True), or ``timeout`` (False); stops and deaths raise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            if predicate():
                return True
            time.sleep(POLL_S)
        say("%s: not ready after %.0f s" % (what, timeout))
        return False

    def spawn(self, part: Part, argv: list[str], **kwargs: object) -> subprocess.Popen:
        """A part in a process group of its own: only the runner's signal reaches it."""
        proc = subprocess.Popen(argv, process_group=0, **kwargs)
        self.procs[part] = proc
        return proc

    # -- the daemons -----------------------------------------------------------------------
    def daemon_settings(self, flags: list[str], environ: Mapping[str, str]) -> Settings:
        """The daemons' settings as the launcher will resolve them (their ports, for health)."""
        return resolve_settings(flags, environ, PROG)

    def start_daemons(self, flags: list[str], environ: Mapping[str, str]) -> Settings:
        settings = self.daemon_settings(flags, environ)
        self.spawn(Part.DAEMONS, [sys.executable, "-m", "zero_sudo_daemons.launcher", *flags], env=dict(environ))
        return settings

    def daemons_healthy(self, settings: Settings) -> None:
        """Wait up to a minute for every daemon's /healthz, all at once; those still unhealthy are
        named with their URL, not fatal: a daemon waiting for its database or broker says why in
        its own log and retries, and Odoo is usable meanwhile."""
        urls = {name: self.health_url(name, settings) for name in DAEMONS}
        healthy: set[str] = set()

        def all_healthy() -> bool:
            healthy.update(name for name, url in urls.items() if name not in healthy and http_status(url) == 200)
            return len(healthy) == len(urls)

        if not self.wait_for(all_healthy, 60, "the daemons"):
            say(
                "not healthy yet (see their log lines): %s"
                % ", ".join("%s %s" % (n, u) for n, u in urls.items() if n not in healthy)
            )

    @staticmethod
    def health_url(name: str, settings: Settings) -> str:
        host, port = {
            "relay": (settings.relay_http_host, settings.relay_http_port),
            "landing": (settings.landing_http_host, settings.landing_http_port),
            "poller": (settings.poller_http_host, settings.poller_http_port),
            "gateway": (settings.gateway_host, settings.gateway_port),
        }[name]
        return "http://%s:%d/healthz" % ("127.0.0.1" if host in ("0.0.0.0", "::") else host, port)

    # -- Odoo ------------------------------------------------------------------------------
    def write_odoo_conf(self, odoo: OdooInstall, db: str, odoo_port: int, gevent_port: int, secret: str) -> Path:
        """The suite's odoo.conf (scripts/find_odoo.sh), with demo data and the gateway's secret."""
        odoo_dir = self.workdir / "odoo"
        odoo_dir.mkdir(parents=True, exist_ok=True)
        conf = odoo_dir / "odoo.conf"
        env = {
            **self.environ,
            "ODOO_PATH": self.environ.get("ODOO_PATH", "/opt/odoo"),
            "ZERO_SUDO_TEST_HTTP_PORT": str(odoo_port),
            "ZERO_SUDO_TEST_GEVENT_PORT": str(gevent_port),
        }
        subprocess.run(
            ["bash", "-c", '. "%s/find_odoo.sh"; find_odoo; write_odoo_conf "$1" "$2" "$3"' % SCRIPTS, "-", conf, db, odoo_dir],
            check=True,
            env=env,
        )
        lines = [line for line in conf.read_text().splitlines() if not line.startswith("without_demo")]
        lines.append("gateway_token_secret = %s" % secret)  # the [zero_sudo] section is last
        conf.write_text("\n".join(lines) + "\n")
        conf.chmod(0o600)  # it holds the secret
        return conf

    def ensure_library(self, odoo: OdooInstall) -> None:
        """Odoo's Python imports zero_sudo_bus (the addons need it): install it there once."""
        if subprocess.run([odoo.python, "-c", "import zero_sudo_bus.tokens"], capture_output=True).returncode == 0:
            return
        say("installing this repository's library into %s" % odoo.python)
        subprocess.run(
            [odoo.python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", "%s[odoo]" % ROOT], check=True
        )

    def ensure_demo_database(self, odoo: OdooInstall, conf: Path, db: str, modules: list[str]) -> None:
        """Create the demo database through Odoo once (pg_trgm, demo data), then reuse it; install
        what a later run adds. A database this run created and could not finish is dropped, so the
        next run starts it afresh rather than on half a registry."""
        exists, _ = psql(db, "SELECT 1", self.environ)
        installed: set[str] = set()
        if exists:
            _, rows = psql(db, "SELECT name FROM ir_module_module WHERE state = 'installed'", self.environ)
            installed = set(rows)
        missing = [module for module in modules if module not in installed]
        if not missing:
            say("database %s: reused (%s installed)" % (db, ", ".join(modules)))
            return
        log = conf.parent / "install.log"
        say(
            "database %s: %s %s with Odoo's demo data; this takes minutes (log: %s)"
            % (db, "installing" if exists else "creating it with", ", ".join(missing), log)
        )
        with open(log, "w") as out:
            self.installer = subprocess.Popen(
                [odoo.python, odoo.bin, "-c", str(conf), "-d", db, "-i", ",".join(missing), "--stop-after-init"],
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,
                cwd=conf.parent,
            )
            try:
                while self.installer.poll() is None:
                    if self.stop_at is not None:
                        self.installer.terminate()
                        self.installer.wait()
                        break
                    time.sleep(POLL_S)
            finally:
                code = self.installer.wait()
                self.installer = None
                if code != 0 and not exists:
                    psql("postgres", 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db, self.environ)
        self.check()
        if code != 0:
            tail = log.read_text().splitlines()[-20:]
            raise ConfigurationError(
                "installing %s into %s failed (log: %s):\n%s" % (", ".join(missing), db, log, "\n".join(tail))
            )

    def start_odoo(self, odoo: OdooInstall, conf: Path, db: str, odoo_port: int) -> None:
        """Prefork: 2 HTTP workers, the gevent worker (Odoo spawns it), one cron worker."""
        self.spawn(
            Part.ODOO,
            [
                odoo.python,
                odoo.bin,
                "-c",
                str(conf),
                "-d",
                db,
                "--db-filter",
                "^%s$" % db,
                "--workers",
                "2",
                "--max-cron-threads",
                "1",
                "--http-interface",
                "127.0.0.1",
                "--proxy-mode",
                "--log-handler",
                "odoo.service.server:INFO",  # its start and stop lines, not every request
            ],
            cwd=conf.parent,
        )
        self.wait_for(lambda: http_status("http://127.0.0.1:%d/web/health" % odoo_port) == 200, 180, "Odoo")

    def wait_for_gevent(self, gevent_port: int) -> None:
        """Odoo's gevent worker starts last: its line comes before the URL, and /websocket answers."""

        def listening() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", gevent_port)) == 0

        self.wait_for(listening, 60, "Odoo's gevent worker (port %d)" % gevent_port)

    # -- the proxy -------------------------------------------------------------------------
    def start_proxy(self, host: str, port: int, odoo_port: int, gevent_port: int, gateway_port: int) -> None:
        """Debian's nginx with docker/nginx.conf, its three upstreams and listen address made local."""
        nginx = self.environ.get("ZERO_SUDO_NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.access(nginx, os.X_OK):
            raise ConfigurationError("nginx is missing: run 'make services' or 'apt-get install nginx' (or set ZERO_SUDO_NGINX)")
        proxy_dir = self.workdir / "nginx"
        conf = write_local_proxy(proxy_dir, host, port, odoo_port, gevent_port, gateway_port)
        self.spawn(Part.PROXY, [nginx, "-p", str(proxy_dir), "-c", str(conf)])
        url = "http://127.0.0.1:%d/web/login" % port if host in LOOPBACK_HOSTS else "http://%s:%d/web/login" % (host, port)
        if not self.wait_for(lambda: http_status(url) == 200, 30, "the proxy (%s)" % url):
            raise ConfigurationError("nginx does not serve %s; see %s/error.log" % (url, proxy_dir))

    # -- the two shapes --------------------------------------------------------------------
    def start(self) -> None:
        odoo = find_odoo(self.environ)
        env = dict(self.environ)
        env.setdefault("ZERO_SUDO_LOG_FORMAT", "text")  # a terminal, not a log collector
        if odoo is None:
            settings = self.daemon_settings([], env)
            say(
                "no Odoo 18 found at ODOO_PATH=%s: running the daemons alone against database %s "
                "(set ODOO_PATH to an Odoo 18 source install, and ODOO_PYTHON if needed, for the whole product)"
                % (self.environ.get("ODOO_PATH", "/opt/odoo"), settings.db_name)
            )
            self.start_daemons([], env)
            self.daemons_healthy(settings)
            say("daemons up: %s; Ctrl-C stops them" % ", ".join(self.health_url(name, settings) for name in DAEMONS))
            return
        host = RunSetting.HOST.get(self.environ)
        port, odoo_port, gevent_port = (
            int(setting.get(self.environ)) for setting in (RunSetting.PORT, RunSetting.ODOO_PORT, RunSetting.GEVENT_PORT)
        )
        db = RunSetting.DB.get(self.environ)
        modules = demo_modules(self.environ)
        secret = env.get("ZERO_SUDO_GATEWAY_TOKEN_SECRET") or secrets.token_urlsafe(32)
        env["ZERO_SUDO_GATEWAY_TOKEN_SECRET"] = secret  # Odoo signs with it, the gateway checks
        origins = proxy_origins(host, port) + [o for o in env.get("ZERO_SUDO_GATEWAY_ALLOWED_ORIGINS", "").split(",") if o]
        flags = ["--db-name", db, "--gateway-allowed-origins", ",".join(origins)]
        settings = self.daemon_settings(flags, env)  # a bad daemon setting fails before minutes of install
        say("Odoo 18 at %s; the demo on database %s" % (odoo.src, db))
        self.ensure_library(odoo)
        conf = self.write_odoo_conf(odoo, db, odoo_port, gevent_port, secret)
        self.ensure_demo_database(odoo, conf, db, modules)
        self.start_odoo(odoo, conf, db, odoo_port)
        self.start_daemons(flags, env)
        self.daemons_healthy(settings)
        self.start_proxy(host, port, odoo_port, gevent_port, settings.gateway_port)
        self.wait_for_gevent(gevent_port)
        say(
            "database %s, Odoo on 127.0.0.1:%d (gevent %d), gateway on %d; Ctrl-C stops everything"
            % (db, odoo_port, gevent_port, settings.gateway_port)
        )
        say("open %s and log in as %s / %s (a second user: demo / demo)" % (proxy_origins(host, port)[0], LOGIN, PASSWORD))

    def watch(self) -> None:
        """Until a stop is asked for or a part dies."""
        while self.stop_at is None:
            self.check()
            time.sleep(POLL_S)

    def stop(self) -> dict[Part, int]:
        """Each part, in order, with one graceful signal; a part past its timeout is killed."""
        codes: dict[Part, int] = {}
        for part in Part:
            proc = self.procs.get(part)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(GRACEFUL[part])
                try:
                    proc.wait(STOP_TIMEOUT_S[part])
                except subprocess.TimeoutExpired:
                    say("%s still running %.0f s after %s: killing it" % (part.value, STOP_TIMEOUT_S[part], GRACEFUL[part].name))
                    proc.kill()
                    proc.wait()
            codes[part] = proc.returncode
        return codes

    def run(self) -> int:
        signal.signal(signal.SIGINT, self.on_signal)
        signal.signal(signal.SIGTERM, self.on_signal)
        failure = 0
        try:
            self.start()
            self.watch()
        except StopRequested:
            pass
        except PartDied as exc:
            say("%s; stopping the others" % exc)
            failure = exc.code or 1
        except (ConfigurationError, subprocess.CalledProcessError) as exc:
            say(str(exc))
            failure = 2
        codes = self.stop()
        summary = ", ".join("%s %d" % (part.value, code) for part, code in codes.items())
        if failure:
            return failure
        bad = [code for code in codes.values() if code != 0]
        if self.forced or bad:
            say("stopped (%s)%s" % (summary, ", forced" if self.forced else ""))
            return 1 if self.forced or bad[0] < 0 else bad[0]
        say("stopped gracefully (%s)" % summary)
        return 0


def main() -> int:
    try:
        return Stack(os.environ).run()
    except ConfigurationError as exc:
        say(" ".join(str(exc).split()))
        return 2


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
