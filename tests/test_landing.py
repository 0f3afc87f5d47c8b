"""The landing daemon against real RabbitMQ and PostgreSQL: batches, duplicates, poison,
outages and SIGKILL, with the exactly-once effect checked in the landing table."""

import asyncio
import random
import threading
import time

import psycopg
import pytest
from ingest_fixtures import (
    LandingProcess,
    RawHeaderString,
    create_schema,
    dead_letter_messages,
    dead_letters,
    declare_queues,
    delete_queues,
    landed,
    landed_count,
    publish,
    publish_raw,
    queue_state,
)

from conftest import pg_conninfo, wait_until
from zero_sudo_bus.ingest import IngestMessage
from zero_sudo_bus.protocol import PG_CHANNEL, ChangeBatch, Op, decode_notify_payload, model_key


@pytest.fixture
def ingest_db(pg_db):
    create_schema(pg_db, "orders", "prices")
    asyncio.run(declare_queues(pg_db))
    yield pg_db
    asyncio.run(delete_queues(pg_db))


@pytest.fixture
def start_landing():
    started = []

    def start(db, *extra):
        daemon = LandingProcess(db, *extra)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.kill()


def orders(*external_ids, stream="orders"):
    return [IngestMessage(stream, str(x), {"n": x}) for x in external_ids]


class Listener:
    """A real LISTEN connection collecting the events of landed rows, as the relay would."""

    def __init__(self, db):
        self.ids, self.foreign = [], []
        self._conn = psycopg.connect(pg_conninfo(db), autocommit=True)
        self._conn.execute('LISTEN "%s"' % PG_CHANNEL)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            for notify in self._conn.notifies():
                batch = decode_notify_payload(notify.payload)
                if (
                    isinstance(batch, ChangeBatch)
                    and batch.model_key == model_key("zero_sudo.ingest.landing")
                    and batch.op is Op.CREATE
                ):
                    self.ids.extend(batch.ids)
                else:
                    self.foreign.append(notify.payload)
        except psycopg.OperationalError:
            pass  # closed by the test

    def close(self):
        self._conn.close()


@pytest.fixture
def listener(ingest_db):
    listening = Listener(ingest_db)
    yield listening
    listening.close()


def test_lands_batches_once_and_notifies_the_new_rows(ingest_db, start_landing, listener):
    daemon = start_landing(ingest_db)
    daemon.wait_consuming()
    asyncio.run(publish(ingest_db, orders(1, 2, 3) + orders(2, 3, 4) + orders(1, stream="prices")))
    wait_until(lambda: landed_count(ingest_db) == 5, what="5 distinct rows landed")
    rows = landed(ingest_db)
    assert sorted((code, ext) for code, ext, _data in rows) == [
        ("orders", "1"),
        ("orders", "2"),
        ("orders", "3"),
        ("orders", "4"),
        ("prices", "1"),
    ]
    assert {ext: data for code, ext, data in rows if code == "orders"}["4"] == {"n": 4}
    with psycopg.connect(pg_conninfo(ingest_db)) as conn:
        all_ids = sorted(i for (i,) in conn.execute("SELECT id FROM zero_sudo_ingest_landing"))
    wait_until(lambda: sorted(listener.ids) == all_ids, what="one CREATE event per landed row")
    assert listener.foreign == []


def test_poison_goes_to_the_dead_letter_queue_and_the_flow_goes_on(ingest_db, start_landing):
    daemon = start_landing(ingest_db)
    daemon.wait_consuming()
    raw = [
        ("orders", b"not json"),
        ("orders", b'{"v":1,"stream":"orders","external_id":"x"}'),
        ("orders", b'{"v":1,"stream":"orders","external_id":"y","data":{"s":"a\\u0000b"}}'),
    ]
    asyncio.run(publish(ingest_db, orders(1) + orders(5, stream="gone") + orders(2), raw))
    wait_until(lambda: landed_count(ingest_db) == 2, what="the good messages landed")
    dead = {}
    wait_until(lambda: dead.update(asyncio.run(dead_letters(ingest_db))) or len(dead) == 4, what="4 dead letters")
    reasons = {reason.split(" ", 2)[1] if reason.startswith("malformed") else reason for reason in dead.values()}
    assert reasons == {"not_json", "bad_data", "PostgreSQL", "unknown stream: gone (deleted or archived)"}
    assert dead[b"not json"].startswith("malformed: not_json")
    assert daemon.proc.poll() is None


def test_postgres_unavailable_means_no_consuming_then_resume(ingest_db, start_landing):
    daemon = start_landing(ingest_db)
    daemon.wait_consuming()
    with psycopg.connect(pg_conninfo("postgres"), autocommit=True) as admin:
        admin.execute('ALTER DATABASE "%s" ALLOW_CONNECTIONS false' % ingest_db)
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND application_name = 'zero_sudo_landing'",
            (ingest_db,),
        )
        wait_until(lambda: daemon.role() == "recovering", what="the daemon noticing")
        asyncio.run(publish(ingest_db, orders(*range(1, 101))))
        ready, consumers = asyncio.run(queue_state(ingest_db))
        assert (ready, consumers) == (100, 0), "nothing may be taken while PostgreSQL is away"
        admin.execute('ALTER DATABASE "%s" ALLOW_CONNECTIONS true' % ingest_db)
    daemon.wait_consuming(timeout=30)
    wait_until(lambda: landed_count(ingest_db) == 100, what="everything landed after PostgreSQL came back")


@pytest.mark.slow
def test_exactly_once_through_two_sigkills(ingest_db, start_landing):
    total, duplicate_share = 100_000, 0.05
    unique = list(range(1, int(total * (1 - duplicate_share)) + 1))
    rng = random.Random(42)
    ids = unique + rng.sample(unique, total - len(unique))
    rng.shuffle(ids)
    asyncio.run(publish(ingest_db, orders(*ids)))

    daemon = start_landing(ingest_db, "--landing-batch-size", "1000")
    for fraction in (0.2, 0.55):
        wait_until(
            lambda share=fraction: landed_count(ingest_db) >= share * len(unique),
            timeout=120,
            interval=0.01,
            what="%d%% landed" % (fraction * 100),
        )
        daemon.kill()
        daemon = start_landing(ingest_db, "--landing-batch-size", "1000")
    wait_until(lambda: landed_count(ingest_db) == len(unique), timeout=180, what="every external ID landed")
    with psycopg.connect(pg_conninfo(ingest_db)) as conn:
        distinct = conn.execute("SELECT count(DISTINCT external_id) FROM zero_sudo_ingest_landing").fetchone()[0]
    assert distinct == len(unique) == landed_count(ingest_db)


def refuse_poison_rows(db):
    """Make PostgreSQL itself refuse rows whose data has a "poison" key (a CHECK violation,
    SQLSTATE 23514), as it refuses any value it cannot store."""
    with psycopg.connect(pg_conninfo(db)) as conn:
        conn.execute("ALTER TABLE zero_sudo_ingest_landing ADD CONSTRAINT no_poison CHECK (NOT payload ? 'poison')")


def test_rows_postgresql_refuses_are_dead_lettered_never_counted_as_landed(ingest_db, start_landing):
    refuse_poison_rows(ingest_db)
    daemon = start_landing(ingest_db, "--landing-batch-size", "50")
    daemon.wait_consuming()
    messages, poison = [], []
    for n in range(1, 1001):
        if n % 25 == 0:  # one refused row in every batch
            poison.append(str(n))
            messages.append(IngestMessage("orders", str(n), {"poison": True}))
        else:
            messages.extend(orders(n))
    asyncio.run(publish(ingest_db, messages))
    dead = {}
    wait_until(
        lambda: dead.update(asyncio.run(dead_letters(ingest_db))) or len(dead) == len(poison),
        timeout=30,
        what="every refused row dead-lettered",
    )
    assert landed_count(ingest_db) == 1000 - len(poison)
    assert all(reason.startswith("rejected by PostgreSQL: ") and "no_poison" in reason for reason in dead.values())
    assert daemon.metric("zero_sudo_landing_duplicates_total") == 0, "a refused batch was acknowledged as duplicates"
    assert daemon.metric("zero_sudo_landing_landed_total") == 1000 - len(poison)


def test_no_message_content_stops_the_daemon(ingest_db, start_landing):
    daemon = start_landing(ingest_db)
    daemon.wait_consuming()
    poison = {
        b'{"v":1,"stream":"orders","external_id":"s","data":{"t":"\\ud800"}}': "surrogate",
        b'{"v":1,"stream":"orders","external_id":"\\udfff","data":{}}': "bad_envelope",
        b'{"v":1,"stream":"orders","external_id":"n","data":{"x":1e400}}': "out of range",
        b'{"v":1,"stream":"orders","external_id":"c","data":{"x":NaN}}': "not JSON",
        b'{"v":1,"stream":"orders","external_id":"d","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}": "not_json",
        b"\xff\xfe\x00garbage": "not_json",
        b'{"v":1,"stream":"orders","external_id":"big","data":{"s":"' + b"x" * (5 * 1024 * 1024) + b'"}}': "too_large",
    }
    asyncio.run(publish_raw(ingest_db, "orders", list(poison)))
    asyncio.run(publish(ingest_db, orders(1, 2)))
    wait_until(lambda: landed_count(ingest_db) == 2, what="the valid messages landed")
    dead = {}
    wait_until(
        lambda: dead.update(asyncio.run(dead_letters(ingest_db))) or len(dead) == len(poison), what="every poison dead-lettered"
    )
    for body, expected in poison.items():
        assert expected in dead[body], (expected, dead[body])
    assert daemon.proc.poll() is None, "".join(daemon.output[-20:])


def test_a_header_that_is_not_utf8_is_dead_lettered_byte_for_byte(ingest_db, start_landing):
    daemon = start_landing(ingest_db)
    daemon.wait_consuming()
    raw = b"\xff\xfe caf\xe9"
    asyncio.run(publish_raw(ingest_db, "orders", [b"not json"], headers={"x-origin": RawHeaderString(raw), "n": 7}))
    asyncio.run(publish(ingest_db, orders(1)))
    wait_until(lambda: landed_count(ingest_db) == 1, what="the next message landed")
    dead = []
    wait_until(lambda: dead.extend(asyncio.run(dead_letter_messages(ingest_db))) or dead, what="the dead letter")
    headers = dead[0].headers
    assert bytes(headers["x-origin"]) == raw
    assert headers["n"] == 7
    assert headers["x-zero-sudo-reason"].startswith("malformed: not_json")
    assert daemon.proc.poll() is None, "".join(daemon.output[-20:])


def test_a_database_without_the_addon_is_reported_once_with_the_fix(pg_db, start_landing):
    daemon = start_landing(pg_db)  # a database without the zero_sudo_ingest tables
    wait_until(lambda: daemon.role() == "recovering", what="the daemon waiting for the addon")
    time.sleep(2)
    reports = [line for line in daemon.output if "install the zero_sudo addons" in line]
    assert len(reports) == 1 and "zero_sudo_ingest_landing" in reports[0], "".join(daemon.output)
    assert daemon.proc.poll() is None
