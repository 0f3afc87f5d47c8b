"""The Redis master killed under writes and logins, everything on Sentinels (real Odoo 18,
relay, gateway, a private master, replica and three Sentinels): users stay logged in, live
updates resume after a resync, and nothing hangs."""

from __future__ import annotations

import pytest
from failover_scenario import run_failover
from live_stack import find_odoo

ODOO = find_odoo()
pytestmark = pytest.mark.skipif(ODOO is None, reason="no Odoo 18 found (ODOO_PATH, see README 'Odoo suites')")


def test_a_killed_master_is_followed_by_every_redis_user():
    report = run_failover(ODOO)

    assert report.epoch_after != report.epoch_before, "the relay publishes again, under a new epoch"
    assert report.relay_flushes >= 1, "the new epoch began with a flush"
    assert report.followers_after >= report.followers_before, "every Odoo worker follows the new master"
    assert report.gateway_resynced, "the browser was told to reload what it shows"
    assert report.gateway_events_of_new_epoch > 0, "and gets live updates again"
    assert report.sessions_lost == 0, "logins replicated before the kill still authenticate"
    assert report.requests_hung == 0, "no request hung"
    assert report.requests > 0
