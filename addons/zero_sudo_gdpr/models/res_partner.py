from odoo import _, api, fields, models

OFFICERS = "zero_sudo_gdpr.group_gdpr_officer"


class ResPartner(models.Model):
    """The contact shows its erasures (officers only): state and progress of the latest."""

    _inherit = "res.partner"

    zs_gdpr_request_ids = fields.One2many("zero_sudo.gdpr.request", "partner_id", string="Erasure requests", groups=OFFICERS)
    zs_gdpr_status = fields.Char(compute="_compute_zs_gdpr_status", string="Erasure", groups=OFFICERS)
    zs_gdpr_progress = fields.Char(compute="_compute_zs_gdpr_status", string="Erasure progress", groups=OFFICERS)

    @api.depends("zs_gdpr_request_ids.state", "zs_gdpr_request_ids.line_ids.done")
    def _compute_zs_gdpr_status(self):
        states = dict(self.env["zero_sudo.gdpr.request"]._fields["state"]._description_selection(self.env))
        for partner in self:
            latest = partner.zs_gdpr_request_ids[:1]  # ordered newest first
            partner.zs_gdpr_status = _("Erasure %s", states[latest.state].lower()) if latest else False
            partner.zs_gdpr_progress = "%d%%" % latest.progress if latest else False

    def action_open_zs_gdpr_requests(self):
        self.ensure_one()
        requests = self.zs_gdpr_request_ids
        action = self.env["ir.actions.act_window"]._for_xml_id("zero_sudo_gdpr.action_requests")
        if len(requests) == 1:
            action.update({"view_mode": "form", "views": [(False, "form")], "res_id": requests.id})
        else:
            action["domain"] = [("partner_id", "=", self.id)]
        return action
