import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import redis
from zero_sudo_bus.protocol import BusMessage, Op, model_key

from odoo import http, sql_db
from odoo.modules.registry import Registry
from odoo.tests import TransactionCase, tagged
from odoo.tools import ormcache

from ..tools import coherence
from ..tools.session_store import RedisSessionStore
from .common import free_port, real_env, wait_until


@ormcache("task_id")
def cached_task_name(model, task_id):
    """An ordinary ormcache'd lookup on zero_sudo.task, as an addon would write one."""
    model.env.cr.execute("SELECT name FROM zero_sudo_task WHERE id = %s", [task_id])
    return model.env.cr.fetchone()[0]


def in_thread(function, *args):
    """Run ``function`` on a thread of its own, as another request of the same worker would."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result(timeout=60)


def _signaling_sequence(registry):
    """How often this process told the others, through the database, to clear their caches.

    TransactionCase replaces ``registry.signal_changes`` by a simulation that counts in
    ``cache_sequences`` instead of calling ``nextval`` on ``base_cache_signaling_default``.
    """
    return registry.cache_sequences["default"]


@tagged("post_install", "-at_install", "zero_sudo")
def _commit_a_task(case, name):
    """A zero_sudo.task committed by a cursor of its own (the writer), as at the end of a
    request; removed again when ``case`` ends. Returns (writer env, task)."""
    writer = real_env(case.registry)
    task = writer["zero_sudo.task"].create({"name": name, "user_id": 1, "res_model": "res.partner", "method": "exists"})
    writer.cr.commit()
    case.registry.signal_changes()

    def clean_up():
        writer.cr.rollback()
        task.unlink()
        writer.cr.commit()
        writer.cr.close()
        case.registry.signal_changes()

    case.addCleanup(clean_up)
    return writer, task


class TestPatches(TransactionCase):
    def test_install_took_effect(self):
        self.assertIsInstance(http.root.session_store, RedisSessionStore)
        self.assertTrue(all(isinstance(c, coherence.CoherentLRU) for c in self.registry._Registry__caches.values()))
        for method in (
            Registry.init,
            Registry.check_signaling,
            sql_db.Cursor.commit,
            sql_db.Cursor.rollback,
            sql_db.Cursor._close,
        ):
            self.assertTrue(getattr(method, "_zero_sudo_patched", False), method)


@tagged("post_install", "-at_install", "zero_sudo")
class TestCoherentCache(TransactionCase):
    def setUp(self):
        super().setUp()
        self.writer, self.task = _commit_a_task(self, "old")
        self.follower = coherence.Follower(self.env.cr.dbname, "redis://127.0.0.1:1/0")  # never started

    def _fill(self):
        """Cache one entry of zero_sudo.task and one of ir.model, from a fresh thread."""

        def fill():
            with self.registry.cursor() as cr:
                env = self.env(cr=cr)
                cached_task_name(env["zero_sudo.task"], self.task.id)
                env["ir.model"]._get_id("res.partner")

        in_thread(fill)

    def _cached_models(self):
        return {key[0] for key in self.registry._Registry__caches["default"]}  # what lookups see

    def test_a_change_drops_only_that_models_entries_without_database_signaling(self):
        self._fill()
        self.assertTrue({"zero_sudo.task", "ir.model"} <= self._cached_models())
        before = _signaling_sequence(self.registry)
        self.follower._on_change(BusMessage("e", 1, "change", model_key("zero_sudo.task"), Op.WRITE, (self.task.id,)))
        self.assertNotIn("zero_sudo.task", self._cached_models())
        self.assertIn("ir.model", self._cached_models())
        self.assertEqual(self.registry.cache_invalidated, set())
        self.registry.signal_changes()  # what Odoo runs after each request
        self.assertEqual(_signaling_sequence(self.registry), before, "no other worker is told to clear everything")

    def test_a_flush_drops_everything_without_database_signaling(self):
        self._fill()
        before = _signaling_sequence(self.registry)
        self.follower._on_flush("gap")
        self.assertEqual(self._cached_models(), set())
        self.registry.signal_changes()
        self.assertEqual(_signaling_sequence(self.registry), before)

    def test_a_request_older_than_the_invalidation_cannot_leave_a_stale_entry(self):
        snapshot_taken, committed = threading.Event(), threading.Event()

        def old_request():
            with self.registry.cursor() as cr:
                cr.execute("SELECT 1")  # the transaction's snapshot: before the write below
                snapshot_taken.set()
                committed.wait(30)  # the write commits and its invalidation arrives meanwhile
                return cached_task_name(self.env(cr=cr)["zero_sudo.task"], self.task.id)

        with ThreadPoolExecutor(max_workers=1) as pool:
            old = pool.submit(old_request)
            snapshot_taken.wait(30)
            self.task.write({"name": "new"})
            self.writer.cr.commit()  # commit, then this process's invalidation of the model
            committed.set()
            self.assertEqual(old.result(timeout=30), "old", "the old snapshot really read the old value")

        def new_request():
            with self.registry.cursor() as cr:
                return cached_task_name(self.env(cr=cr)["zero_sudo.task"], self.task.id)

        self.assertEqual(in_thread(new_request), "new")
        self.assertEqual(in_thread(new_request), "new", "and the fresh value is the one cached")


class PrivateRedis:
    """A redis-server of this test's own, which it may stop and restart."""

    def __init__(self):
        self.port = free_port()
        self.url = "redis://127.0.0.1:%d/0" % self.port
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        wait_until(lambda: _pings(client), what="private redis-server up")
        client.close()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _pings(client):
    try:
        return client.ping()
    except redis.exceptions.ConnectionError:
        return False


@tagged("post_install", "-at_install", "zero_sudo")
class TestRedisDownFallback(TransactionCase):
    def setUp(self):
        super().setUp()
        self.redis = PrivateRedis()
        self.redis.start()
        self.addCleanup(self.redis.stop)
        self.follower = coherence.Follower(self.env.cr.dbname, self.redis.url)
        self.flushes = []
        on_flush = self.follower._on_flush
        self.follower.subscriber.on_flush = lambda reason: (self.flushes.append(reason), on_flush(reason))
        followers = coherence._followers.get().by_db
        saved = followers.get(self.env.cr.dbname)
        followers[self.env.cr.dbname] = self.follower
        self.addCleanup(lambda: followers.__setitem__(self.env.cr.dbname, saved) if saved else followers.pop(self.env.cr.dbname))
        self.follower.subscriber.start()
        self.addCleanup(self.follower.subscriber.stop)
        self.writer, self.task = _commit_a_task(self, "fallback")

    def _write_and_signal(self, name):
        before = _signaling_sequence(self.registry)
        self.task.write({"name": name})
        self.writer.cr.commit()
        self.registry.signal_changes()  # what Odoo runs after each request
        return _signaling_sequence(self.registry) - before

    def test_writes_signal_through_the_database_only_while_redis_is_down(self):
        wait_until(lambda: self.follower.live, what="the follower connected")
        self.assertEqual(self._write_and_signal("live"), 0)
        with self.assertLogs("odoo.addons.zero_sudo.tools.coherence", "WARNING") as logs:
            self.redis.stop()
            wait_until(lambda: not self.follower.live, what="the follower noticing Redis is gone")
        self.assertIn("Redis unreachable", logs.output[0])
        self.assertEqual(self._write_and_signal("redis down"), 1, "other workers are told through the database")
        self.flushes.clear()
        self.redis.start()
        wait_until(lambda: self.follower.live, what="the follower back")
        self.assertEqual(self.flushes, ["reconnect"], "whatever was missed meanwhile is dropped")
        self.assertEqual(self._write_and_signal("live again"), 0)
