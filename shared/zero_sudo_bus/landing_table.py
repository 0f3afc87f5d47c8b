"""The landing table as the landing daemon writes it: the contract between the daemon and the
``zero_sudo_ingest`` addon, whose ORM owns the real tables.

The statements the daemon runs are defined here once; the addon's tests run them against the
tables Odoo created (``addons/zero_sudo_ingest/tests/test_landing_table.py``), and the daemons'
tests and benchmarks create :data:`MINIMAL_DDL` (only what the daemon depends on) in databases
without Odoo.
"""

from __future__ import annotations

LANDING_MODEL = "zero_sudo.ingest.landing"  # whose ID-only events announce landed rows
LANDING_TABLE = "zero_sudo_ingest_landing"
STREAM_TABLE = "zero_sudo_ingest_stream"

# One batch: every row at once, duplicates (same stream, same external ID) skipped by the
# unique constraint, the IDs of the new rows returned for their NOTIFYs.
INSERT_ROWS = f"""
INSERT INTO {LANDING_TABLE} (stream_id, external_id, payload, state, create_date, write_date)
SELECT s, e, p::jsonb, 'landed', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'
  FROM unnest(%s::int4[], %s::varchar[], %s::text[]) AS t(s, e, p)
ON CONFLICT (stream_id, external_id) DO NOTHING
RETURNING id
"""
NOTIFY_ALL = "SELECT pg_notify(%s, p) FROM unnest(%s::text[]) AS p"
ACTIVE_STREAMS = f"SELECT code, id FROM {STREAM_TABLE} WHERE active AND code = ANY(%s)"

MINIMAL_DDL = f"""
CREATE TABLE {STREAM_TABLE} (
    id serial PRIMARY KEY, code varchar NOT NULL UNIQUE, name varchar, active boolean DEFAULT true
);
CREATE TABLE {LANDING_TABLE} (
    id serial PRIMARY KEY,
    stream_id int NOT NULL REFERENCES {STREAM_TABLE}(id) ON DELETE CASCADE,
    external_id varchar NOT NULL,
    payload jsonb,
    state varchar NOT NULL,
    error text,
    create_date timestamp,
    write_date timestamp,
    CONSTRAINT zero_sudo_ingest_landing_stream_external_uniq UNIQUE (stream_id, external_id)
);
"""
