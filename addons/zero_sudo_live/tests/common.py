"""Helpers for tests that need what a TransactionCase hides: real commits, NOTIFYs, Redis."""

import json
import time

import psycopg2
import redis
from zero_sudo_bus.protocol import PG_CHANNEL, ChangeBatch, decode_notify_payload, model_key

from odoo.sql_db import db_connect

from odoo.addons.zero_sudo.tests.common import real_env, wait_until
from odoo.addons.zero_sudo.tools.settings import settings_from_odoo_conf

__all__ = ["ChangeListener", "UserChannels", "real_env", "wait_until"]


class ChangeListener:
    """A real LISTEN connection on the change-event channel, decoding what arrives."""

    MARKER = "[1,1,1]"

    def __init__(self, dbname):
        self.conn = psycopg2.connect(**db_connect(dbname).dsn)
        self.conn.autocommit = True
        self.conn.cursor().execute("LISTEN %s" % PG_CHANNEL)
        self.payloads = []

    def _drain(self):
        self.conn.poll()
        while self.conn.notifies:
            self.payloads.append(self.conn.notifies.pop(0).payload)

    def sync(self):
        """Commit a marker NOTIFY and wait for it: everything committed before has arrived."""
        before = self.payloads.count(self.MARKER)
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_notify(%s, %s)", [PG_CHANNEL, self.MARKER])
        wait_until(lambda: self._drain() or self.payloads.count(self.MARKER) > before, what="the marker NOTIFY")

    def ids(self, model, op):
        key = model_key(model)
        batches = [decode_notify_payload(payload) for payload in self.payloads if payload != self.MARKER]
        return sorted({i for b in batches if isinstance(b, ChangeBatch) and b.model_key == key and b.op == op for i in b.ids})

    def models(self):
        batches = [decode_notify_payload(payload) for payload in self.payloads if payload != self.MARKER]
        return {b.model_key for b in batches if isinstance(b, ChangeBatch)}

    def close(self):
        self.conn.close()


class UserChannels:
    """A real Redis subscriber on users' channels (what every gateway follows)."""

    def __init__(self, channels):
        self.client = redis.Redis.from_url(settings_from_odoo_conf().redis_url)
        self.pubsub = self.client.pubsub()
        self.pubsub.subscribe(*channels)
        for _channel in channels:
            self.pubsub.get_message(timeout=5)  # the subscribe confirmations
        self.received = []

    def drain(self, timeout=0.2):
        """What arrived, as (channel, decoded JSON), waiting ``timeout`` for stragglers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.05)
            if message and message["type"] == "message":
                self.received.append((message["channel"].decode(), json.loads(message["data"])))
        return self.received

    def close(self):
        self.pubsub.close()
        self.client.close()
