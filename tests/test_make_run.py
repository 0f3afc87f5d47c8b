"""``make run`` as a newcomer runs it: the whole product on one URL, stopped with one Ctrl-C.

``make run`` is started in a process group of its own, as a terminal starts a foreground job,
on private ports, a private work directory and (with Odoo) a private demo database with a
small set of addons; Ctrl-C is one SIGINT to that whole group, make included.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path

import psycopg
import pytest
from ingest_fixtures import create_schema

from conftest import free_port, pg_conninfo, wait_until
from zero_sudo_daemons.stack import find_odoo

ROOT = Path(__file__).resolve().parent.parent
STOP_WITHIN_S = 15
FORCED_WORDS = ("forcing exit", "forcing the exit", "Forced shutdown", "Stopping forcefully", "killing it")
DAEMON_PORTS = {
    "relay": "ZERO_SUDO_RELAY_HTTP_PORT",
    "landing": "ZERO_SUDO_LANDING_HTTP_PORT",
    "poller": "ZERO_SUDO_POLLER_HTTP_PORT",
    "gateway": "ZERO_SUDO_GATEWAY_PORT",
}


class MakeRun:
    """``make run`` in a process group of its own; its output kept line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail("make run exited with %s:\n%s" % (self.proc.returncode, self.output()[-5000:]))
        return True

    def descendants(self) -> set[int]:
        """Every process make started, whatever their process group (each part has its own)."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        found: set[int] = set()
        todo = [self.proc.pid]
        while todo:
            for child in children.get(todo.pop(), []):
                found.add(child)
                todo.append(child)
        return found

    def ctrl_c(self) -> tuple[int, float]:
        """One SIGINT to the whole group, as a terminal's Ctrl-C: make's code and the seconds until
        every process it started was gone."""
        processes = self.descendants()
        assert processes, "make run started nothing"
        started = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        code = self.proc.wait(STOP_WITHIN_S + 5)
        wait_until(lambda: not any(Path("/proc/%d" % pid).exists() for pid in processes), timeout=5, what="every child gone")
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            for pid in self.descendants():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.kill()
            self.proc.wait()


def assert_stopped_cleanly(run: MakeRun, code: int, seconds: float) -> None:
    """What a user sees after Ctrl-C: everything gone within 15 s, no error from make (it reports
    a child that failed or died of a signal with '***'), the runner's 'stopped gracefully' with
    every part's code 0, and no line saying an exit was forced."""
    output = run.output()
    assert seconds < STOP_WITHIN_S, output[-3000:]
    # make itself dies of the SIGINT it got once its child is done (GNU make re-raises it).
    assert code in (0, -signal.SIGINT), output[-3000:]
    assert "***" not in output, output[-3000:]
    summary = [line for line in run.lines if "stopped gracefully" in line]
    assert summary, output[-3000:]
    assert all(word in summary[-1] for word in (" 0", "daemons 0")), summary
    assert " 1" not in summary[-1] and "-" not in summary[-1].partition("(")[2], summary
    forced = [line for line in run.lines if any(word in line for word in FORCED_WORDS)]
    assert not forced, output[-3000:]


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def private_ports() -> dict[str, str]:
    return {variable: str(free_port()) for variable in DAEMON_PORTS.values()}


@pytest.fixture
def demo_db() -> Iterator[str]:
    """A private demo database name; dropped afterwards (make run creates it through Odoo)."""
    name = "zs_run_" + secrets.token_hex(4)
    yield name
    with psycopg.connect(pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


@pytest.mark.skipif(find_odoo(os.environ) is None, reason="no Odoo 18 found (ODOO_PATH, ODOO_PYTHON)")
def test_make_run_serves_odoo_and_the_gateway_on_one_url_and_stops_on_one_ctrl_c(demo_db, tmp_path):
    port = free_port()
    ports = private_ports()
    run = MakeRun(
        {
            "ZERO_SUDO_RUN_PORT": str(port),
            "ZERO_SUDO_RUN_ODOO_PORT": str(free_port()),
            "ZERO_SUDO_RUN_GEVENT_PORT": str(free_port()),
            "ZERO_SUDO_RUN_DB": demo_db,
            "ZERO_SUDO_RUN_MODULES": "zero_sudo_live,zero_sudo_ingest",  # the full set takes minutes here
            "ZERO_SUDO_RUN_DIR": str(tmp_path),
            **ports,
        }
    )
    try:
        origin = "http://localhost:%d" % port
        wait_until(lambda: run.alive() and "log in as" in run.output(), timeout=900, interval=0.5, what="make run's URL")
        last = run.lines[-1]
        assert origin in last and "admin / admin" in last, run.output()[-3000:]
        assert http_status(origin + "/web/login") == 200

        # Log in through the proxy as the browser does, and read a record of the demo data.
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

        def rpc(path: str, params: dict) -> object:
            body = json.dumps({"jsonrpc": "2.0", "method": "call", "id": 1, "params": params}).encode()
            request = urllib.request.Request(origin + path, body, {"Content-Type": "application/json"})
            with opener.open(request, timeout=60) as response:
                answer = json.loads(response.read())
            assert "error" not in answer, answer
            return answer["result"]

        uid = rpc("/web/session/authenticate", {"db": demo_db, "login": "admin", "password": "admin"})["uid"]
        admin = rpc(
            "/web/dataset/call_kw/res.users/read",
            {"model": "res.users", "method": "read", "args": [[uid], ["name"]], "kwargs": {}},
        )
        assert admin[0]["name"] == "Mitchell Admin"  # Odoo's demo data is there
        # The gateway answers behind the same origin (a WebSocket handshake is refused without upgrade).
        assert http_status(origin + "/ws") not in (None, 404, 502)

        code, seconds = run.ctrl_c()
        assert_stopped_cleanly(run, code, seconds)
    finally:
        run.kill()


def test_make_run_without_odoo_runs_the_daemons_alone_and_stops_on_one_ctrl_c(pg_db, tmp_path):
    create_schema(pg_db)  # the landing daemon's table, as the ingest addon would make it
    ports = private_ports()
    run = MakeRun({"ODOO_PATH": str(tmp_path), "ZERO_SUDO_DB_NAME": pg_db, "ZERO_SUDO_RUN_DIR": str(tmp_path), **ports})
    try:
        urls = {name: "http://127.0.0.1:%s/healthz" % ports[variable] for name, variable in DAEMON_PORTS.items()}
        for name, url in urls.items():
            wait_until(
                lambda url=url: run.alive() and http_status(url) == 200, timeout=60, interval=0.2, what="%s healthy" % name
            )
        wait_until(lambda: "daemons up" in run.output(), timeout=30, what="the runner's 'daemons up'")
        about_odoo = [line for line in run.lines if "Odoo" in line]
        assert len(about_odoo) == 1, run.output()[-3000:]
        assert "ODOO_PATH" in about_odoo[0] and pg_db in about_odoo[0]

        code, seconds = run.ctrl_c()
        assert_stopped_cleanly(run, code, seconds)
    finally:
        run.kill()
