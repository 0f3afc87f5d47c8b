from odoo.tests import TransactionCase, tagged

from zero_sudo_daemons import landing


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
        ids, payloads = zip(*[(str(ext), '{"name": %s, "mail": "%s@example.com"}' % (name, ext)) for ext, name in messages], strict=True)
        self.env.cr.execute(landing.INSERT_ROWS, ([self.stream.id] * len(ids), list(ids), list(payloads)))
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
