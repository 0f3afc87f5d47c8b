import threading
from concurrent.futures import ThreadPoolExecutor
from unittest.mock import patch

from odoo import SUPERUSER_ID, api
from odoo.exceptions import AccessError
from odoo.tests import TransactionCase, new_test_user, tagged

from odoo.addons.zero_sudo.models.task import PROCESS_DIED
from odoo.addons.zero_sudo.tests.common import wait_until
from odoo.addons.zero_sudo.tools.executor import BoundedExecutor
from odoo.addons.zero_sudo.tools.offload import executor

ERASED = [("[erased]", "[erased]", "[erased]")] * 7


def _make_person(env, contacts=7, accounts=3):
    person = env["res.partner"].create({"name": "ZS GDPR Person", "email": "person@example.com"})
    env["res.partner"].create(
        [
            {"name": "ZS Contact %d" % n, "email": "c%d@example.com" % n, "phone": "+3200%d" % n, "parent_id": person.id}
            for n in range(contacts)
        ]
    )
    env["res.partner.bank"].create([{"acc_number": "ZS-GDPR-%d" % n, "partner_id": person.id} for n in range(accounts)])
    Rule = env["zero_sudo.gdpr.rule"]
    Rule.search([]).write({"active": False})
    Rule.create(
        [
            {
                "name": "Contacts",
                "sequence": 1,
                "model_id": env.ref("base.model_res_partner").id,
                "partner_field": "parent_id",
                "action": "anonymize",
                "field_names": "name,email,phone",
            },
            {
                "name": "Bank accounts",
                "sequence": 2,
                "model_id": env.ref("base.model_res_partner_bank").id,
                "partner_field": "partner_id",
                "action": "delete",
            },
        ]
    )
    return person


def _end_state(env, person):
    contacts = env["res.partner"].with_context(active_test=False).search([("parent_id", "=", person.id)], order="id")
    return (
        [(c.name, c.email, c.phone) for c in contacts],
        env["res.partner.bank"].search_count([("partner_id", "=", person.id)]),
    )


def _tasks_of(env, request):
    tasks = env["zero_sudo.task"].search([("res_model", "=", request._name)])
    return tasks.filtered(lambda task: task.res_ids == request.ids)


@tagged("post_install", "-at_install", "zero_sudo")
class TestErasureCommits(TransactionCase):
    """Erasure commits per chunk: these tests run on real cursors of their own."""

    def _run_in_own_cursor(self, body):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            person = _make_person(env)
            request = env["zero_sudo.gdpr.request"].create({"partner_id": person.id})
            request._plan()
            cr.commit()
            try:
                return body(env, person, request)
            finally:
                cr.rollback()
                self._wait_for_tasks_to_end(env, request)
                cr.execute(
                    "DELETE FROM zero_sudo_task WHERE res_model = 'zero_sudo.gdpr.request' AND res_ids::text = %s",
                    ["[%d]" % request.id],
                )
                env["res.partner"].with_context(active_test=False).search([("parent_id", "=", person.id)]).unlink()
                env["res.partner.bank"].search([("partner_id", "=", person.id)]).unlink()
                request.unlink()
                env["zero_sudo.gdpr.rule"].search([("name", "in", ("Contacts", "Bank accounts"))]).unlink()
                person.unlink()
                cr.commit()

    def _wait_for_tasks_to_end(self, env, request):
        """A task records its own end after the erasure's last transaction: deleting it
        before then would race with that write."""

        def ended():
            env.cr.rollback()
            return not _tasks_of(env, request).filtered(lambda task: task.state in ("queued", "running"))

        try:
            wait_until(ended, timeout=10, what="the request's tasks to end")
        except AssertionError:  # a test that failed mid-way may leave a task nobody runs: clean up all the same
            pass

    def test_erasure_anonymizes_deletes_and_audits_counts_only(self):
        def body(env, person, request):
            request._run_erasure(chunk_size=3)
            contacts, accounts = _end_state(env, person)
            self.assertEqual(contacts, [("[erased]", "[erased]", "[erased]")] * 7)
            self.assertEqual(accounts, 0)
            self.assertEqual(request.state, "done")
            self.assertEqual(request.progress, 100.0)
            self.assertEqual(
                [(line.done, line.total, line.progress) for line in request.line_ids], [(7, 7, 100.0), (3, 3, 100.0)]
            )
            self.assertIn("anonymize res.partner: 7 records", request.audit)
            self.assertIn("delete res.partner.bank: 3 records", request.audit)
            self.assertNotIn("ZS Contact", request.audit)
            self.assertNotIn("example.com", request.audit)
            request._run_erasure(chunk_size=3)  # again: nothing left, nothing breaks
            self.assertEqual(_end_state(env, person), (contacts, 0))

        self._run_in_own_cursor(body)

    def test_a_crash_mid_run_resumes_to_the_same_end_state(self):
        def body(env, person, request):
            Line = type(env["zero_sudo.gdpr.request.line"])
            original, calls = Line._erase_chunk, []

            def die_on_third_chunk(line, chunk_size):
                calls.append(line.rule_id.name)
                if len(calls) == 3:
                    raise RuntimeError("the worker died")
                return original(line, chunk_size)

            with patch.object(Line, "_erase_chunk", die_on_third_chunk), self.assertRaises(RuntimeError):
                request._run_erasure(chunk_size=3)
            env.cr.rollback()  # a new snapshot: the run committed in cursors of its own
            self.assertEqual(request.state, "failed")
            self.assertEqual(request.line_ids[0].done, 6, "two chunks were committed before the crash")
            self.assertAlmostEqual(request.line_ids[0].progress, 600 / 7)
            request._run_erasure(chunk_size=3)
            env.cr.rollback()
            self.assertEqual(request.state, "done")
            self.assertEqual(_end_state(env, person), (ERASED, 0))

        self._run_in_own_cursor(body)

    def _fresh(self, env, person, request):
        """(request state, what the erasure left) as committed now."""
        env.cr.rollback()  # a new snapshot
        return request.state, _end_state(env, person)

    def test_run_queues_the_erasure_only_once_the_request_commits(self):
        def body(env, person, request):
            small = BoundedExecutor(max_workers=1, max_queued=0, retry_after=1)
            self.addCleanup(small.shutdown)
            with patch.object(executor, "get", return_value=small):
                request.action_run()
                env.cr.rollback()  # the form's transaction fails: nothing was queued
                self.assertEqual(self._fresh(env, person, request)[0], "draft")
                self.assertFalse(_tasks_of(env, request))
                small.reserve().release()  # the refused run gave its executor slot back

                request.action_run()
                with self.registry.cursor() as other:
                    other.execute("SELECT state FROM zero_sudo_gdpr_request WHERE id = %s", [request.id])
                    self.assertEqual(other.fetchone(), ("draft",), "nothing runs before the request commits")
                env.cr.commit()  # as the end of the form's request does
            wait_until(lambda: self._fresh(env, person, request)[0] == "done", what="the erasure to finish")
            self.assertEqual(_end_state(env, person), (ERASED, 0))

        self._run_in_own_cursor(body)

    def test_an_erasure_whose_worker_died_resumes_when_its_task_is_reaped(self):
        def body(env, person, request):
            # A worker erased one chunk, then its process died: its task is running, its lease free.
            task = env["zero_sudo.task"].create(
                {
                    "name": "Erase",
                    "state": "running",
                    "user_id": SUPERUSER_ID,
                    "res_model": request._name,
                    "res_ids": request.ids,
                    "method": "_run_erasure",
                }
            )
            request.state = "running"
            request.line_ids[0]._erase_chunk(3)
            env.cr.commit()
            reaped = env["zero_sudo.task"]._cron_reap()
            self.assertIn(task, reaped)
            resumed = _tasks_of(env, request) - task
            self.assertEqual((resumed.method, resumed.state), ("_run_erasure", "queued"), "the reaper queued the erasure again")
            env.cr.commit()  # the reaper's cron commits: the resumed erasure starts
            wait_until(lambda: self._fresh(env, person, request)[0] == "done", what="the resumed erasure to finish")
            # The task records its own end after the erasure's last transaction: wait for it too.
            wait_until(lambda: env.cr.rollback() or resumed.state == "done", what="the resumed task to end")
            self.assertEqual(_end_state(env, person), (ERASED, 0))
            self.assertEqual((task.state, task.error, resumed.state), ("failed", PROCESS_DIED, "done"))
            self.assertEqual(request.line_ids.mapped("done"), [7, 3], "the chunk done before the death counted once")

        self._run_in_own_cursor(body)

    def test_two_erasures_of_one_person_take_turns(self):
        def body(env, person, request):
            line = request.line_ids[0]
            took_lock, second_done = threading.Event(), threading.Event()

            def second():
                with self.registry.cursor() as cr2:
                    took_lock.wait(10)
                    env2 = api.Environment(cr2, SUPERUSER_ID, {})
                    env2["zero_sudo.security.utils"]._advisory_xact_lock("zero_sudo.gdpr", person.id)
                    second_done.set()

            with ThreadPoolExecutor(max_workers=1) as other_worker:
                waiting = other_worker.submit(second)
                line._erase_chunk(3)  # holds the person's lock until this transaction ends
                took_lock.set()
                self.assertFalse(second_done.wait(0.5), "the other erasure waits for this chunk's commit")
                env.cr.commit()
                waiting.result(10)
            self.assertTrue(second_done.is_set())

        self._run_in_own_cursor(body)


@tagged("post_install", "-at_install", "zero_sudo")
class TestErasureRules(TransactionCase):
    def test_queries_per_chunk_do_not_grow_with_the_chunk(self):
        person = _make_person(self.env, contacts=12)
        request = self.env["zero_sudo.gdpr.request"].create({"partner_id": person.id})
        request._plan()
        line = request.line_ids[0]
        line._erase_chunk(1)  # warm the caches (rule, model, user)
        counts = []
        for size in (2, 8):
            self.env.flush_all()
            before = self.cr.sql_log_count
            line._erase_chunk(size)
            self.env.flush_all()
            counts.append(self.cr.sql_log_count - before)
        self.assertEqual(counts[0], counts[1])

    def test_a_dead_worker_is_detected_by_the_task_lease_only(self):
        """No second timing heuristic: the eraser has no stall cron of its own."""
        self.assertIsNone(self.env.ref("zero_sudo_gdpr.ir_cron_resume", raise_if_not_found=False))
        crons = self.env["ir.cron"].with_context(active_test=False).search([("model_id.model", "like", "zero_sudo.gdpr.%")])
        self.assertFalse(crons, crons.mapped("name"))

    def test_only_gdpr_officers_handle_requests(self):
        clerk = new_test_user(self.env, "zs_gdpr_clerk", groups="base.group_user")
        with self.assertRaises(AccessError):
            self.env["zero_sudo.gdpr.request"].with_user(clerk).create({"partner_id": self.env.user.partner_id.id})
