import secrets

from odoo.exceptions import UserError
from odoo.modules.db import has_trigram
from odoo.sql_db import close_db, db_connect
from odoo.tests import BaseCase, tagged

from ..hooks import ensure_trigram


@tagged("post_install", "-at_install", "zero_sudo")
class TestTrigramExtension(BaseCase):
    """On a database created outside Odoo (plain CREATE DATABASE, no pg_trgm), installing the
    suite creates the extension, or stops with the one statement to run."""

    def setUp(self):
        super().setUp()
        self.db = "zs_plain_" + secrets.token_hex(4)
        self.role = "zs_no_ext_" + secrets.token_hex(4)
        with db_connect("postgres").cursor() as cr:
            cr._cnx.autocommit = True
            cr.execute('CREATE DATABASE "%s" TEMPLATE template0' % self.db)
            cr.execute('CREATE ROLE "%s" NOLOGIN' % self.role)
        self.addCleanup(self._drop)

    def _drop(self):
        close_db(self.db)
        with db_connect("postgres").cursor() as cr:
            cr._cnx.autocommit = True
            cr.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.db)
            cr.execute('DROP ROLE IF EXISTS "%s"' % self.role)

    def test_a_user_who_cannot_create_it_gets_the_statement_to_run(self):
        with db_connect(self.db).cursor() as cr:
            cr.execute('SET ROLE "%s"' % self.role)
            with self.assertRaises(UserError) as caught:
                ensure_trigram(cr)
            message = str(caught.exception)
            self.assertIn("CREATE EXTENSION pg_trgm;", message)
            self.assertIn(self.db, message)
            self.assertNotIn("\n", message)
            self.assertFalse(has_trigram(cr))

    def test_a_user_who_can_creates_it(self):
        with db_connect(self.db).cursor() as cr:
            self.assertFalse(has_trigram(cr))
            self.assertTrue(ensure_trigram(cr))
            self.assertTrue(has_trigram(cr))
            self.assertFalse(ensure_trigram(cr), "created once")
            cr.execute("CREATE TABLE t (name varchar)")
            cr.execute("CREATE INDEX ON t USING gin (name gin_trgm_ops)")  # what index='trigram' creates
