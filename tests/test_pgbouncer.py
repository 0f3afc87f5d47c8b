"""Odoo behind the operators' PgBouncer (docker/pgbouncer.ini, run by Debian's pgbouncer): its
databases pooled per transaction, the common setting at scale, and the relay on PostgreSQL
itself. The relay's own refusal of a pooler is tested with the relay (tests/test_relay.py).
"""

from __future__ import annotations

import secrets

import psycopg
import pytest
from live_stack import JsonRpc, OdooServer, find_odoo

from conftest import wait_until
from zero_sudo_bus.protocol import Op, model_key

ODOO = find_odoo()
PARTNER = model_key("res.partner")
PARTNERS_CREATED = 5  # one request each: five transactions, each maybe on another server connection
# Safety net for what a subscriber waits for, never a speed assertion (speed: make bench-live).
ARRIVES_S = 30


@pytest.mark.slow
@pytest.mark.skipif(ODOO is None, reason="no Odoo 18 found (ODOO_PATH, see README 'Odoo suites'): Odoo behind PgBouncer not run")
def test_writes_through_an_odoo_behind_a_transaction_pooler_reach_the_relays_subscribers(pgbouncer, start_relay, bus_recorder):
    server = OdooServer(ODOO, ["zero_sudo_live"], pooler=("127.0.0.1", pgbouncer.port))
    try:
        server.install()
        server.start()
        db = server.db
        start_relay(db).wait_role("active")  # on PostgreSQL directly, as the settings say
        recorder = bus_recorder(db)
        admin = JsonRpc(server.url, db, "admin", "admin")
        partner_model = admin.call_kw("ir.model", "search", [[["model", "=", "res.partner"]]])
        admin.call_kw("ir.model", "write", [partner_model, {"zero_sudo_live_publish": True}])

        created = [admin.call_kw("res.partner", "create", [{"name": "pooled %d" % n}]) for n in range(PARTNERS_CREATED)]
        admin.call_kw("res.partner", "write", [created, {"function": "renamed behind the pooler"}])

        def partners(op: Op) -> set[int]:
            return {i for m in recorder.changes() if m.model_key == PARTNER and m.op == op for i in m.ids}

        wait_until(
            lambda: set(created) <= partners(Op.CREATE) and set(created) <= partners(Op.WRITE),
            ARRIVES_S,
            what="every partner's create and write event at the relay's subscriber (got %s)" % recorder.changes(),
        )
        assert pgbouncer.clients(db) > 0, "Odoo's workers reach their database through the pooler\n%s" % pgbouncer.log()
    finally:
        server.drop()


def test_odoos_bus_and_cron_hear_their_notifications_through_the_pooler(pgbouncer):
    """Odoo's bus dispatcher and cron workers LISTEN on the "postgres" database, and Odoo sends
    their NOTIFYs there too (bus.bus, ir.cron's trigger), both through the pooler: the operators'
    file pools that database per session, so the listener hears them."""
    channel = "zs_pgbouncer_%s" % secrets.token_hex(4)
    pooled = "host=127.0.0.1 port=%d dbname=postgres" % pgbouncer.port
    with psycopg.connect(pooled, autocommit=True) as listener, psycopg.connect(pooled, autocommit=True) as sender:
        listener.execute("LISTEN %s" % channel)
        sender.execute("SELECT pg_notify(%s, 'wake up')", (channel,))
        heard = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    assert heard == ["wake up"]
