import dataclasses
from datetime import timedelta
from threading import Event
from unittest.mock import patch

import psycopg2
from zero_sudo_bus.lockhash import deterministic_hash

from odoo import http
from odoo.sql_db import db_connect
from odoo.tests import HttpCase, TransactionCase, new_test_user, tagged
from odoo.tools import mute_logger

from ..models import task as task_module
from ..models.task import ADOPT_QUEUED_AFTER, LEASE_NAMESPACE, PROCESS_DIED, _run_task
from ..tools.exceptions import ExecutorFull, TaskTargetError
from ..tools.executor import BoundedExecutor
from ..tools.offload import executor
from ..tools.settings import settings_from_odoo_conf
from .common import free_port, real_env, wait_until


def _state(registry, task_id):
    with registry.cursor() as cr:
        cr.execute("SELECT state, error FROM zero_sudo_task WHERE id = %s", [task_id])
        return cr.fetchone()


@tagged("post_install", "-at_install", "zero_sudo")
class TestTasks(TransactionCase):
    """Tasks run in their own committed cursors, so these tests commit and clean up."""

    def setUp(self):
        super().setUp()
        self.env_ = real_env(self.registry)
        self.partner = self.env_["res.partner"].create({"name": "zero_sudo task target"})
        self.env_.cr.commit()
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        self.env_.cr.rollback()
        self.env_.cr.execute(
            "DELETE FROM zero_sudo_task WHERE res_model = 'res.partner' AND res_ids::text = %s", ["[%d]" % self.partner.id]
        )
        self.partner.unlink()
        self.env_.cr.commit()
        self.env_.cr.close()

    def test_a_task_runs_in_its_own_cursor_and_commits(self):
        task = self.env_["zero_sudo.task"]._submit(self.partner, "write", [{"comment": "written in the background"}])
        wait_until(lambda: _state(self.registry, task.id)[0] == "done", what="the task to finish")
        self.env_.cr.rollback()  # a new snapshot
        self.assertEqual(self.partner.comment, "<p>written in the background</p>")

    def test_a_failing_task_records_its_error_and_rolls_its_work_back(self):
        task = self.env_["zero_sudo.task"]._submit(self.partner, "write", [{"comment": "half", "no_such_field": 1}])
        state, error = wait_until(lambda: (row := _state(self.registry, task.id))[0] == "failed" and row, what="the task to fail")
        self.assertIn("no_such_field", error)
        self.env_.cr.rollback()
        self.assertFalse(self.partner.comment)

    def test_an_unknown_method_is_refused_before_anything_is_queued(self):
        with self.assertRaises(TaskTargetError):
            self.env_["zero_sudo.task"]._submit(self.partner, "no_such_method")
        self.assertFalse(self._tasks())

    def test_a_full_executor_refuses_and_records_nothing(self):
        small = BoundedExecutor(max_workers=1, max_queued=0, retry_after=7)
        slot = small.reserve()  # the one running slot is taken
        self.addCleanup(small.shutdown)
        self.addCleanup(slot.release)
        with patch.object(executor, "get", return_value=small):
            with self.assertRaises(ExecutorFull) as caught:
                self.env_["zero_sudo.task"]._submit(self.partner, "write", [{"comment": "x"}])
        self.assertEqual(caught.exception.retry_after, 7)
        self.assertFalse(self._tasks())

    def _tasks(self):
        tasks = self.env_["zero_sudo.task"].search([("res_model", "=", "res.partner")])
        return tasks.filtered(lambda task: task.res_ids == self.partner.ids)

    def test_a_task_submitted_at_commit_starts_once_the_caller_commits_and_never_if_it_rolls_back(self):
        small = BoundedExecutor(max_workers=1, max_queued=0, retry_after=1)
        self.addCleanup(small.shutdown)
        with patch.object(executor, "get", return_value=small):
            self.env_["zero_sudo.task"]._submit(self.partner, "write", [{"comment": "rolled back"}], at_commit=True)
            self.env_.cr.rollback()
            self.assertFalse(self._tasks(), "a rolled back caller leaves no task")
            small.reserve().release()  # and its executor slot is free again
            task = self.env_["zero_sudo.task"]._submit(self.partner, "write", [{"comment": "committed"}], at_commit=True)
            self.assertIsNone(_state(self.registry, task.id), "recorded in the caller's transaction, not before")
            self.env_.cr.commit()
        wait_until(lambda: _state(self.registry, task.id)[0] == "done", what="the task to finish")
        self.env_.cr.rollback()
        self.assertEqual(self.partner.comment, "<p>committed</p>")

    def test_a_task_submitted_at_commit_takes_no_slot_before_and_waits_for_the_reaper_if_none_is_left(self):
        small = BoundedExecutor(max_workers=1, max_queued=0, retry_after=1)
        self.addCleanup(small.shutdown)
        with patch.object(executor, "get", return_value=small):
            task = self.env_["zero_sudo.task"]._submit(self.partner, "write", [{"comment": "late"}], at_commit=True)
            self.assertEqual(small.counts(), (0, 0), "the caller's transaction holds no slot")
            taken = small.reserve()  # meanwhile, another request fills the executor
            with self.assertLogs("odoo.addons.zero_sudo.models.task", "WARNING") as logged:
                self.env_.cr.commit()
            self.assertIn("stay queued until the reaper adopts them", logged.output[0])
            taken.release()
        self.assertEqual(_state(self.registry, task.id)[0], "queued", "delayed, not lost")
        self._age(task, ADOPT_QUEUED_AFTER + timedelta(seconds=1))
        self._reap()
        wait_until(lambda: _state(self.registry, task.id)[0] == "done", what="the adopted task to finish")

    def test_the_reaper_tells_a_dead_tasks_records_as_its_user_and_survives_a_failing_hook(self):
        values = {
            "name": "zs died",
            "state": "running",
            "user_id": self.env_.uid,
            "res_model": "res.partner",
            "res_ids": self.partner.ids,
            "method": "write",
        }
        first, second = self.env_["zero_sudo.task"].create([values, values])
        self.env_.cr.commit()
        heard = []

        def died(records, task):
            heard.append((records.ids, records.env.uid, task.id))
            records.write({"comment": "heard"})  # undone with the failure below
            raise RuntimeError("a broken hook")

        with (
            patch.object(type(self.partner), "_zero_sudo_task_died", died, create=True),
            mute_logger("odoo.addons.zero_sudo.models.task"),
        ):
            reaped = self._reap()
        self.assertTrue({first.id, second.id} <= set(reaped), "a failing hook stops no reaping")
        self.assertEqual(
            sorted(heard), [(self.partner.ids, self.env_.uid, first.id), (self.partner.ids, self.env_.uid, second.id)]
        )
        self.assertEqual(_state(self.registry, second.id), ("failed", PROCESS_DIED))
        self.env_.cr.rollback()
        self.assertFalse(self.partner.comment, "the failing hook's writes were rolled back")

    def _reap(self):
        env = real_env(self.registry)
        try:
            reaped = env["zero_sudo.task"]._cron_reap().ids
            env.cr.commit()
            return reaped
        finally:
            env.cr.close()

    def test_a_task_whose_process_died_is_failed_and_a_live_one_is_left_alone(self):
        values = {
            "name": "zs lease",
            "state": "running",
            "user_id": self.env_.uid,
            "res_model": "res.partner",
            "res_ids": self.partner.ids,
            "method": "write",
        }
        alive, dead = self.env_["zero_sudo.task"].create([values, values])
        self.env_.cr.commit()
        # Another server's executor running ``alive``: a connection of its own holds the lease.
        other_server = psycopg2.connect(**db_connect(self.env_.cr.dbname).dsn)
        other_server.autocommit = True
        other_server.cursor().execute("SELECT pg_advisory_lock(%s)", [deterministic_hash(LEASE_NAMESPACE, alive.id)])
        reaped = self._reap()
        self.assertIn(dead.id, reaped)
        self.assertNotIn(alive.id, reaped)
        other_server.close()  # that server is killed: PostgreSQL frees its locks, once its backend has exited
        wait_until(lambda: alive.id in self._reap(), what="the reaper to find the lease free")
        self.assertEqual(_state(self.registry, alive.id), ("failed", PROCESS_DIED))
        self.assertNotIn(alive.id, self._reap(), "a failed task stays as it is")

    def test_a_lease_that_cannot_connect_fails_the_task_saying_which_setting(self):
        task = self.env_["zero_sudo.task"].create(
            {
                "name": "zs no lease",
                "user_id": self.env_.uid,
                "res_model": "res.partner",
                "res_ids": self.partner.ids,
                "method": "write",
            }
        )
        self.env_.cr.commit()
        closed_port = free_port()
        unreachable = dataclasses.replace(
            settings_from_odoo_conf(), task_lease_db_host="127.0.0.1", task_lease_db_port=closed_port
        )
        with (
            patch.object(task_module, "settings_from_odoo_conf", return_value=unreachable),
            mute_logger("odoo.addons.zero_sudo.models.task"),
        ):
            _run_task(self.env_.cr.dbname, task.id)
        state, error = _state(self.registry, task.id)
        self.assertEqual(state, "failed")
        self.assertIn("TaskLeaseError", error)
        self.assertIn("task_lease_db_host", error)
        self.assertIn("port %d" % closed_port, error)

    def _queued(self, method, age):
        """A task as a process queued it ``age`` ago (and, say, died before running it)."""
        task = self.env_["zero_sudo.task"].create(
            {
                "name": "zs queued",
                "user_id": self.env_.uid,
                "res_model": "res.partner",
                "res_ids": self.partner.ids,
                "method": method,
            }
        )
        self._age(task, age)
        return task

    def _age(self, task, age):
        self.env_.cr.execute("UPDATE zero_sudo_task SET create_date = create_date - %s WHERE id = %s", [age, task.id])
        self.env_.cr.commit()

    def test_a_task_queued_by_a_process_that_died_is_run_by_the_reaper_and_a_recent_one_is_left(self):
        runs = []
        with patch.object(type(self.partner), "_zs_count", lambda records: runs.append(records.ids), create=True):
            orphan = self._queued("_zs_count", ADOPT_QUEUED_AFTER + timedelta(seconds=1))
            recent = self._queued("_zs_count", timedelta(0))
            self._reap()
            wait_until(lambda: _state(self.registry, orphan.id)[0] == "done", what="the adopted task to finish")
            self.assertEqual(runs, [self.partner.ids])
            self.assertEqual(_state(self.registry, recent.id)[0], "queued", "its process may well be about to run it")

    def test_a_task_handed_to_several_executors_runs_once(self):
        runs = []
        with patch.object(type(self.partner), "_zs_count", lambda records: runs.append(records.ids), create=True):
            task = self._queued("_zs_count", timedelta(0))
            # Another executor is running it: it holds the lease, this one leaves the task.
            other_executor = psycopg2.connect(**db_connect(self.env_.cr.dbname).dsn)
            other_executor.autocommit = True
            other_executor.cursor().execute("SELECT pg_advisory_lock(%s)", [deterministic_hash(LEASE_NAMESPACE, task.id)])
            _run_task(self.env_.cr.dbname, task.id)
            self.assertEqual((runs, _state(self.registry, task.id)[0]), ([], "queued"))
            other_executor.close()
            _run_task(self.env_.cr.dbname, task.id)
            _run_task(self.env_.cr.dbname, task.id)  # claimed and done already: skipped
        self.assertEqual((runs, _state(self.registry, task.id)[0]), ([self.partner.ids], "done"))

    def test_a_task_holds_its_lease_while_it_runs(self):
        started, release = Event(), Event()

        def slow_work(records):
            started.set()
            release.wait(30)

        with patch.object(type(self.partner), "_zs_slow_work", slow_work, create=True):
            task = self.env_["zero_sudo.task"]._submit(self.partner, "_zs_slow_work")
            self.assertTrue(started.wait(30), "the task started")
            try:
                wait_until(lambda: _state(self.registry, task.id)[0] == "running", what="the task to be running")
                self.assertNotIn(task.id, self._reap(), "a running task's lease is held")
            finally:
                release.set()
            wait_until(lambda: _state(self.registry, task.id)[0] == "done", what="the task to finish")


@tagged("post_install", "-at_install", "zero_sudo")
class TestTaskEndpoints(HttpCase):
    def setUp(self):
        super().setUp()
        self.owner = new_test_user(self.env, "task_owner", password="task_owner_pw1")
        self.partner = self.env["res.partner"].create({"name": "retry target"})
        self.failed = (
            self.env["zero_sudo.task"]
            .sudo()  # test setup: a failed task as the executor would have recorded it
            .create(
                {
                    "name": "import",
                    "state": "failed",
                    "error": "ValueError: boom",
                    "user_id": self.owner.id,
                    "res_model": "res.partner",
                    "res_ids": self.partner.ids,
                    "method": "write",
                    "args": [{"no_such_field": 1}],
                }
            )
        )
        self.authenticate("task_owner", "task_owner_pw1")

    def _form(self):
        return {"csrf_token": http.Request.csrf_token(self)}

    def test_a_cross_site_post_without_the_csrf_token_is_refused(self):
        count = self.env["zero_sudo.task"].search_count([])
        with mute_logger("odoo.http"):
            response = self.url_open("/zero_sudo/task/%d/retry" % self.failed.id, data={"go": "1"})
            forged = self.url_open("/zero_sudo/task/%d/retry" % self.failed.id, data={"csrf_token": "0" * 40 + "o9999999999"})
        self.assertEqual((response.status_code, forged.status_code), (400, 400))
        self.assertIn("CSRF", response.text)
        self.assertEqual(self.env["zero_sudo.task"].search_count([]), count, "a refused post queued a task")

    def test_status_endpoint_shows_own_tasks_only(self):
        response = self.url_open("/zero_sudo/task/%d" % self.failed.id)
        self.assertEqual(response.status_code, 200)
        self.assertEqual((response.json()["state"], response.json()["error"]), ("failed", "ValueError: boom"))
        foreign = self.failed.copy({"user_id": self.env.ref("base.user_admin").id})
        self.assertEqual(self.url_open("/zero_sudo/task/%d" % foreign.id).status_code, 404)

    def test_full_executor_answers_503_with_retry_after_and_queues_nothing(self):
        small = BoundedExecutor(max_workers=1, max_queued=1, retry_after=11)
        slots = [small.reserve(), small.reserve()]
        self.addCleanup(small.shutdown)
        count = self.env["zero_sudo.task"].search_count([])
        with patch.object(executor, "get", return_value=small):
            response = self.url_open("/zero_sudo/task/%d/retry" % self.failed.id, data=self._form())
            self.assertEqual(response.status_code, 503)
            self.assertEqual(response.headers["Retry-After"], "11")
            self.assertEqual(self.env["zero_sudo.task"].search_count([]), count)
            slots[1].release()
            response = self.url_open("/zero_sudo/task/%d/retry" % self.failed.id, data=self._form())
        slots[0].release()
        self.assertEqual(response.status_code, 202, response.text)
        status_url = response.headers["Location"]
        wait_until(lambda: self.url_open(status_url).json()["state"] == "failed", what="the retried task to fail again")
        # It ran as its user, who may not write contacts: proof that no superuser ran it.
        self.assertIn("AccessError", self.url_open(status_url).json()["error"])
