"""Servers restarted under the ingestion path: nothing accepted is lost, nothing lands twice.

PostgreSQL and RabbitMQ here are private instances, so that restarting them disturbs no one
else on the machine."""

import asyncio
import threading
import time

import psycopg
import pytest
from ingest_fixtures import LandingProcess, declare_queues, delete_queues, publish
from private_servers import PrivatePostgres, PrivateRabbit

from conftest import addon_module, wait_until
from zero_sudo_bus.ingest import EXCHANGE, IngestMessage, encode_ingest_message, routing_key, topology
from zero_sudo_bus.landing_table import MINIMAL_DDL

pytestmark = pytest.mark.slow

# The Odoo controllers' publisher, as the ingest endpoint uses it (a pure module: no Odoo needed).
amqp_pool = addon_module("zero_sudo", "tools/amqp_pool.py")
AmqpPool, Outgoing, PoolExhausted, PublishNotConfirmed = (
    amqp_pool.AmqpPool,
    amqp_pool.Outgoing,
    amqp_pool.PoolExhausted,
    amqp_pool.PublishNotConfirmed,
)


@pytest.fixture
def private_postgres():
    server = PrivatePostgres()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def private_rabbit():
    server = PrivateRabbit()
    server.start()
    yield server
    server.remove()


def _count(conninfo):
    with psycopg.connect(conninfo) as conn:
        return conn.execute("SELECT count(*), count(DISTINCT external_id) FROM zero_sudo_ingest_landing").fetchone()


def test_postgres_restarted_during_consumption(private_postgres):
    db = "zs_restart_%d" % private_postgres.port
    admin = "host=127.0.0.1 port=%d dbname=postgres user=postgres" % private_postgres.port
    conninfo = "host=127.0.0.1 port=%d dbname=%s user=postgres" % (private_postgres.port, db)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute('CREATE DATABASE "%s"' % db)
    with psycopg.connect(conninfo) as conn:
        conn.execute(MINIMAL_DDL)
        conn.execute("INSERT INTO zero_sudo_ingest_stream (code, name) VALUES ('orders', 'orders')")
    asyncio.run(declare_queues(db))
    total = 20_000
    asyncio.run(publish(db, [IngestMessage("orders", str(n), {"n": n}) for n in range(total)]))
    daemon = LandingProcess(db, "--db-user", "postgres", "--db-port", str(private_postgres.port), "--landing-batch-size", "200")
    try:
        wait_until(lambda: _count(conninfo)[0] > total // 5, timeout=60, interval=0.01, what="landing under way")
        private_postgres.stop()
        wait_until(lambda: daemon.role() == "recovering", what="the daemon noticing PostgreSQL is gone")
        time.sleep(1)  # down for a while: the daemon must hold back, not drop
        private_postgres.start()
        wait_until(lambda: _count(conninfo) == (total, total), timeout=120, what="every message landed once after the restart")
    finally:
        daemon.kill()
        asyncio.run(delete_queues(db))


def test_rabbitmq_restarted_during_publishing(pg_db, private_rabbit):
    from ingest_fixtures import create_schema, landed_count

    create_schema(pg_db, "orders")
    daemon = LandingProcess(pg_db, "--amqp-url", private_rabbit.url)
    daemon.wait_consuming()
    pool = AmqpPool(private_rabbit.url, size=2, wait_s=1.0, setup=lambda ch: amqp_pool.declare_topology(ch, topology(pg_db)))
    confirmed, refused = [], 0
    stop = threading.Event()

    def publisher():
        nonlocal refused
        n = 0
        while not stop.is_set() and n < 3000:
            body = encode_ingest_message(IngestMessage("orders", str(n), {"n": n}))
            try:
                pool.publish_confirmed(EXCHANGE, [Outgoing(routing_key(pg_db, "orders"), body, str(n))])
            except (PublishNotConfirmed, PoolExhausted):
                refused += 1  # what a controller answers 503 to: the client retries later
                time.sleep(0.05)
                continue
            confirmed.append(str(n))
            n += 1

    thread = threading.Thread(target=publisher)
    thread.start()
    try:
        wait_until(lambda: len(confirmed) > 500, timeout=60, what="publishing under way")
        private_rabbit.stop()
        private_rabbit.start()
        thread.join(180)
        assert not thread.is_alive()
        assert refused > 0, "the restart should have been felt by the publisher"
        try:
            wait_until(lambda: landed_count(pg_db) == len(confirmed) == 3000, timeout=120, what="every confirmed message landed")
        except pytest.fail.Exception:
            log = "".join(daemon.output[-40:])
            pytest.fail(
                "landed %d of %d confirmed messages; landing daemon log:\n%s" % (landed_count(pg_db), len(confirmed), log)
            )
    finally:
        stop.set()
        daemon.kill()
