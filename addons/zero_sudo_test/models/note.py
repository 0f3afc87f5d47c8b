from odoo import fields, models


class Note(models.Model):
    """A model that changes often, beside the articles (the cache benchmark's model X)."""

    _name = "zero_sudo.test.note"
    _inherit = ["zero_sudo.change.event.mixin"]
    _description = "zero_sudo test note"

    name = fields.Char(required=True)
