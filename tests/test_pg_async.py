"""The relay's hand-written LISTEN layer under uvloop, against a real PostgreSQL: every
server error reaches the statement that caused it, even among thousands of notifications."""

import asyncio

import psycopg2
import uvloop

from conftest import PG_HOST, PG_PORT, notify
from zero_sudo_bus.protocol import PG_CHANNEL
from zero_sudo_daemons.pg_async import AsyncPgConnection

# (statement, SQLSTATE the server answers with); None: it succeeds and returns 1.
STATEMENTS = (
    ("SELECT 1/0", "22012"),  # division_by_zero
    ("SELECT 1", None),
    ("SELECT 'x'::int", "22P02"),  # invalid_text_representation
    ("SELECT * FROM no_such_table", "42P01"),  # undefined_table
    ("SELECT 1", None),
)
ROUNDS = 1000  # 3000 server errors and 2000 answers


def test_thousands_of_server_errors_each_reach_their_statement(pg_db):
    async def main():
        conn = await AsyncPgConnection.connect(5.0, host=PG_HOST, port=PG_PORT, dbname=pg_db)
        received = []
        conn.listen_with(lambda batch: received.extend(n.payload for n in batch))
        await conn.execute('LISTEN "%s"' % PG_CHANNEL)
        outcomes = []
        sender = asyncio.get_running_loop().run_in_executor(None, lambda: notify(pg_db, *("[%d]" % i for i in range(2000))))
        for _ in range(ROUNDS):
            for sql, _sqlstate in STATEMENTS:
                try:
                    value = await conn.fetchval(sql)
                except psycopg2.Error as exc:
                    outcomes.append((sql, exc.pgcode))
                else:
                    outcomes.append((sql, value))
        await sender
        for _ in range(100):
            if len(received) == 2000:
                break
            await conn.execute("SELECT 1")
            await asyncio.sleep(0.02)
        conn.close()
        return outcomes, received

    outcomes, received = uvloop.run(main())
    expected = [(sql, sqlstate or 1) for sql, sqlstate in STATEMENTS] * ROUNDS
    wrong = [(i, got, want) for i, (got, want) in enumerate(zip(outcomes, expected, strict=True)) if got != want]
    assert wrong == [], "%d of %d statements got another outcome, first %r" % (len(wrong), len(expected), wrong[:3])
    assert received == ["[%d]" % i for i in range(2000)]
