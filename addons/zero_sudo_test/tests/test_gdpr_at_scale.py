"""The GDPR eraser on a person with 100 000 related records, run as a server runs it: as a
zero_sudo task in a process of its own (erasure_worker.py), on committed data, with a
concurrent writer, and killed with SIGKILL halfway, after which zero_sudo's lease reaper
finds the task dead and the erasure queues itself again."""

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from threading import Event
from unittest.mock import patch

import psycopg2
from zero_sudo_bus.protocol import PG_CHANNEL, Op, decode_notify_payload, model_key

from odoo import SUPERUSER_ID, api, sql_db
from odoo.tests import TransactionCase, tagged
from odoo.tools import config

from odoo.addons.zero_sudo.models.task import PROCESS_DIED
from odoo.addons.zero_sudo.tools.offload import executor
from odoo.addons.zero_sudo_gdpr.models.gdpr_request import CHUNK_SIZE
from odoo.addons.zero_sudo_gdpr.models.gdpr_rule import ANONYMIZED

WORKER = os.path.join(os.path.dirname(__file__), "erasure_worker.py")
RELATED = 100_000  # per person: half mails to anonymize, half logs to delete
SMALL = 10_000
# Memory a run may add at 100 000 records beyond what it adds at 10 000: far below what ten
# times the records would cost if anything of them stayed in memory (≈ 20 MB per 10 000).
FLAT_RSS_MARGIN_MB = 10.0
# Scheduling noise between the eraser's commit and the writer seeing its UPDATE return.
WAKE_UP_SLACK_S = 0.1
WORKER_TIMEOUT_S = 600


def _connect(dbname):
    """A plain autocommit connection (each statement its own transaction), to use as
    ``with closing(_connect(db)) as connection``: psycopg2's own ``with`` would open a
    transaction, and the writer's row locks would outlive each write."""
    connection = psycopg2.connect(**sql_db.connection_info_for(dbname)[1])
    connection.autocommit = True
    return connection


def _drain_notifications(connection, quiet_s=0.5):
    """Every NOTIFY payload the connection has received, read until none came for quiet_s."""
    payloads = []
    while select.select([connection], [], [], quiet_s)[0]:
        connection.poll()
        payloads.extend(notify.payload for notify in connection.notifies)
        connection.notifies.clear()
    return payloads


class _Handover:
    """Stands for this process's executor: keeps the IDs of the tasks it is given, for a
    worker process to run them (a server's executor would run them in a thread)."""

    def __init__(self):
        self.task_ids = []

    def check_room(self):
        pass  # always room: the worker processes run what it is given

    def reserve(self):
        return self

    def submit(self, _function, _dbname, task_id):
        self.task_ids.append(task_id)

    def release(self):
        pass


@tagged("post_install", "-at_install", "zero_sudo")
class TestErasureAtScale(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dbname = cls.env.cr.dbname
        with cls.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            rules = cls._make_rules(env)
            people = {
                name: cls._make_person(env, name, count) for name, count in (("small", SMALL), ("a", RELATED), ("b", RELATED))
            }
            requests = {name: env["zero_sudo.gdpr.request"].create({"partner_id": person.id}) for name, person in people.items()}
            for request in requests.values():
                request._plan()
            cr.execute("ANALYZE zero_sudo_test_message")  # as autovacuum would, after such an insert
            cr.commit()
            cls.person_ids = {name: person.id for name, person in people.items()}
            cls.request_ids = {name: request.id for name, request in requests.items()}
            cls.task_ids = []
            cls.addClassCleanup(cls._clean_up, rules.ids)

        cls.small = cls._run_worker("small")
        with closing(_connect(cls.dbname)) as listener, ThreadPoolExecutor(max_workers=1) as writer_thread:
            listener.cursor().execute("LISTEN %s" % PG_CHANNEL)
            cls.log_ids = cls._ids("a", "log")
            stop = Event()
            writer = writer_thread.submit(cls._write_while_erasing, "a", stop)
            try:
                cls.uninterrupted = cls._run_worker("a")
            finally:
                stop.set()
            cls.writes = writer.result()
            cls.events = [decode_notify_payload(payload) for payload in _drain_notifications(listener)]
        cls.done_when_killed, cls.state_when_killed = cls._start_and_kill("b")
        cls.killed_task_id = cls.task_ids[-1]
        cls.reaped, cls.resumed_task_ids = cls._reap()
        cls.resumed = cls._run_worker("b", task_ids=cls.resumed_task_ids)

    @classmethod
    def _make_rules(cls, env):
        assert not env["zero_sudo.gdpr.rule"].search([]), "these tests plan with their own rules only"
        model = env.ref("zero_sudo_test.model_zero_sudo_test_message").id
        return env["zero_sudo.gdpr.rule"].create(
            [
                {
                    "name": "Scale: mails",
                    "sequence": 1,
                    "model_id": model,
                    "partner_field": "partner_id",
                    "extra_domain": '[["kind", "=", "mail"]]',
                    "action": "anonymize",
                    "field_names": "email,body",
                },
                {
                    "name": "Scale: logs",
                    "sequence": 2,
                    "model_id": model,
                    "partner_field": "partner_id",
                    "extra_domain": '[["kind", "=", "log"]]',
                    "action": "delete",
                },
            ]
        )

    @classmethod
    def _make_person(cls, env, name, count):
        person = env["res.partner"].create({"name": "ZS Scale Person %s" % name})
        env.cr.execute(
            """INSERT INTO zero_sudo_test_message (partner_id, kind, email, body, touched, create_uid, write_uid, create_date, write_date)
               SELECT %s, CASE WHEN n %% 2 = 0 THEN 'mail' ELSE 'log' END, 'p' || n || '@example.com', 'private text ' || n, 0,
                      %s, %s, now(), now()
                 FROM generate_series(1, %s) AS n""",
            (person.id, SUPERUSER_ID, SUPERUSER_ID, count),
        )
        return person

    @classmethod
    def _clean_up(cls, rule_ids):
        with cls.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            cr.execute("DELETE FROM zero_sudo_test_message WHERE partner_id = ANY(%s)", (list(cls.person_ids.values()),))
            cr.execute("DELETE FROM zero_sudo_task WHERE id = ANY(%s)", (cls.task_ids,))
            env["zero_sudo.gdpr.request"].browse(cls.request_ids.values()).unlink()
            env["zero_sudo.gdpr.rule"].browse(rule_ids).unlink()
            env["res.partner"].browse(cls.person_ids.values()).unlink()

    @classmethod
    def _handed_over(cls, body):
        """``body(env)`` in a committed transaction; the IDs of the tasks it queued."""
        handover = _Handover()
        with patch.object(executor, "get", return_value=handover), cls.registry.cursor() as cr:
            result = body(api.Environment(cr, SUPERUSER_ID, {}))
        cls.task_ids.extend(handover.task_ids)
        return result, handover.task_ids

    @classmethod
    def _queue(cls, name):
        """Start request ``name`` as its form's Run does: the ID of the task it queued."""
        _result, (task_id,) = cls._handed_over(
            lambda env: env["zero_sudo.gdpr.request"].browse(cls.request_ids[name]).action_run()
        )
        return task_id

    @classmethod
    def _reap(cls):
        """Run the dead-task reaper: (the IDs it reaped, those of the tasks it queued)."""
        reaped, queued = cls._handed_over(lambda env: env["zero_sudo.task"]._cron_reap().ids)
        return reaped, queued

    @classmethod
    def _worker(cls, name, task_ids=None):
        (task_id,) = task_ids or [cls._queue(name)]
        return subprocess.Popen(
            [sys.executable, WORKER, config.rcfile, cls.dbname, str(task_id)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @classmethod
    def _run_worker(cls, name, task_ids=None):
        worker = cls._worker(name, task_ids)
        try:
            out, err = worker.communicate(timeout=WORKER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.communicate()
            raise
        assert worker.returncode == 0, "erasure worker failed:\n%s" % err[-3000:]
        result = json.loads(out.strip().splitlines()[-1])
        assert result["state"] == "done", "the erasure task ended %s: %s" % (result["state"], result["error"])
        return result

    @classmethod
    def _start_and_kill(cls, name):
        """SIGKILL the worker once a third of the mails are erased: (done then, request state)."""
        worker = cls._worker(name)
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        with closing(_connect(cls.dbname)) as connection, connection.cursor() as cr:
            while True:
                done, total = cls._first_line(cr, name)
                if done >= total // 3:
                    break
                assert worker.poll() is None, "the worker ended before it could be killed: %s" % worker.communicate()[1][-3000:]
                assert time.monotonic() < deadline, "the worker made no progress"
                time.sleep(0.02)
            os.kill(worker.pid, signal.SIGKILL)
            worker.communicate()
            done, _total = cls._first_line(cr, name)
            cr.execute("SELECT state FROM zero_sudo_gdpr_request WHERE id = %s", (cls.request_ids[name],))
            (request_state,) = cr.fetchone()
            cr.execute("SELECT state FROM zero_sudo_task WHERE id = %s", (cls.task_ids[-1],))
            return done, (request_state, cr.fetchone()[0])

    @classmethod
    def _ids(cls, name, kind):
        with closing(_connect(cls.dbname)) as connection, connection.cursor() as cr:
            cr.execute("SELECT id FROM zero_sudo_test_message WHERE partner_id = %s AND kind = %s", (cls.person_ids[name], kind))
            return {row[0] for row in cr.fetchall()}

    @classmethod
    def _first_line(cls, cr, name):
        cr.execute(
            "SELECT COALESCE(done, 0), total FROM zero_sudo_gdpr_request_line WHERE request_id = %s ORDER BY id LIMIT 1",
            (cls.request_ids[name],),
        )
        return cr.fetchone()

    @classmethod
    def _write_while_erasing(cls, name, stop):
        """Write to the first mail not yet erased, as a user editing it would, until the mails
        are done; (seconds each write waited, whether it came after that row's erasure)."""
        writes = []
        with closing(_connect(cls.dbname)) as connection, connection.cursor() as cr:
            while not stop.is_set():
                cr.execute(
                    "SELECT last_id, finished FROM zero_sudo_gdpr_request_line WHERE request_id = %s ORDER BY id LIMIT 1",
                    (cls.request_ids[name],),
                )
                last_id, finished = cr.fetchone()
                if finished:
                    break
                cr.execute(
                    "SELECT min(id) FROM zero_sudo_test_message WHERE partner_id = %s AND kind = 'mail' AND id > %s",
                    (cls.person_ids[name], last_id),
                )
                started = time.monotonic()
                cr.execute("UPDATE zero_sudo_test_message SET touched = touched + 1 WHERE id = %s RETURNING email", cr.fetchone())
                row = cr.fetchone()
                writes.append((time.monotonic() - started, bool(row) and row[0] == ANONYMIZED))
                stop.wait(0.01)
        return writes

    def _end_state(self, name):
        """What the erasure left, in terms that do not depend on the person's IDs."""
        with closing(_connect(self.dbname)) as connection, connection.cursor() as cr:
            cr.execute(
                "SELECT kind, email, body, count(*) FROM zero_sudo_test_message WHERE partner_id = %s GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
                (self.person_ids[name],),
            )
            messages = cr.fetchall()
            cr.execute("SELECT state, audit FROM zero_sudo_gdpr_request WHERE id = %s", (self.request_ids[name],))
            state, audit = cr.fetchone()
            cr.execute(
                "SELECT done, total, finished FROM zero_sudo_gdpr_request_line WHERE request_id = %s ORDER BY id",
                (self.request_ids[name],),
            )
            lines = cr.fetchall()
        return messages, state, lines, re.sub(r"^[0-9: -]+: ", "", audit or "", flags=re.MULTILINE)

    def test_erasure_leaves_every_mail_anonymized_and_every_log_deleted(self):
        messages, state, lines, audit = self._end_state("a")
        self.assertEqual(messages, [("mail", ANONYMIZED, ANONYMIZED, RELATED // 2)])
        self.assertEqual((state, lines), ("done", [(RELATED // 2, RELATED // 2, True)] * 2))
        self.assertEqual(
            audit.splitlines(),
            ["anonymize zero_sudo.test.message: 50000 records", "delete zero_sudo.test.message: 50000 records"],
        )

    def test_every_erased_record_is_announced_by_id(self):
        key = model_key("zero_sudo.test.message")
        announced = {Op.WRITE: set(), Op.UNLINK: set()}
        for event in self.events:
            if event.model_key == key and event.op in announced:
                announced[event.op].update(event.ids)
        self.assertTrue(self._ids("a", "mail") <= announced[Op.WRITE], "every anonymized mail was announced as written")
        self.assertEqual(announced[Op.UNLINK], self.log_ids, "every deleted log was announced as unlinked")

    def test_peak_memory_does_not_grow_with_the_number_of_records(self):
        small, large = self.small["rss_growth_mb"], self.uninterrupted["rss_growth_mb"]
        self.assertLess(
            large, small + FLAT_RSS_MARGIN_MB, "peak RSS growth: %.1f MB at 10 000 records, %.1f MB at 100 000" % (small, large)
        )

    def test_a_concurrent_writer_waits_at_most_one_chunk(self):
        chunks = self.uninterrupted["chunk_ms"]
        self.assertEqual(
            len(chunks), 2 * (RELATED // 2 // CHUNK_SIZE + 1), "one transaction per chunk, plus each rule's last look"
        )
        held = sum(1 for _wait, after_erasure in self.writes if after_erasure)
        self.assertGreater(held, 0, "the writer wrote to rows the eraser was erasing at that moment")
        longest_wait, longest_chunk = max(wait for wait, _after in self.writes), max(chunks) / 1000
        self.assertLessEqual(
            longest_wait,
            longest_chunk + WAKE_UP_SLACK_S,
            "the writer waited %.3f s; the longest chunk took %.3f s (%d writes)"
            % (longest_wait, longest_chunk, len(self.writes)),
        )

    def test_sigkill_midway_then_restart_ends_as_an_uninterrupted_run(self):
        self.assertEqual(self.state_when_killed, ("running", "running"), "the request and its task")
        killed_task = self.killed_task_id
        self.assertIn(killed_task, self.reaped, "the reaper found the killed worker's lease free")
        with closing(_connect(self.dbname)) as connection, connection.cursor() as cr:
            cr.execute("SELECT state, error FROM zero_sudo_task WHERE id = %s", (killed_task,))
            self.assertEqual(cr.fetchone(), ("failed", PROCESS_DIED))
            cr.execute("SELECT method, res_ids FROM zero_sudo_task WHERE id = ANY(%s)", (self.resumed_task_ids,))
            self.assertEqual(
                cr.fetchall(), [("_run_erasure", [self.request_ids["b"]])], "the reaper queued the erasure again, once"
            )
        self.assertTrue(0 < self.done_when_killed < RELATED // 2, "killed halfway: %d mails done" % self.done_when_killed)
        self.assertEqual(self._end_state("b"), self._end_state("a"))
        self.assertLess(
            len(self.resumed["chunk_ms"]), len(self.uninterrupted["chunk_ms"]), "the restart resumed, not started over"
        )
