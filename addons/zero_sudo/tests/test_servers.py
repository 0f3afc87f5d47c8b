"""Two real Odoo server processes sharing one login through Redis, and Redis restarted under
them: the web tier keeps no state of its own, and losing Redis logs users out, never crashes."""

import configparser
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar

from odoo.tests import BaseCase, tagged
from odoo.tools import config

from .common import free_port

SERVER_START_S = 90


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.2)


class Redis:
    """A redis-server of the test's own: restarting it disturbs nobody else."""

    def __init__(self):
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        _wait(lambda: _port_open(self.port), 15, "redis-server")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def _port_open(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Server:
    """``odoo`` (threaded) on a port of its own, zero_sudo server-wide, Redis of the test."""

    def __init__(self, conf_path):
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "odoo",
                "-c",
                conf_path,
                "--http-port",
                str(self.port),
                "--gevent-port",
                str(free_port()),
                "--max-cron-threads",
                "0",
                "--workers",
                "0",
                "--log-level",
                "warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            text=True,
        )

    def wait_ready(self):
        _wait(lambda: self._status("/web/health") == 200, SERVER_START_S, "Odoo on port %d" % self.port)

    def _status(self, path):
        try:
            with urllib.request.urlopen(self.base + path, timeout=2) as response:
                return response.status
        except (OSError, urllib.error.HTTPError):
            return None

    def rpc(self, path, params, cookies):
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps({"jsonrpc": "2.0", "params": params}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with opener.open(request, timeout=10) as response:
            return response.status, json.loads(response.read())

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def logged(self):
        self.log.seek(0)
        return self.log.read()


@tagged("post_install", "-at_install", "zero_sudo")
class TestTwoServers(BaseCase):
    def setUp(self):
        super().setUp()
        self.redis = Redis()
        self.redis.start()
        self.addCleanup(lambda: self.redis.proc.poll() is None and self.redis.stop())
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(config.rcfile)
        if not parser.has_section("zero_sudo"):
            parser.add_section("zero_sudo")
        parser.set("zero_sudo", "redis_url", "redis://127.0.0.1:%d/0" % self.redis.port)
        handle, self.conf_path = tempfile.mkstemp(suffix=".conf")
        with os.fdopen(handle, "w") as out:
            parser.write(out)
        self.addCleanup(os.unlink, self.conf_path)
        self.db = config["db_name"]
        self.servers = [Server(self.conf_path), Server(self.conf_path)]
        for server in self.servers:
            self.addCleanup(server.stop)
        for server in self.servers:
            server.wait_ready()

    def session_uid(self, server, cookies):
        status, body = server.rpc("/web/session/get_session_info", {}, cookies)
        self.assertEqual(status, 200)
        return body.get("result", {}).get("uid")

    def login(self, server, cookies):
        status, body = server.rpc("/web/session/authenticate", {"db": self.db, "login": "admin", "password": "admin"}, cookies)
        self.assertEqual(status, 200, body)
        return body["result"]["uid"]

    def test_one_login_is_valid_on_both_servers_and_survives_no_redis_restart(self):
        first, second = self.servers
        cookies = CookieJar()
        uid = self.login(first, cookies)
        self.assertEqual(self.session_uid(second, cookies), uid, "the other server knows the session: it lives in Redis")

        self.redis.stop()
        for server in self.servers:  # Redis gone: no crash, the user is simply not logged in
            status, body = server.rpc("/web/session/get_session_info", {}, cookies)
            self.assertEqual(status, 200)
            self.assertEqual(body["error"]["data"]["name"], "odoo.http.SessionExpiredException")
        self.redis.start()  # an empty Redis: the sessions are gone, users log in again

        self.assertNotEqual(self.session_uid(second, cookies), uid)
        cookies = CookieJar()
        self.assertEqual(self.login(second, cookies), uid)
        self.assertEqual(self.session_uid(first, cookies), uid)
        for server in self.servers:
            self.assertIsNone(server.proc.poll(), "the server is still running")
            log = server.logged()
            self.assertNotIn("Traceback", log)
            self.assertIn("Redis", log, "the outage is in the logs")
