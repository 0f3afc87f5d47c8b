"""Installation hooks of the zero_sudo addon."""

import logging

import psycopg2

from odoo.exceptions import UserError
from odoo.modules.db import has_trigram

_logger = logging.getLogger(__name__)

MISSING_TRIGRAM = (
    "zero_sudo needs PostgreSQL's pg_trgm extension for its trigram indexes, and this database user "
    "cannot create it (%(error)s): run  CREATE EXTENSION pg_trgm;  in database %(db)s as a superuser "
    "(on Debian the extension ships in postgresql-contrib), then install again."
)


def ensure_trigram(cr):
    """Create pg_trgm unless the database has it; True when it had to be created.

    Odoo creates the extension only in databases it creates itself; on a database made with
    ``createdb`` or by a managed PostgreSQL it would silently skip every ``index='trigram'``.
    Raises UserError, with the one statement to run, when it cannot be created.
    """
    if has_trigram(cr):
        return False
    try:
        with cr.savepoint(flush=False):
            cr.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except psycopg2.Error as exc:
        raise UserError(MISSING_TRIGRAM % {"error": (exc.pgerror or str(exc)).strip().splitlines()[0], "db": cr.dbname}) from None
    _logger.info("created the pg_trgm extension in database %s for the suite's trigram indexes", cr.dbname)
    return True


def pre_init_hook(env):
    """Before any of the suite's tables exist: every addon of the suite depends on zero_sudo,
    so this runs before the first ``index='trigram'`` is created."""
    if ensure_trigram(env.cr):
        env.registry.has_trigram = True  # the registry looked before the extension existed
