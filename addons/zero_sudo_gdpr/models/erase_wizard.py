from odoo import _, api, fields, models
from odoo.exceptions import UserError


class GdprEraseWizard(models.TransientModel):
    """The confirmation of 'Erase personal data' on contacts: what each active rule will do
    and to how many of the selected people's records, before anything is queued."""

    _name = "zero_sudo.gdpr.erase.wizard"
    _description = "Erase personal data"

    partner_ids = fields.Many2many("res.partner", string="People", readonly=True)
    line_ids = fields.One2many("zero_sudo.gdpr.erase.wizard.line", "wizard_id", readonly=True)
    total = fields.Integer(compute="_compute_total", string="Records touched")

    @api.depends("line_ids.count")
    def _compute_total(self):
        for wizard in self:
            wizard.total = sum(wizard.line_ids.mapped("count"))

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        context = self.env.context
        partner_ids = (context.get("active_ids") or []) if context.get("active_model") == "res.partner" else []
        values["partner_ids"] = [(6, 0, partner_ids)]
        values["line_ids"] = [(0, 0, line) for line in self._preview(partner_ids)]
        return values

    @api.model
    def _preview(self, partner_ids):
        """One line per active rule, in erasure order: what it does, how many records."""
        lines = []
        for rule in self.env["zero_sudo.gdpr.rule"].search([]):
            model = self.env[rule.model].with_context(active_test=False)
            allowed = rule._allowed()
            if allowed and partner_ids:
                count = model.search_count(rule._domain_for(partner_ids))
            elif partner_ids:
                unrestricted = model.sudo()  # a count only: what the officer may not do, they see the size of
                count = unrestricted.search_count(rule._domain_for(partner_ids))
            else:
                count = 0
            lines.append({"rule_id": rule.id, "what": rule._describe(), "count": count, "allowed": allowed})
        return lines

    def action_erase(self):
        """One erasure request per person, each queued to run once this transaction commits;
        back to the contact, whose form now shows the erasure's progress."""
        self.ensure_one()
        if not self.partner_ids:
            raise UserError(_("Select the contacts whose personal data to erase."))
        if not self.env["zero_sudo.gdpr.rule"].search_count([]):
            raise UserError(
                _("No erasure rule is active: propose rules (GDPR > Erasure rules), review them and activate them first.")
            )
        refused = self.line_ids.filtered(lambda line: not line.allowed)
        if refused:
            raise UserError(
                _(
                    "The erasure runs with your rights, and you may not do what these rules do: %s",
                    ", ".join(refused.rule_id.mapped("name")),
                )
            )
        requests = self.env["zero_sudo.gdpr.request"].create([{"partner_id": partner.id} for partner in self.partner_ids])
        requests.action_run()
        if len(requests) == 1:
            return {
                "type": "ir.actions.client",
                "tag": "display_notification",
                "params": {
                    "type": "info",
                    "message": _("Erasing %s: the contact shows its progress.", requests.partner_id.display_name),
                    "next": {"type": "ir.actions.client", "tag": "soft_reload"},
                },
            }
        action = self.env["ir.actions.act_window"]._for_xml_id("zero_sudo_gdpr.action_requests")
        action["domain"] = [("id", "in", requests.ids)]
        return action


class GdprEraseWizardLine(models.TransientModel):
    _name = "zero_sudo.gdpr.erase.wizard.line"
    _description = "What one rule will erase"
    _order = "id"

    wizard_id = fields.Many2one("zero_sudo.gdpr.erase.wizard", required=True, ondelete="cascade")
    rule_id = fields.Many2one("zero_sudo.gdpr.rule", string="Rule", readonly=True)
    model_name = fields.Char(related="rule_id.model_id.name", string="Records of")
    what = fields.Char(string="Erasure", readonly=True)
    count = fields.Integer(string="Records", readonly=True)
    allowed = fields.Boolean(
        string="Allowed to you", readonly=True, help="The erasure runs with your rights: may you do what this rule does?"
    )
