from zero_sudo_bus.landing_table import ACTIVE_STREAMS, INSERT_ROWS

from odoo.tests import TransactionCase, tagged


@tagged("post_install", "-at_install", "zero_sudo")
class TestLandingTableFitsTheDaemon(TransactionCase):
    """The landing daemon writes the ORM's table with raw SQL: both must agree on it."""

    def test_daemon_statements_run_against_the_orm_table(self):
        stream = self.env["zero_sudo.ingest.stream"].create({"name": "Orders", "code": "orders"})
        self.env.flush_all()
        cr = self.env.cr
        cr.execute(ACTIVE_STREAMS, (["orders", "nope"],))
        self.assertEqual(cr.fetchall(), [("orders", stream.id)])
        rows = ([stream.id, stream.id, stream.id], ["a", "b", "a"], ['{"x": 1}', '{"x": 2}', '{"x": 3}'])
        cr.execute(INSERT_ROWS, rows)
        landed_ids = [row_id for (row_id,) in cr.fetchall()]
        self.assertEqual(len(landed_ids), 2, "the second 'a' is a duplicate")
        cr.execute(INSERT_ROWS, rows)
        self.assertEqual(cr.fetchall(), [], "landing the same batch again adds nothing")
        landed_rows = self.env["zero_sudo.ingest.landing"].browse(landed_ids)
        self.assertEqual(sorted(landed_rows.mapped("external_id")), ["a", "b"])
        self.assertEqual(set(landed_rows.mapped("state")), {"landed"})
        self.assertEqual(landed_rows.filtered(lambda r: r.external_id == "b").payload, {"x": 2})

    def test_archived_streams_are_not_landed_into(self):
        stream = self.env["zero_sudo.ingest.stream"].create({"name": "Old", "code": "old"})
        stream.active = False
        self.env.flush_all()
        self.env.cr.execute(ACTIVE_STREAMS, (["old"],))
        self.assertEqual(self.env.cr.fetchall(), [])
