"""The daemons' exception hierarchy: what is transient (retry with backoff) and what is not."""

from __future__ import annotations

import re


class ZeroSudoDaemonError(Exception):
    """Base of every error a zero_sudo daemon raises on purpose."""


class ConfigurationError(ZeroSudoDaemonError):
    """A setting is missing or malformed: fatal at start-up, never retried."""


class TransientError(ZeroSudoDaemonError):
    """A dependency went away (connection lost, server restarting): the supervisor retries."""


class ConnectionLost(TransientError):
    """A connection the work loop depends on closed under it."""


# Both PostgreSQL drivers carry the server's own message in their connection errors.
_MISSING_DATABASE = re.compile(r'database "([^"]+)" does not exist')
UNDEFINED_TABLE = "42P01"


def operator_problem(exc: BaseException) -> str | None:
    """What an operator must do, when ``exc`` is something retrying soon will not fix.

    A database that does not exist, or whose addons are not installed, waits for a person:
    the supervisor reports it once with this fix and retries slowly, instead of logging a
    fresh warning every few seconds.
    """
    text = str(exc)
    missing = _MISSING_DATABASE.search(text)
    if missing:
        return (
            'database "%s" does not exist: create it through Odoo (which adds the extensions the suite needs) '
            "and install the zero_sudo addons in it, or point the daemons at an existing one with --db-name"
        ) % missing.group(1)
    if UNDEFINED_TABLE in (getattr(exc, "sqlstate", None), getattr(exc, "pgcode", None)):
        return "%s: install the zero_sudo addons in this database (Odoo: Apps)" % text.strip().splitlines()[0]
    return None


class DatabaseDropped(ZeroSudoDaemonError):
    """The database a relay followed was dropped: that relay ends, the others go on (not retried)."""
