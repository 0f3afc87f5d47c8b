from odoo import fields, models


class Article(models.Model):
    """A sluggable record, as a blog post or a product page would be."""

    _name = "zero_sudo.test.article"
    _inherit = ["zero_sudo.slug.mixin"]
    _description = "zero_sudo test article"

    name = fields.Char(required=True, index="trigram")
