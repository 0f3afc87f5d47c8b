from odoo import fields, models


class Message(models.Model):
    """A person's messages, by the hundred thousand: what the GDPR eraser's scale tests erase."""

    _name = "zero_sudo.test.message"
    _inherit = ["zero_sudo.change.event.mixin"]
    _description = "zero_sudo test message"

    partner_id = fields.Many2one("res.partner", required=True, index=True, ondelete="cascade")
    kind = fields.Selection([("mail", "Mail"), ("log", "Log")], required=True, default="mail")
    email = fields.Char()
    body = fields.Text()
    touched = fields.Integer(help="Bumped by the tests' concurrent writer.")
