from odoo import fields, models


class GdprRequest(models.Model):
    """Each erasure also appears in privacy_lookup's privacy log, where an administrator
    looks for what was done about a person: opened when the erasure is queued (the person's
    name and email, masked as privacy_lookup masks them, are still there to mask), completed
    with the audit trail when it is done."""

    _inherit = "zero_sudo.gdpr.request"

    privacy_log_id = fields.Many2one("privacy.log", readonly=True, ondelete="set null", copy=False)

    def _erasure_planned(self):
        super()._erasure_planned()
        for request in self.filtered(lambda request: not request.privacy_log_id):
            partner = request.partner_id
            # privacy.log requires an email with an '@' to mask; a person without one gets a placeholder.
            email = partner.email if "@" in (partner.email or "") else "-@-"
            log = self.env["privacy.log"].sudo()  # the log is the administrators': an officer's erasure is logged all the same
            request.privacy_log_id = log.create(
                {
                    "anonymized_name": partner.name or "-",
                    "anonymized_email": email,
                    "execution_details": "Erasure queued (zero_sudo GDPR request #%d)" % request.id,
                    "records_description": request._plan_description(),
                }
            )

    def _plan_description(self):
        """The plan as privacy_lookup describes found records: one line per rule, with its count."""
        return "\n".join("%s (%d): %s" % (line.rule_id.name, line.total, line.rule_id.action) for line in self.line_ids)

    def _finish(self):
        super()._finish()
        for request in self.filtered("privacy_log_id"):
            log = request.privacy_log_id.sudo()  # the administrators' log, completed whatever the officer's rights
            log.execution_details = "Erased (zero_sudo GDPR request #%d):\n%s" % (request.id, request.audit or "")
