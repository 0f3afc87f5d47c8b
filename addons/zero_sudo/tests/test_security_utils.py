import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from odoo.tests import TransactionCase, tagged

from ..models.security_utils import lock_timeout_setting
from .common import real_env, wait_until

UTILS = "zero_sudo.security.utils"


@tagged("post_install", "-at_install", "zero_sudo")
class TestDeterministicHash(TransactionCase):
    def test_known_values_are_pinned(self):
        utils = self.env[UTILS]
        self.assertEqual(utils._get_deterministic_hash("zero_sudo.relay", "leader"), -6268124723030824649)
        self.assertEqual(utils._get_deterministic_hash("a", 1), 2451243937432073812)
        self.assertNotEqual(utils._get_deterministic_hash("a", "1"), utils._get_deterministic_hash("a", 1))

    def test_every_hash_seed_computes_the_same_lock_key(self):
        expected = self.env[UTILS]._get_deterministic_hash("sale.order", 42)
        code = "from zero_sudo_bus.lockhash import deterministic_hash as h; print(h('sale.order', 42), hash('sale.order'))"
        outputs = [
            subprocess.check_output([sys.executable, "-c", code], env={"PYTHONHASHSEED": seed}, text=True).split()
            for seed in ("1", "2", "31337")
        ]
        self.assertEqual({int(ours) for ours, _builtin in outputs}, {expected})
        self.assertEqual(len({builtin for _ours, builtin in outputs}), 3, "the builtin hash must differ, or this proves nothing")

    def test_lock_timeout_setting(self):
        self.assertEqual(lock_timeout_setting(0.25), "250ms")
        self.assertEqual(lock_timeout_setting(0.0001), "1ms")  # 0 would mean "wait forever"
        with self.assertRaises(ValueError):
            lock_timeout_setting(0)


@tagged("post_install", "-at_install", "zero_sudo")
class TestAdvisoryLocks(TransactionCase):
    def setUp(self):
        super().setUp()
        self.holder = real_env(self.registry)
        self.other = real_env(self.registry)
        self.addCleanup(self.holder.cr.close)
        self.addCleanup(self.other.cr.close)
        self.clients = ThreadPoolExecutor(max_workers=1)
        self.addCleanup(self.clients.shutdown)

    def _backend_waits_on_lock(self, env):
        env.cr.execute("SELECT pg_backend_pid()")
        pid = env.cr.fetchone()[0]

        def waiting():
            with self.registry.cursor() as cr:
                cr.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
                return cr.fetchone()[0] == "Lock"

        return waiting

    def test_same_key_serializes_two_transactions(self):
        self.holder[UTILS]._advisory_xact_lock("zero_sudo.test", "order", 7)
        waiting = self._backend_waits_on_lock(self.other)
        blocked = self.clients.submit(self.other[UTILS]._advisory_xact_lock, "zero_sudo.test", "order", 7)
        wait_until(waiting, what="the second transaction to wait for the lock")
        self.assertFalse(blocked.done())
        self.holder.cr.commit()  # the end of the transaction releases the lock
        blocked.result(timeout=30)

    def test_different_keys_do_not_block(self):
        self.holder[UTILS]._advisory_xact_lock("zero_sudo.test", "order", 7)
        self.clients.submit(self.other[UTILS]._advisory_xact_lock, "zero_sudo.test", "order", 8).result(timeout=30)

    def test_try_lock_says_false_while_held_and_true_once_released(self):
        self.holder[UTILS]._advisory_xact_lock("zero_sudo.test", "invoice", 1)
        self.assertFalse(self.other[UTILS]._try_advisory_xact_lock("zero_sudo.test", "invoice", 1))
        self.assertTrue(self.other[UTILS]._try_advisory_xact_lock("zero_sudo.test", "invoice", 2))
        self.holder.cr.rollback()
        self.assertTrue(self.other[UTILS]._try_advisory_xact_lock("zero_sudo.test", "invoice", 1))

    def test_lock_with_timeout_gives_up_and_keeps_the_transaction_usable(self):
        self.holder[UTILS]._advisory_xact_lock("zero_sudo.test", "stock", 3)
        self.other.cr.execute("SET LOCAL lock_timeout = '7s'")
        self.assertFalse(self.other[UTILS]._advisory_xact_lock_timeout("zero_sudo.test", "stock", 3, timeout=0.05))
        self.other.cr.execute("SELECT current_setting('lock_timeout')")
        self.assertEqual(self.other.cr.fetchone()[0], "7s", "the caller's lock_timeout is restored")
        self.holder.cr.commit()
        self.assertTrue(self.other[UTILS]._advisory_xact_lock_timeout("zero_sudo.test", "stock", 3, timeout=5))
        self.other.cr.execute("SELECT current_setting('lock_timeout')")
        self.assertEqual(self.other.cr.fetchone()[0], "7s")
        self.assertFalse(self.holder[UTILS]._try_advisory_xact_lock("zero_sudo.test", "stock", 3), "held until commit")
