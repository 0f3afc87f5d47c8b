"""Helpers for tests that need what a TransactionCase hides: committed data and real cursors."""

import socket
import time

import psycopg2

from odoo import api
from odoo.sql_db import db_connect


def wait_until(predicate, timeout=30.0, what="condition"):
    """Poll ``predicate`` until truthy; fail with ``what`` after ``timeout`` (a safety net,
    never a speed assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(0.02)


def real_env(registry, uid=api.SUPERUSER_ID):
    """An environment on a new real cursor (own transaction, own snapshot); close its cr."""
    return api.Environment(registry.cursor(), uid, {})


class Listener:
    """A real LISTEN connection on a channel, outside Odoo."""

    def __init__(self, dbname, channel):
        self.conn = psycopg2.connect(**db_connect(dbname).dsn)
        self.conn.autocommit = True
        self.conn.cursor().execute("LISTEN %s" % channel)
        self.payloads = []

    def drain_until(self, predicate, what):
        def poll():
            self.conn.poll()
            while self.conn.notifies:
                self.payloads.append(self.conn.notifies.pop(0).payload)
            return predicate(self.payloads)

        return wait_until(poll, what=what)

    def close(self):
        self.conn.close()


def free_port():
    """A loopback port nothing listens on (bound, then released): for a private server, or
    for a server that is not there."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
