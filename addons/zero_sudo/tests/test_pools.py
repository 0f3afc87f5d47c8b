from concurrent.futures import ThreadPoolExecutor

from odoo.tests import HttpCase, tagged

from ..tools import pools
from ..tools.settings import settings_from_odoo_conf


@tagged("post_install", "-at_install", "zero_sudo")
class TestPools(HttpCase):
    def _fresh(self, holder):
        """Count from zero: this process's pool is rebuilt for the test, then restored."""
        saved = holder._value
        holder._value = None
        self.addCleanup(setattr, holder, "_value", saved)

    def test_a_thousand_requests_open_no_more_connections_than_the_pools(self):
        self._fresh(pools._redis_pool)
        self._fresh(pools._amqp_pool)
        with ThreadPoolExecutor(max_workers=12) as clients:
            statuses = list(clients.map(lambda _n: self.url_open("/zero_sudo/health").status_code, range(1000)))
        self.assertEqual(statuses, [200] * 1000)
        conf = settings_from_odoo_conf()
        server_side = [c for c in pools.redis_client().client_list() if c["name"] == pools.redis_client_name()]
        self.assertGreaterEqual(len(server_side), 1)
        self.assertLessEqual(len(server_side), conf.redis_pool_size)
        self.assertLessEqual(pools.amqp_pool().opened, conf.amqp_pool_size)
        self.assertGreaterEqual(pools.amqp_pool().opened, 1)
