"""One relay deployment for every database of an Odoo server: one :class:`~.relay.Relay` each.

``relay_databases`` (a list) or ``relay_dbfilter`` (a pattern, as Odoo's ``dbfilter``) choose the
databases; :class:`DatabaseRelays` finds them in ``pg_database`` and runs, for each, the same
relay a single database gets: its own connections, Redis channel, epoch and leader lock (the
lock is per database because an advisory lock is). Only the discovery around them is new:

* **Polling**, every :data:`DISCOVERY_INTERVAL_S`, of ``pg_database`` on the maintenance database
  (``postgres``, as Odoo's database manager uses): PostgreSQL announces no database creation,
  and one query every few seconds on one connection costs nothing.
* **Only databases with the suite.** A database is followed once its ``zero_sudo`` addon is
  installed (``ir_module_module``); before that it would never send an event, and following it
  would cost two idle connections (PostgreSQL, Redis) and the leader lock's polling for
  nothing. Such a database is asked again every :data:`SUITE_RECHECK_S` (one short connection),
  so one Odoo creates is followed within seconds of its installation finishing; the relay's
  first flush covers whatever was committed before.
* **Independent relays.** Each database's relay runs in a task of its own under its own
  supervisor; a task group holds them (structured start and stop), and each task catches its
  relay's failures, so a crash of one database's relay is logged and that relay restarted after
  :data:`CRASH_RETRY_S`, never stopping another. A configuration error (a connection pooler) is
  the whole deployment's and still ends the process with one line.
* **Databases dropped.** ``DROP DATABASE ... WITH (FORCE)`` (and Odoo's own drop, which
  terminates the sessions first) ends the relay's connections like any failure; the relay asks
  whether its database still exists (waiting out a DROP in progress) and, if not, stops quietly
  instead of retrying. A database that disappears while its relay is between attempts is
  stopped by the next discovery.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from zero_sudo_bus.options import database_names

from .errors import ConfigurationError
from .relay import CLIENT_NAME, TRANSIENT_ERRORS, Relay, pooler_refusal
from .runtime import OPERATOR_RETRY_S, Role, supervise, task_group, wait_or_stop
from .settings import Settings

_logger = logging.getLogger("zero_sudo.relay")

# Where the databases are listed and asked about: Odoo's database manager uses it too.
MAINTENANCE_DB = "postgres"

# A database is created empty and installed by Odoo in tens of seconds: finding it within 5 s
# of appearing costs one catalog query per interval, and nothing is missed meanwhile (its
# relay's first flush covers it).
DISCOVERY_INTERVAL_S = 5.0
# A database without the suite is asked again this often (one short connection each time).
SUITE_RECHECK_S = OPERATOR_RETRY_S
# A relay that crashed (a bug) restarts after this long: as slowly as a process manager would.
CRASH_RETRY_S = OPERATOR_RETRY_S
# DROP DATABASE waits up to 5 s for the sessions it terminated to leave; a relay that lost its
# connection to one waits this long at most for the drop to finish before deciding.
DROP_WAIT_S = 10.0
DROP_POLL_S = 0.05
CONNECT_TIMEOUT_S = 5

# Odoo's own list (odoo.service.db.list_dbs) leaves out templates, databases that refuse
# connections and the maintenance database.
LIST_DATABASES_SQL = "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate AND datname <> %s ORDER BY datname"
SUITE_INSTALLED_SQL = "SELECT EXISTS (SELECT 1 FROM ir_module_module WHERE name = 'zero_sudo' AND state IN ('installed', 'to upgrade', 'to remove'))"
# One row while the database exists, saying whether a DROP (or RENAME) holds or awaits its lock.
DATABASE_STATE_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'object' AND l.classid = 'pg_database'::regclass"
    " AND l.objid = d.oid AND l.mode = 'AccessExclusiveLock') FROM pg_database d WHERE d.datname = %s"
)


@dataclass(frozen=True)
class DatabaseSelection:
    """Which databases one deployment follows: a list of names, or a pattern matched from the
    start of the name as Odoo matches ``dbfilter`` (``re.match``)."""

    names: frozenset[str] = frozenset()
    pattern: re.Pattern[str] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> DatabaseSelection | None:
        """The selection relay_databases or relay_dbfilter make (checked: not both), or None to
        follow db_name alone, as a relay always did."""
        if settings.relay_databases:
            return cls(names=frozenset(database_names(settings.relay_databases)))
        if settings.relay_dbfilter:
            return cls(pattern=re.compile(settings.relay_dbfilter))
        return None

    def wants(self, name: str) -> bool:
        return name in self.names if self.pattern is None else self.pattern.match(name) is not None

    def describe(self) -> str:
        return (
            "relay_dbfilter %s" % self.pattern.pattern
            if self.pattern is not None
            else "relay_databases %s" % ",".join(sorted(self.names))
        )


@dataclass
class _Followed:
    """One database's relay, its own stop signal, and the task running it."""

    relay: Relay
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class _PerDatabaseCollector(Collector):
    """Every followed database's relay metrics, with a ``db`` label, in one exposition.

    Each relay keeps its own registry (the single-database relay's, unchanged); a database no
    longer followed leaves no stale series behind."""

    def __init__(self, relays: DatabaseRelays) -> None:
        self._relays = relays

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for db, followed in sorted(self._relays.followed.items()):
            for family in followed.relay.registry.collect():
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                merged.samples.extend(sample._replace(labels={"db": db, **sample.labels}) for sample in family.samples)
        return list(families.values())


class DatabaseRelays:
    """Follows the selected databases, one :class:`Relay` each; /healthz and /metrics for all."""

    def __init__(self, settings: Settings, selection: DatabaseSelection) -> None:
        self.settings = settings
        self.selection = selection
        self.role = Role.STARTING  # the discovery's own
        self.followed: dict[str, _Followed] = {}
        self._without_suite: dict[str, float] = {}  # database -> when to ask it again (loop time)
        self._tasks: asyncio.TaskGroup | None = None
        self.registry = CollectorRegistry()
        self.registry.register(_PerDatabaseCollector(self))
        Gauge("zero_sudo_relay_databases", "databases followed", registry=self.registry).set_function(lambda: len(self.followed))

    # -- health ------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while discovery works and every followed database is active or standing by."""
        databases = {db: f.relay.health()[1] for db, f in sorted(self.followed.items())}
        healthy = self.role is Role.POLLING and all(f.relay.health()[0] for f in self.followed.values())
        return healthy, {"role": self.role, "following": self.selection.describe(), "databases": databases}

    # -- the work loop -----------------------------------------------------------------
    async def run(self, stopping: asyncio.Event) -> None:
        def on_failure(_exc: BaseException) -> None:
            self.role = Role.RECOVERING

        async with task_group() as tasks:
            self._tasks = tasks
            try:
                await supervise(
                    "relay discovery",
                    lambda: self._discover(stopping),
                    stopping,
                    (*TRANSIENT_ERRORS, psycopg.OperationalError),
                    on_failure=on_failure,
                )
            finally:
                for followed in self.followed.values():  # each relay stops in order, in parallel
                    followed.stopping.set()
        self.role = Role.STOPPED

    def _connect(self, dbname: str) -> Any:
        kwargs = {**self.settings.libpq_kwargs(), "dbname": dbname}
        return psycopg.AsyncConnection.connect(
            autocommit=True, application_name=CLIENT_NAME, connect_timeout=CONNECT_TIMEOUT_S, **kwargs
        )

    async def _discover(self, stopping: asyncio.Event) -> None:
        async with await self._connect(MAINTENANCE_DB) as pg:
            row = await (await pg.execute("SELECT pg_backend_pid()")).fetchone()
            if row is None or row[0] != pg.info.backend_pid:
                raise pooler_refusal(self.settings)
            self.role = Role.POLLING
            while True:
                rows = await (await pg.execute(LIST_DATABASES_SQL, (MAINTENANCE_DB,))).fetchall()
                await self._reconcile([name for (name,) in rows if self.selection.wants(name)])
                if await wait_or_stop(stopping, DISCOVERY_INTERVAL_S):
                    return

    async def _reconcile(self, present: list[str]) -> None:
        """Start following new databases with the suite; stop following the gone ones."""
        for db in set(self.followed) - set(present):
            _logger.info("database %s is gone: its relay stops", db)
            self.followed[db].stopping.set()
        now = asyncio.get_running_loop().time()
        for db in set(self._without_suite) - set(present):
            del self._without_suite[db]
        for db in present:
            if db in self.followed or self._without_suite.get(db, now) > now:
                continue
            if await self._suite_installed(db):
                self._without_suite.pop(db, None)
                self._follow(db)
            else:
                if db not in self._without_suite:
                    _logger.info(
                        "database %s: the zero_sudo addon is not installed, not followed (asked again every %.0fs)",
                        db,
                        SUITE_RECHECK_S,
                    )
                self._without_suite[db] = now + SUITE_RECHECK_S

    async def _suite_installed(self, db: str) -> bool:
        """Whether ``db`` has the zero_sudo addon installed; False too when it cannot be asked now
        (being created or dropped, refusing connections): it is asked again later."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S * 2), await self._connect(db) as pg:
                row = await (await pg.execute(SUITE_INSTALLED_SQL)).fetchone()
                return bool(row and row[0])
        except psycopg.errors.UndefinedTable:
            return False  # not an Odoo database
        except (psycopg.Error, OSError, TimeoutError) as exc:
            _logger.debug("database %s not asked: %s", db, exc)
            return False

    def _follow(self, db: str) -> None:
        assert self._tasks is not None
        settings = dataclasses.replace(self.settings, db_name=db)
        followed = _Followed(Relay(settings, database_gone=lambda: self._dropped(db)))
        self.followed[db] = followed
        followed.task = self._tasks.create_task(self._run_one(db, followed), name="relay[%s]" % db)
        _logger.info("following database %s channel=%s", db, followed.relay.channel)

    async def _run_one(self, db: str, followed: _Followed) -> None:
        """One database's relay until it stops (in order, or its database dropped); a crash is
        that database's alone: logged, and the relay restarted after :data:`CRASH_RETRY_S`."""
        try:
            while not followed.stopping.is_set():
                try:
                    await followed.relay.run(followed.stopping)
                    return
                except ConfigurationError:
                    raise  # the deployment's, not the database's: the process says it and exits
                except Exception:
                    _logger.exception("relay of database %s crashed; restarting it in %.0fs", db, CRASH_RETRY_S)
                    followed.relay.role = Role.RECOVERING
                    await wait_or_stop(followed.stopping, CRASH_RETRY_S)
        finally:
            if self.followed.get(db) is followed:
                del self.followed[db]

    async def _dropped(self, db: str) -> bool:
        """Whether ``db`` no longer exists, once any DROP in progress has finished; False when
        PostgreSQL cannot be asked (the relay then retries as usual)."""
        try:
            async with asyncio.timeout(DROP_WAIT_S + CONNECT_TIMEOUT_S), await self._connect(MAINTENANCE_DB) as pg:
                while True:
                    row = await (await pg.execute(DATABASE_STATE_SQL, (db,))).fetchone()
                    if row is None:
                        return True
                    if not row[0]:
                        return False
                    await asyncio.sleep(DROP_POLL_S)
        except (psycopg.Error, OSError, TimeoutError):
            return False
