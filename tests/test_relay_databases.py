"""One relay deployment for every database of a server (relay_databases, relay_dbfilter), against
real PostgreSQL and Redis, and for the full story a real Odoo 18.

Installing the suite through Odoo takes 30-60 s on a small machine, so the Odoo test installs it
once, in a database the relay does not follow, and creates the followed ones by copying it
(``CREATE DATABASE ... TEMPLATE``): each copy is a database Odoo made, suite and all. The faster
tests stand in for Odoo with the one row the relay asks about (``ir_module_module``).
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator

import psycopg
import pytest

from conftest import REDIS_URL, BusRecorder, DaemonProcess, notify, pg_conninfo, wait_until
from zero_sudo_bus.options import database_names
from zero_sudo_bus.protocol import Op, bus_channel, encode_notify_payloads
from zero_sudo_daemons.relay import CLIENT_NAME
from zero_sudo_daemons.relay_databases import DatabaseSelection


def payload(*ids: int) -> str:
    (single,) = encode_notify_payloads("res.partner", Op.WRITE, ids)
    return single


def admin(sql: str) -> None:
    with psycopg.connect(pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql)


def create_database(name: str, template: str | None = None, suite: bool = True) -> None:
    """A database as Odoo leaves it (a copy of ``template``), or one with only the module row
    the relay asks about (``suite``) or none at all."""
    admin('CREATE DATABASE "%s"%s' % (name, ' TEMPLATE "%s"' % template if template else ""))
    if template is None and suite:
        with psycopg.connect(pg_conninfo(name), autocommit=True) as conn:
            conn.execute("CREATE TABLE ir_module_module (name varchar, state varchar)")
            conn.execute("INSERT INTO ir_module_module VALUES ('zero_sudo', 'installed'), ('base', 'installed')")


def drop_database(name: str) -> None:
    admin('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


class MultiRelay(DaemonProcess):
    """A real relay following several databases."""

    def __init__(self, *args: str) -> None:
        super().__init__("zero_sudo_daemons.relay", "--relay-http-port", *args, "--redis-url", REDIS_URL, "--log-level", "DEBUG")

    def databases(self) -> dict[str, dict[str, object]]:
        status, body = self.get("/healthz")
        return json.loads(body)["databases"] if status in (200, 503) else {}

    def wait_following(self, expected: set[str], timeout: float = 30.0) -> None:
        """Until the relay follows exactly ``expected``, each database active."""
        wait_until(
            lambda: (d := self.databases()).keys() == expected and all(v["role"] == "active" for v in d.values()),
            timeout,
            what="following %s (log: %s)" % (sorted(expected), "".join(self.output[-20:])),
        )


@pytest.fixture
def names() -> Iterator[Callable[[str], str]]:
    """Fresh database names sharing one prefix; every one dropped afterwards."""
    prefix = "zs_m_%s_" % secrets.token_hex(3)
    made: list[str] = []

    def name(suffix: str) -> str:
        made.append(prefix + suffix)
        return prefix + suffix

    name.prefix = prefix  # type: ignore[attr-defined]
    yield name
    for db in made:
        drop_database(db)


@pytest.fixture
def multi_relay() -> Iterator[Callable[..., MultiRelay]]:
    relays: list[MultiRelay] = []

    def start(*args: str) -> MultiRelay:
        relays.append(MultiRelay(*args))
        return relays[-1]

    yield start
    for relay in relays:
        if relay.proc.poll() is None:
            relay.proc.kill()
            relay.proc.wait()


def assert_each_channel_has_only_its_own(recorders: dict[str, BusRecorder], sent: dict[str, list[int]]) -> None:
    for db, ids in sent.items():
        wait_until(lambda db=db, ids=ids: sorted(recorders[db].ids()) == ids, what="%s's events on %s" % (db, bus_channel(db)))
    for db, recorder in recorders.items():
        assert sorted(recorder.ids()) == sent.get(db, []), "%s received another database's events" % db


def test_listed_databases_each_relay_on_their_own_channel_and_a_dropped_one_is_let_go(names, multi_relay, bus_recorder):
    first, second, later, plain = names("first"), names("second"), names("later"), names("plain")
    create_database(first)
    create_database(second)
    create_database(plain, suite=False)  # listed, but the suite is not installed: never followed
    relay = multi_relay("--relay-databases", ",".join([first, second, later, plain]))
    recorders = {db: bus_recorder(db) for db in (first, second, later)}
    relay.wait_following({first, second})
    notify(first, payload(1))
    notify(second, payload(2))
    assert_each_channel_has_only_its_own(recorders, {first: [1], second: [2]})
    assert relay.metric('zero_sudo_relay_notifications_total{db="%s"}' % first) == 1

    create_database(later)  # created while the relay runs
    relay.wait_following({first, second, later})
    notify(later, payload(3))
    assert_each_channel_has_only_its_own(recorders, {first: [1], second: [2], later: [3]})
    for recorder in recorders.values():
        assert recorder.flushes() == ["reconnect", "start"]
    epochs = {recorder.changes()[0].epoch for recorder in recorders.values()}
    assert len(epochs) == 3, "each database has an epoch of its own"

    drop_database(second)
    relay.wait_following({first, later})
    notify(first, payload(4))
    assert_each_channel_has_only_its_own(recorders, {first: [1, 4], second: [2], later: [3]})
    assert relay.proc.poll() is None
    assert not any("does not exist" in line or "Traceback" in line for line in relay.output), "".join(relay.output)
    assert relay.stop(signal.SIGTERM) == 0


def test_a_failure_in_one_database_leaves_the_others_relaying(names, multi_relay, bus_recorder):
    steady, troubled = names("steady"), names("troubled")
    create_database(steady)
    create_database(troubled)
    relay = multi_relay("--relay-dbfilter", "^" + names.prefix)
    recorders = {db: bus_recorder(db) for db in (steady, troubled)}
    relay.wait_following({steady, troubled})
    with psycopg.connect(pg_conninfo("postgres"), autocommit=True) as conn:
        terminated = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            (troubled, CLIENT_NAME),
        ).fetchone()[0]
    assert terminated >= 1
    wait_until(lambda: "recover" in recorders[troubled].flushes(), what="the troubled database's relay recovering")
    relay.wait_following({steady, troubled})
    notify(steady, payload(1))
    notify(troubled, payload(2))
    assert_each_channel_has_only_its_own(recorders, {steady: [1], troubled: [2]})
    assert recorders[steady].flushes() == ["reconnect", "start"], "the other database's relay never noticed"


def test_a_dbfilter_with_odoo_host_placeholders_is_refused_with_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "zero_sudo_daemons.relay", "--relay-dbfilter", "^%d$"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert result.stderr.startswith("zero-sudo-relay: flag --relay-dbfilter: relay_dbfilter must not contain %d")
    both = subprocess.run(
        [sys.executable, "-m", "zero_sudo_daemons.relay", "--relay-dbfilter", "^a", "--relay-databases", "a"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert both.returncode == 2 and "set one" in both.stderr


@pytest.fixture(scope="module")
def odoo_template() -> Iterator[str]:
    """A database created and installed by a real Odoo 18 (zero_sudo), to copy; dropped afterwards."""
    from live_stack import OdooServer, find_odoo

    odoo = find_odoo()
    if odoo is None:
        pytest.skip("no Odoo 18 found (scripts/find_odoo.sh: ODOO_PATH, ODOO_PYTHON)")
    server = OdooServer(odoo, ["zero_sudo"], db="zs_tpl_%s" % secrets.token_hex(3))
    try:
        server.install()
        yield server.db
    finally:
        drop_database(server.db)


@pytest.mark.slow
def test_every_odoo_database_the_filter_selects_relays_on_its_own_channel(odoo_template, names, multi_relay, bus_recorder):
    first, second, later = names("first"), names("second"), names("later")
    create_database(first, template=odoo_template)
    create_database(second, template=odoo_template)
    relay = multi_relay("--relay-dbfilter", "^" + names.prefix)  # not the template: its name does not match
    recorders = {db: bus_recorder(db) for db in (first, second, later)}
    relay.wait_following({first, second})
    create_database(later, template=odoo_template)
    relay.wait_following({first, second, later})
    notify(first, payload(1), payload(11))
    notify(second, payload(2))
    notify(later, payload(3))
    assert_each_channel_has_only_its_own(recorders, {first: [1, 11], second: [2], later: [3]})
    for recorder in recorders.values():
        assert recorder.flushes()[-1] == "start", "each channel starts with its own relay's flush"
    assert len({recorder.changes()[0].epoch for recorder in recorders.values()}) == 3

    drop_database(first)
    relay.wait_following({second, later})
    notify(later, payload(4))
    assert_each_channel_has_only_its_own(recorders, {first: [1, 11], second: [2], later: [3, 4]})
    assert relay.proc.poll() is None
    assert relay.stop(signal.SIGTERM) == 0
    assert sum("relay stopped db=" in line for line in relay.output) >= 2


def test_the_filter_matches_from_the_start_of_a_name_as_odoos_dbfilter():
    selection = DatabaseSelection(pattern=re.compile("acme"))
    assert selection.wants("acme_prod") and not selection.wants("old_acme")
    listed = DatabaseSelection(names=frozenset(database_names(" a, b,,a ")))
    assert listed.wants("a") and listed.wants("b") and not listed.wants("ab")
