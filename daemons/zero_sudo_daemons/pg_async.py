"""psycopg2 in asynchronous mode on the running event loop: queries and LISTEN, never blocking.

Chosen by measurement (``make bench-drivers``, figures in the README): draining NOTIFYs
costs psycopg2 about 0.7 µs of CPU per notification, psycopg 3 about 2.0 µs and asyncpg
about 2.5 µs. psycopg2's libpq reads every notification that arrived with one ``poll()``
in C and hands them over as one list, where asyncpg schedules one loop callback per
notification. On a machine the relay shares with PostgreSQL, that CPU is PostgreSQL's.

One reader callback per connection does everything: it polls libpq, hands queued
notifications to the listener, and completes the query in flight, if any. The waiter of a
statement exists before the statement is sent: under uvloop the reader callback can run, and
read the server's answer (an error included), before the awaiting coroutine runs again, and
an answer with no waiter to take it would be lost. ``tests/test_pg_async.py`` injects
thousands of server errors between notifications to keep it so.

The relay keeps this layer for its LISTEN read; everything else that executes statements
uses psycopg 3's maintained asynchronous connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import psycopg2
import psycopg2.extensions

from .errors import ConnectionLost

NotificationsCallback = Callable[[Sequence[psycopg2.extensions.Notify]], None]


class AsyncPgConnection:
    """One non-blocking psycopg2 connection: one query at a time, notifications any time."""

    def __init__(self, conn: psycopg2.extensions.connection) -> None:
        self._conn = conn
        self._loop = asyncio.get_running_loop()
        self._fd = conn.fileno()
        self._waiter: asyncio.Future[None] | None = None
        self._query_lock = asyncio.Lock()
        self._on_notifications: NotificationsCallback | None = None
        self._watching = False
        self.lost = asyncio.Event()

    @classmethod
    async def connect(cls, timeout: float, **dsn: Any) -> AsyncPgConnection:
        """Connect without blocking the loop (``dsn``: libpq keywords, e.g. host, dbname)."""
        conn = psycopg2.connect(async_=True, **dsn)
        self = cls(conn)
        self._loop.add_reader(self._fd, self._on_readable)
        self._watching = True
        try:
            await self._until_idle(self._expect_answer(), timeout)
        except BaseException:
            self.close()
            raise
        return self

    @property
    def backend_pid(self) -> int:
        """The server process this connection talks to, as the server announced it at start-up
        (a connection pooler announces one of its own instead)."""
        return self._conn.get_backend_pid()

    def listen_with(self, callback: NotificationsCallback | None) -> None:
        """Route notifications to ``callback`` (None: drop them)."""
        self._on_notifications = callback

    async def fetchall(self, sql: str, params: Sequence[Any] = (), timeout: float = 5.0) -> list[tuple[Any, ...]]:
        """Run one statement; all its rows (none for a statement that returns none)."""
        async with self._query_lock:
            if self.lost.is_set():
                raise ConnectionLost("PostgreSQL connection lost")
            cursor = self._conn.cursor()
            answer = self._expect_answer()
            try:
                cursor.execute(sql, params)
            except psycopg2.OperationalError as exc:
                self._waiter = None
                self._mark_lost()
                raise ConnectionLost("PostgreSQL connection lost: %s" % exc) from exc
            await self._until_idle(answer, timeout)
            return cursor.fetchall() if cursor.description else []

    async def fetchval(self, sql: str, params: Sequence[Any] = (), timeout: float = 5.0) -> Any:
        """Run one statement; the first column of its first row, or None."""
        rows = await self.fetchall(sql, params, timeout)
        return rows[0][0] if rows else None

    async def execute(self, sql: str, params: Sequence[Any] = (), timeout: float = 5.0) -> None:
        await self.fetchall(sql, params, timeout)

    def close(self) -> None:
        self._stop_watching()
        self._conn.close()

    # -- the single reader callback ------------------------------------------------------
    def _expect_answer(self) -> asyncio.Future[None]:
        """The waiter of the next answer, in place before anything is sent (see the module)."""
        self._waiter = self._loop.create_future()
        return self._waiter

    async def _until_idle(self, answer: asyncio.Future[None], timeout: float) -> None:
        self._on_readable()  # the first poll may already finish (or need to write)
        try:
            async with asyncio.timeout(timeout):
                await answer
        finally:
            self._waiter = None

    def _on_readable(self) -> None:
        try:
            state = self._conn.poll()
        except psycopg2.OperationalError as exc:
            self._mark_lost()
            self._complete(ConnectionLost("PostgreSQL connection lost: %s" % exc))
            return
        except psycopg2.Error as exc:  # the statement in flight failed: its caller gets it
            self._complete(exc)
            return
        if self._conn.notifies:
            batch = list(self._conn.notifies)
            self._conn.notifies.clear()
            if self._on_notifications is not None:
                self._on_notifications(batch)
        if state == psycopg2.extensions.POLL_OK:
            self._complete(None)
        elif state == psycopg2.extensions.POLL_WRITE:
            self._loop.add_writer(self._fd, self._on_writable)

    def _on_writable(self) -> None:
        self._loop.remove_writer(self._fd)
        self._on_readable()

    def _complete(self, error: BaseException | None) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)

    def _mark_lost(self) -> None:
        self._stop_watching()
        self.lost.set()

    def _stop_watching(self) -> None:
        if self._watching:
            self._watching = False
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
