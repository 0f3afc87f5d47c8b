import psycopg2.errors
from zero_sudo_bus.lockhash import deterministic_hash

from odoo import api, models


def lock_timeout_setting(timeout_s: float) -> str:
    """PostgreSQL's ``lock_timeout`` value for a wait of ``timeout_s`` seconds (at least 1 ms,
    since 0 would mean "wait forever")."""
    if timeout_s <= 0:
        raise ValueError("a lock timeout must be positive")
    return "%dms" % max(1, round(timeout_s * 1000))


class SecurityUtils(models.AbstractModel):
    """Deterministic lock keys and transaction-scoped advisory locks.

    Every worker of every node computes the same lock key for the same resource, so
    ``pg_advisory_xact_lock`` means the same thing everywhere (the builtin ``hash()`` is salted
    per process). Locks are released by PostgreSQL at the end of the transaction.
    """

    _name = "zero_sudo.security.utils"
    _description = "zero_sudo security utilities"

    @api.model
    def _get_deterministic_hash(self, *parts: str | int) -> int:
        """The lock key of ``parts`` (str and int only): zero_sudo_bus.lockhash's BLAKE2b-64 of
        their compact JSON encoding, as a signed bigint."""
        return deterministic_hash(*parts)

    @api.model
    def _advisory_xact_lock(self, *parts: str | int) -> None:
        """Wait for the lock of ``parts``; held until this transaction ends."""
        self.env.cr.execute("SELECT pg_advisory_xact_lock(%s)", [deterministic_hash(*parts)])

    @api.model
    def _try_advisory_xact_lock(self, *parts: str | int) -> bool:
        """Take the lock of ``parts`` if free, else return False at once."""
        self.env.cr.execute("SELECT pg_try_advisory_xact_lock(%s)", [deterministic_hash(*parts)])
        return self.env.cr.fetchone()[0]

    @api.model
    def _advisory_xact_lock_timeout(self, *parts: str | int, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the lock of ``parts``; False when it stayed taken.

        The wait runs in a savepoint with a transaction-local ``lock_timeout``: a timeout rolls
        back only the savepoint, and the previous ``lock_timeout`` is restored either way.
        """
        cr = self.env.cr
        key = deterministic_hash(*parts)
        cr.execute("SELECT current_setting('lock_timeout')")
        previous = cr.fetchone()[0]
        try:
            with cr.savepoint(flush=False):
                cr.execute("SELECT set_config('lock_timeout', %s, true)", [lock_timeout_setting(timeout)])
                cr.execute("SELECT pg_advisory_xact_lock(%s)", [key], log_exceptions=False)
                cr.execute("SELECT set_config('lock_timeout', %s, true)", [previous])
        except psycopg2.errors.LockNotAvailable:
            return False
        return True
