from lxml import etree

from odoo.tests import TransactionCase, tagged

SUITE_PREFIX = "zero_sudo"
TEXT_TYPES = ("char", "text", "html")


@tagged("post_install", "-at_install", "zero_sudo")
class TestTrigramIndexes(TransactionCase):
    """Every text field of the suite's models that a search view searches with ilike (the
    default for text fields, or an explicit ilike filter_domain) has a trigram index, and
    PostgreSQL really has it (pg_trgm present)."""

    def _searched_fields(self):
        views = self.env["ir.ui.view"].search([("type", "=", "search"), ("model", "=like", SUITE_PREFIX + ".%")])
        for view in views:
            model = self.env[view.model]
            for node in etree.fromstring(view.arch_db.encode()).iter("field"):
                field = model._fields.get(node.get("name"))
                operator = node.get("operator", "ilike")
                uses_ilike = "ilike" in (node.get("filter_domain") or "") or (
                    operator == "ilike" and not node.get("filter_domain")
                )
                if field is not None and field.type in TEXT_TYPES and field.store and uses_ilike:
                    yield model, field

    def test_ilike_searched_fields_have_trigram_indexes(self):
        checked = list(self._searched_fields())
        self.assertTrue(checked, "the suite's search views search some text fields")
        missing = ["%s.%s" % (model._name, field.name) for model, field in checked if field.index != "trigram"]
        self.assertEqual(missing, [])
        for model, field in checked:
            self.env.cr.execute(
                "SELECT 1 FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
                (model._table, "%%%s%%gin_trgm_ops%%" % field.name),
            )
            self.assertTrue(self.env.cr.fetchone(), "no trigram index in PostgreSQL for %s.%s" % (model._name, field.name))
