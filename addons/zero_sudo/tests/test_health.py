"""The health page (Settings > Technical > zero_sudo > Health): administrators only, real
readings through the pools, a relay's ops endpoint, bounded waits, and Retry of failed tasks."""

import dataclasses
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest.mock import patch

from zero_sudo_bus.protocol import bus_channel, epoch_key

from odoo.exceptions import AccessError, UserError
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools import mute_logger

from ..tools import health_probe
from ..tools.executor import BoundedExecutor
from ..tools.offload import executor
from ..tools.pools import redis_client
from ..tools.settings import settings_from_odoo_conf
from .common import wait_until


class _FakeRelay(BaseHTTPRequestHandler):
    """A relay replica's ops endpoint answering what the real one does."""

    health = {}
    metrics = ""

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path == "/healthz":
            body, kind = json.dumps(self.health).encode(), "application/json"
        else:
            body, kind = self.metrics.encode(), "text/plain; version=0.0.4"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


METRICS = """# HELP zero_sudo_relay_lag_seconds lag
zero_sudo_relay_lag_seconds_bucket{le="0.001"} 90.0
zero_sudo_relay_lag_seconds_bucket{le="0.002"} 100.0
zero_sudo_relay_lag_seconds_bucket{le="+Inf"} 100.0
zero_sudo_relay_lag_seconds_count 100.0
zero_sudo_relay_lag_seconds_sum 0.08
zero_sudo_relay_pending_ids 3.0
"""


@tagged("post_install", "-at_install", "zero_sudo")
class TestHealthPage(HttpCase):
    def setUp(self):
        super().setUp()
        self.admin = self.env.ref("base.user_admin")
        self.plain = new_test_user(self.env, "health_plain", password="health_plain_pw1", groups="base.group_user")
        self.db = self.env.cr.dbname

    def _open(self, user=None):
        action = self.env["zero_sudo.health"].with_user(user or self.admin).action_open()
        return self.env["zero_sudo.health"].browse(action["res_id"]).with_user(user or self.admin)

    def _lines(self, health, database=None):
        return {
            (line.probe): (line.status, line.detail)
            for line in health.line_ids
            if database is None or line.database in (database, False)
        }

    def _state(self, task_id):
        # Through the registry's test cursor, which takes turns with the executor's thread.
        with self.registry.cursor() as cr:
            cr.execute("SELECT state FROM zero_sudo_task WHERE id = %s", [task_id])
            return cr.fetchone()[0]

    def _with_setting(self, **values):
        conf = dataclasses.replace(settings_from_odoo_conf(), **values)
        return patch.object(health_probe, "settings_from_odoo_conf", return_value=conf)

    def test_an_administrator_sees_every_check_and_redis_and_rabbitmq_through_the_pools(self):
        # Tasks earlier tests queued in this process may still be waiting for a thread.
        idle = executor.built() is None or wait_until(lambda: executor.built().counts() == (0, 0), what="an idle executor")
        self.assertTrue(idle)
        health = self._open()
        lines = self._lines(health, self.db)
        self.assertEqual(
            set(lines),
            {"cache_follower", "relay_epoch", "relay_leader", "relay_lag", "redis", "amqp", "executor"},
        )
        self.assertEqual(lines["redis"][0], "ok", lines["redis"])
        self.assertEqual(lines["amqp"][0], "ok", lines["amqp"])
        self.assertNotIn("guest:guest", lines["amqp"][1], "the password is not shown")
        self.assertEqual(lines["executor"][0], "ok", lines["executor"])
        self.assertEqual(lines["relay_leader"][0], "unknown")
        self.assertIn("relay_ops_urls", lines["relay_leader"][1])
        self.assertTrue(health.process and health.checked_at and health.status)
        self.assertEqual(health.line_ids[0].database, self.db, "this database comes first")

    def test_a_plain_user_is_refused_the_page_its_menu_and_its_rpc(self):
        with self.assertRaises(AccessError):
            self._open(self.plain)
        menu = self.env.ref("zero_sudo.zero_sudo_health_menu")
        self.assertNotIn(menu.id, self.env["ir.ui.menu"].with_user(self.plain)._visible_menu_ids())
        self.assertIn(menu.id, self.env["ir.ui.menu"].with_user(self.admin)._visible_menu_ids())
        self.authenticate("health_plain", "health_plain_pw1")
        with mute_logger("odoo.http"):
            response = self.url_open(
                "/web/dataset/call_kw/zero_sudo.health/action_open",
                data=json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "method": "call",
                        "params": {"model": "zero_sudo.health", "method": "action_open", "args": [], "kwargs": {}},
                    }
                ),
                headers={"Content-Type": "application/json"},
            )
        self.assertEqual(response.json()["error"]["data"]["name"], "odoo.exceptions.AccessError")

    def test_leader_epoch_and_lag_come_from_redis_and_the_relays_ops_endpoint(self):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeRelay)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        url = "http://127.0.0.1:%d" % server.server_address[1]
        key = epoch_key(self.db)
        previous = redis_client().get(key)
        self.addCleanup(lambda: redis_client().set(key, previous) if previous else redis_client().delete(key))
        redis_client().set(key, "e-health-1")
        _FakeRelay.metrics = METRICS
        _FakeRelay.health = {"status": "ok", "role": "active", "epoch": "e-health-1", "channel": bus_channel(self.db)}
        dead = "http://127.0.0.1:1"  # nothing listens there: refused at once
        with self._with_setting(relay_ops_urls="%s/, %s" % (url, dead)):
            lines = self._lines(self._open(), self.db)
        self.assertEqual(lines["relay_epoch"][0], "ok")
        self.assertIn("e-health-1", lines["relay_epoch"][1])
        self.assertEqual(lines["relay_leader"][0], "warning", "a replica is unreachable")
        self.assertIn("%s (active, epoch e-health-1)" % url, lines["relay_leader"][1])
        self.assertIn(dead, lines["relay_leader"][1])
        self.assertEqual(lines["relay_lag"][0], "ok")
        self.assertIn("mean 0.8 ms over 100 batches", lines["relay_lag"][1])
        self.assertIn("3 IDs pending", lines["relay_lag"][1])

        # A replica active under another epoch is fenced, not the leader.
        _FakeRelay.health = {**_FakeRelay.health, "epoch": "e-old"}
        with self._with_setting(relay_ops_urls=url):
            lines = self._lines(self._open(), self.db)
        self.assertEqual(lines["relay_leader"][0], "error")
        self.assertIn("active, epoch e-old", lines["relay_leader"][1])

    def test_a_hanging_server_costs_the_deadline_and_shows_as_that_checks_status(self):
        release = threading.Event()
        self.addCleanup(release.set)

        def hang():
            release.wait(30)
            return 0.0

        with patch.object(health_probe, "_lend_amqp", hang), patch.object(health_probe, "PROBE_DEADLINE_S", 0.5):
            started = time.monotonic()
            lines = self._lines(self._open(), self.db)
            elapsed = time.monotonic() - started
        self.assertLess(elapsed, 5, "the page waited past its deadline")
        self.assertEqual(lines["amqp"], ("error", lines["amqp"][1]))
        self.assertIn("no answer within 0.5 s", lines["amqp"][1])
        self.assertEqual(lines["redis"][0], "ok", "other checks are unaffected")

    def test_failed_tasks_are_listed_and_retried_through_the_tasks_own_retry(self):
        owner = new_test_user(self.env, "health_owner", password="health_owner_pw1")
        partner = self.env["res.partner"].create({"name": "health retry target"})
        failed = (
            self.env["zero_sudo.task"]
            .sudo()  # test setup: a failed task as the executor would have recorded it
            .create(
                {
                    "name": "health import",
                    "state": "failed",
                    "error": "ValueError: boom",
                    "user_id": owner.id,
                    "res_model": "res.partner",
                    "res_ids": partner.ids,
                    "method": "write",
                    "args": [{"no_such_field": 1}],
                }
            )
        )
        health = self._open()
        line = health.failed_task_ids.filtered(lambda row: row.task_id == failed)
        self.assertEqual((line.name, line.error, line.user_id), ("health import", "ValueError: boom", owner))

        small = BoundedExecutor(max_workers=1, max_queued=0, retry_after=9)
        self.addCleanup(small.shutdown)
        slot = small.reserve()
        with patch.object(executor, "get", return_value=small), self.assertRaisesRegex(UserError, "retry in 9 s"):
            line.action_retry()
        slot.release()
        # The retried task starts at once in the executor's thread, on the test cursor: hold
        # the cursor's lock while this thread reads, as a request would.
        with self.registry.test_lock, patch.object(executor, "get", return_value=small):
            action = line.action_retry()
            self.assertEqual(action["params"]["next"]["tag"], "soft_reload")
            new_task = self.env["zero_sudo.task"].search([("name", "=", "health import")], limit=1)
            self.assertTrue(new_task and new_task != failed)
            self.assertEqual(line.retried_as, "task #%d" % new_task.id)
            self.assertEqual((new_task.name, new_task.user_id, new_task.method), ("health import", owner, "write"))
        wait_until(lambda: self._state(new_task.id) == "failed", what="the retry to run (and fail)")
        new_task.invalidate_recordset()
        self.assertIn(new_task, self._open().failed_task_ids.task_id, "the retry's own failure is listed")
