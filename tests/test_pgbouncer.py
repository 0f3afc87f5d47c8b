"""Odoo behind the operators' PgBouncer (docker/pgbouncer.ini, run by Debian's pgbouncer): its
databases pooled per transaction, the common setting at scale, and the relay on PostgreSQL
itself. The relay's own refusal of a pooler is tested with the relay (tests/test_relay.py).
"""

from __future__ import annotations

import json
import secrets

import psycopg
import pytest
from live_stack import JsonRpc, OdooServer, find_odoo

from conftest import PG_HOST, PG_PORT, wait_until
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


# Run in `odoo shell` on the pooled server's configuration: a queued task run by this
# process's executor, and the reaper's view of a running task whose lease this process holds.
TASK_LEASE_SCRIPT = r"""
import json, time
from zero_sudo_bus.lockhash import deterministic_hash
from odoo.addons.zero_sudo.models.task import LEASE_NAMESPACE, _lease_connection, _run_task
from odoo.addons.zero_sudo.tools.exceptions import TaskLeaseError

Task = env["zero_sudo.task"]
values = {"name": "behind the pooler", "user_id": env.uid, "res_model": "res.partner",
          "res_ids": env.user.partner_id.ids, "method": "write", "args": [{"comment": "leased"}]}
queued = Task.create(values)
env.cr.commit()
_run_task(env.cr.dbname, queued.id)
env.invalidate_all()
result = {"state": queued.state, "error": queued.error}
try:
    lease = _lease_connection(env.cr.dbname)
except TaskLeaseError:
    pass
else:
    running = Task.create(dict(values, state="running"))
    env.cr.commit()
    lease.cursor().execute("SELECT pg_advisory_lock(%s)", [deterministic_hash(LEASE_NAMESPACE, running.id)])
    reaped = []
    for _ in range(20):  # the reaper's transaction lands on another server connection each time
        reaped += Task._cron_reap().ids
        env.cr.commit()
    result["reaped_while_leased"] = running.id in reaped
    lease.close()  # the process dies: PostgreSQL frees the lease once the backend is gone
    deadline = time.monotonic() + 10
    while running.id not in Task._cron_reap().ids and time.monotonic() < deadline:
        env.cr.rollback()
        time.sleep(0.1)
    env.cr.commit()
    env.invalidate_all()
    result["after_death"] = running.state
print("RESULT " + json.dumps(result))
"""


def _task_lease_result(server: OdooServer) -> dict:
    output = server.shell(TASK_LEASE_SCRIPT)
    return json.loads(next(line[len("RESULT ") :] for line in output.splitlines() if line.startswith("RESULT ")))


@pytest.mark.slow
@pytest.mark.skipif(ODOO is None, reason="no Odoo 18 found (ODOO_PATH, see README 'Odoo suites'): Odoo behind PgBouncer not run")
def test_background_tasks_behind_a_transaction_pooler_take_their_lease_on_postgresql_itself(pgbouncer):
    server = OdooServer(ODOO, ["zero_sudo"], pooler=("127.0.0.1", pgbouncer.port))
    try:
        server.install()
        refused = _task_lease_result(server)
        assert refused["state"] == "failed", refused
        assert "task_lease_db_host" in refused["error"] and "pooler" in refused["error"], refused["error"]

        server.add_settings(task_lease_db_host=PG_HOST, task_lease_db_port=PG_PORT)
        leased = _task_lease_result(server)
        assert leased == {"state": "done", "error": False, "reaped_while_leased": False, "after_death": "failed"}, leased
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
