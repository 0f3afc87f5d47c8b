from unittest.mock import patch

from zero_sudo_bus.landing_table import INSERT_ROWS

from odoo import SUPERUSER_ID, api
from odoo.tests import TransactionCase, tagged


@tagged("post_install", "-at_install", "zero_sudo")
class TestMaterialize(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.stream = cls.env["zero_sudo.ingest.stream"].create(
            {
                "name": "Contacts",
                "code": "contacts",
                "target_model_id": cls.env.ref("base.model_res_partner").id,
                "match_field": "ref",
                "field_mapping": '{"name": "name", "mail": "email"}',
            }
        )

    def _land(self, *messages):
        """Land rows exactly as the landing daemon does."""
        self.env.flush_all()
        ids, payloads = zip(
            *[(str(ext), '{"name": %s, "mail": "%s@example.com"}' % (name, ext)) for ext, name in messages], strict=True
        )
        self.env.cr.execute(INSERT_ROWS, ([self.stream.id] * len(ids), list(ids), list(payloads)))
        return self.env["zero_sudo.ingest.landing"].browse([row_id for (row_id,) in self.env.cr.fetchall()])

    def _materialize(self, rows):
        rows._materialize_chunk()
        self.env.flush_all()
        rows.invalidate_recordset()

    def test_rows_become_records_and_a_second_message_updates_them(self):
        rows = self._land(("c1", '"Ada"'), ("c2", '"Grace"'))
        self._materialize(rows)
        self.assertEqual(set(rows.mapped("state")), {"done"})
        partners = self.env["res.partner"].search([("ref", "in", ["c1", "c2"])])
        self.assertEqual(sorted(partners.mapped("name")), ["Ada", "Grace"])
        self.assertEqual({row.res_id for row in rows}, set(partners.ids))
        self.env["zero_sudo.ingest.landing"].search([("stream_id", "=", self.stream.id)]).unlink()  # a later message for c1
        again = self._land(("c1", '"Ada Lovelace"'))
        self._materialize(again)
        self.assertEqual(self.env["res.partner"].search([("ref", "=", "c1")]).name, "Ada Lovelace")
        self.assertEqual(self.env["res.partner"].search_count([("ref", "=", "c1")]), 1)

    def test_a_failing_row_keeps_its_error_and_the_others_land(self):
        rows = self._land(("ok", '"Fine"'), ("bad", "null"))  # res.partner refuses a contact without a name
        self._materialize(rows)
        good, bad = rows.sorted(lambda r: r.external_id != "ok")
        self.assertEqual(good.state, "done")
        self.assertEqual(bad.state, "failed")
        self.assertTrue(bad.error)
        bad.action_retry()
        self.assertEqual((bad.state, bad.error), ("landed", False))

    def test_queries_per_chunk_do_not_grow_with_the_chunk(self):
        self._materialize(self._land(("warm", '"Warm"')))  # caches of the stream, model and defaults
        counts = []
        for size in (5, 50):
            rows = self._land(*[("q%d_%d" % (size, n), '"Q%d"' % n) for n in range(size)])
            self.env.flush_all()
            before = self.cr.sql_log_count
            self._materialize(rows)
            counts.append(self.cr.sql_log_count - before)
            self.assertEqual(set(rows.mapped("state")), {"done"})
        self.assertEqual(counts[0], counts[1], "a chunk of 50 new records costs the queries of a chunk of 5")

    def test_out_of_time_the_cron_reschedules_itself(self):
        rows = self._land(("late", '"Late"'))
        cron = self.env.ref("zero_sudo_ingest.ir_cron_materialize")
        Trigger = self.env["ir.cron.trigger"]
        before = Trigger.search_count([("cron_id", "=", cron.id)])
        self.env["zero_sudo.ingest.landing"]._cron_materialize(budget_s=0)
        self.assertEqual(rows.state, "landed", "no time, no work")
        self.assertEqual(Trigger.search_count([("cron_id", "=", cron.id)]), before + 1)


@tagged("post_install", "-at_install", "zero_sudo")
class TestMaterializeCommits(TransactionCase):
    """Runs on a real cursor of its own: commits are what is being tested."""

    def test_each_chunk_is_committed_so_a_crash_loses_at_most_one(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            Landing = env["zero_sudo.ingest.landing"]
            stream = env["zero_sudo.ingest.stream"].create(
                {
                    "name": "Commit test",
                    "code": "commit-test",
                    "target_model_id": env.ref("base.model_res_partner").id,
                    "match_field": "ref",
                    "field_mapping": '{"name": "name"}',
                }
            )
            try:
                env.flush_all()
                cr.execute(
                    INSERT_ROWS, ([stream.id] * 7, ["cm%d" % n for n in range(7)], ['{"name": "N%d"}' % n for n in range(7)])
                )
                rows = Landing.browse([row_id for (row_id,) in cr.fetchall()])
                cr.commit()
                original, calls = type(Landing)._materialize_chunk, []

                def crash_on_third_chunk(records):
                    calls.append(len(records))
                    if len(calls) == 3:
                        raise RuntimeError("the worker died")
                    return original(records)

                with patch.object(type(Landing), "_materialize_chunk", crash_on_third_chunk), self.assertRaises(RuntimeError):
                    Landing._cron_materialize(chunk_size=3)
                cr.rollback()
                rows.invalidate_recordset()
                self.assertEqual(calls, [3, 3, 1])
                self.assertEqual(sorted(rows.mapped("state")), ["done"] * 6 + ["landed"], "two chunks were committed")
                Landing._cron_materialize(chunk_size=3)
                rows.invalidate_recordset()
                self.assertEqual(set(rows.mapped("state")), {"done"})
                self.assertEqual(env["res.partner"].search_count([("ref", "like", "cm%")]), 7)
            finally:
                cr.rollback()
                env["res.partner"].search([("ref", "like", "cm%")]).unlink()
                stream.unlink()
                cr.commit()
