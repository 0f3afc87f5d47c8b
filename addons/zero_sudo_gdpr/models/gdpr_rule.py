import json

from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

ANONYMIZED = "[erased]"


class GdprRule(models.Model):
    """Where a person's data lives, and what erasing it means there."""

    _name = "zero_sudo.gdpr.rule"
    _description = "GDPR erasure rule"
    _order = "sequence, id"

    name = fields.Char(required=True)
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    model_id = fields.Many2one("ir.model", required=True, ondelete="cascade")
    model = fields.Char(related="model_id.model", string="Model name")
    partner_field = fields.Char(required=True, help="Field of the model that points at the person (res.partner), e.g. partner_id.")
    extra_domain = fields.Char(default="[]", help="A JSON domain narrowing the records further.")
    action = fields.Selection([("anonymize", "Anonymize fields"), ("delete", "Delete records")], required=True, default="anonymize")
    field_names = fields.Char(help="Comma-separated fields to anonymize (text fields become '[erased]', others are emptied).")

    @api.constrains("model_id", "partner_field", "extra_domain", "action", "field_names")
    def _check_rule(self):
        for rule in self:
            model = self.env[rule.model]
            field = model._fields.get(rule.partner_field)
            if field is None or field.type != "many2one" or field.comodel_name != "res.partner":
                raise ValidationError(_("%(model)s.%(field)s is not a link to a contact", model=rule.model, field=rule.partner_field))
            try:
                domain = json.loads(rule.extra_domain or "[]")
            except ValueError as exc:
                raise ValidationError(_("Extra domain of %(rule)s is not JSON: %(error)s", rule=rule.name, error=exc)) from None
            if not isinstance(domain, list):
                raise ValidationError(_("Extra domain of %s must be a JSON list", rule.name))
            if rule.action == "anonymize":
                names = rule._anonymized_fields()
                unknown = [name for name in names if name not in model._fields]
                if not names or unknown:
                    raise ValidationError(_("Fields to anonymize on %(model)s: %(fields)s", model=rule.model, fields=", ".join(unknown) or "none"))

    def _anonymized_fields(self):
        return [name.strip() for name in (self.field_names or "").split(",") if name.strip()]

    def _domain(self, partner_id):
        self.ensure_one()
        return [(self.partner_field, "=", partner_id), *json.loads(self.extra_domain or "[]")]

    def _anonymized_values(self):
        """The same values for every record: one UPDATE per chunk."""
        self.ensure_one()
        model = self.env[self.model]
        values = {}
        for name in self._anonymized_fields():
            field = model._fields[name]
            values[name] = ANONYMIZED if field.type in ("char", "text", "html") else False
        return values
