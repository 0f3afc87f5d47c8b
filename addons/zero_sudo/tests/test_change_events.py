from zero_sudo_bus.protocol import MAX_PAYLOAD_BYTES, PG_CHANNEL, ChangeBatch, Op, decode_notify_payload, model_key

from odoo.tests import TransactionCase, tagged

from .common import Listener, real_env

TASK = "zero_sudo.task"


@tagged("post_install", "-at_install", "zero_sudo")
class TestChangeEvents(TransactionCase):
    """The mixin's NOTIFYs, seen by a real LISTEN connection after real commits."""

    def setUp(self):
        super().setUp()
        self.listener = Listener(self.env.cr.dbname, PG_CHANNEL)
        self.addCleanup(self.listener.close)
        self.env_ = real_env(self.registry)
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        self.env_.cr.rollback()
        self.env_.cr.execute("DELETE FROM zero_sudo_task WHERE name LIKE 'change-event test%%'")
        self.env_.cr.commit()
        self.env_.cr.close()

    def _batches(self):
        return [decode_notify_payload(payload) for payload in self.listener.payloads]

    def _received(self, op):
        key = model_key(TASK)
        return [i for b in self._batches() if isinstance(b, ChangeBatch) and b.model_key == key and b.op == op for i in b.ids]

    def _marker(self):
        """Commit a marker NOTIFY and wait for it: everything committed before has arrived."""
        self.env_.cr.execute("SELECT pg_notify(%s, '[1,1,1]')", [PG_CHANNEL])
        self.env_.cr.commit()
        self.listener.drain_until(lambda payloads: "[1,1,1]" in payloads, what="the marker NOTIFY")

    def _create(self, count):
        self.env_.cr.execute(
            """INSERT INTO zero_sudo_task (name, state, user_id, res_model, method)
               SELECT 'change-event test ' || n, 'done', 1, 'res.partner', 'exists' FROM generate_series(1, %s) n
               RETURNING id""",
            [count],
        )
        ids = [row[0] for row in self.env_.cr.fetchall()]
        self.env_.cr.commit()  # plain SQL: no event
        return ids

    def test_100000_writes_in_one_transaction_arrive_as_ids_in_small_payloads(self):
        ids = self._create(100_000)
        self.env_[TASK].browse(ids).write({"error": "bulk"})
        self.env_.cr.commit()
        self.listener.drain_until(lambda _p: len(self._received(Op.WRITE)) >= len(ids), what="100 000 IDs")
        self.assertEqual(sorted(self._received(Op.WRITE)), sorted(ids))
        self.assertTrue(all(len(payload.encode()) <= MAX_PAYLOAD_BYTES for payload in self.listener.payloads))
        self.assertGreater(len(self.listener.payloads), 1, "100 000 IDs cannot fit one payload")

    def test_create_write_unlink_each_publish_their_ids_at_commit(self):
        tasks = self.env_[TASK].create(
            [
                {"name": "change-event test c%d" % n, "user_id": 1, "res_model": "res.partner", "method": "exists"}
                for n in range(3)
            ]
        )
        self.env_.cr.commit()
        tasks[0].write({"error": "x"})
        tasks[1:].unlink()
        self.env_.cr.commit()
        self._marker()
        self.assertEqual(self._received(Op.CREATE), tasks.ids)
        self.assertEqual(self._received(Op.WRITE), tasks[:1].ids)
        self.assertEqual(self._received(Op.UNLINK), tasks[1:].ids)

    def test_a_rolled_back_transaction_sends_nothing(self):
        ids = self._create(5)
        self.env_[TASK].browse(ids).write({"error": "never"})
        self.env_[TASK].create(
            {"name": "change-event test rolled back", "user_id": 1, "res_model": "res.partner", "method": "exists"}
        )
        self.env_.cr.flush()  # even after the precommit hooks ran (NOTIFY queued in the transaction)
        self.env_.cr.rollback()
        self._marker()
        self.assertEqual(self._received(Op.WRITE) + self._received(Op.CREATE), [])
        self.assertNotIn(model_key(TASK), {b.model_key for b in self._batches()})
