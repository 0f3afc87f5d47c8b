import json
import logging
import re

from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

from . import rule_planning

_logger = logging.getLogger(__name__)

ANONYMIZED = "[erased]"
UNIQUE = re.compile(r"unique\s*\(([^)]*)\)", re.IGNORECASE)


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
    partner_field = fields.Char(
        required=True,
        help="Field of the model that points at the person (res.partner), e.g. partner_id; 'id' on Contact: the contact itself; "
        "a reference field (res_id) with an extra domain naming res.partner: records attached to the contact.",
    )
    extra_domain = fields.Char(default="[]", help="A JSON domain narrowing the records further.")
    action = fields.Selection(
        [("anonymize", "Anonymize fields"), ("delete", "Delete records")], required=True, default="anonymize"
    )
    field_names = fields.Char(help="Comma-separated fields to anonymize (text fields become '[erased]', others are emptied).")
    proposed = fields.Boolean(
        readonly=True, help="Proposed by 'Propose rules' from the installed models, for an officer to review and activate."
    )
    note = fields.Char(string="Why", help="What the rule is for (proposed rules say why they were proposed).")

    @api.constrains("model_id", "partner_field", "extra_domain", "action", "field_names")
    def _check_rule(self):
        for rule in self:
            model = self.env[rule.model]
            field = model._fields.get(rule.partner_field)
            if rule.partner_field == rule_planning.SELF:
                if rule.model != rule_planning.PARTNER or rule.action != "anonymize":
                    raise ValidationError(
                        _(
                            "Only contacts link to themselves ('id'), and the person's contact is anonymized, never deleted (its erasure requests point at it)"
                        )
                    )
            elif field is None or not (
                (field.type == "many2one" and field.comodel_name == "res.partner") or field.type == "many2one_reference"
            ):
                raise ValidationError(
                    _("%(model)s.%(field)s is not a link to a contact", model=rule.model, field=rule.partner_field)
                )
            elif field.type == "many2one_reference" and [field.model_field, "=", "res.partner"] not in json.loads(
                rule.extra_domain or "[]"
            ):
                raise ValidationError(
                    _(
                        "%(model)s.%(field)s refers to records of any model: the extra domain must say %(clause)s",
                        model=rule.model,
                        field=rule.partner_field,
                        clause=json.dumps([field.model_field, "=", "res.partner"]),
                    )
                )
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
                    raise ValidationError(
                        _("Fields to anonymize on %(model)s: %(fields)s", model=rule.model, fields=", ".join(unknown) or "none")
                    )

    def _anonymized_fields(self):
        return [name.strip() for name in (self.field_names or "").split(",") if name.strip()]

    def _domain(self, partner_id):
        """The person's records for this rule (search them with active_test=False: archived
        records are the person's data all the same)."""
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

    def _domain_for(self, partner_ids):
        """Records of this rule for several people at once (the confirmation's counts)."""
        self.ensure_one()
        return [(self.partner_field, "in", list(partner_ids)), *json.loads(self.extra_domain or "[]")]

    def _describe(self):
        """What the rule does, in the words of the confirmation: 'Anonymize Name, Email' or 'Delete'."""
        self.ensure_one()
        if self.action == "delete":
            return _("Delete the records")
        model = self.env[self.model]
        labels = [model._fields[name].string for name in self._anonymized_fields() if name in model._fields]
        return _("Anonymize %s", ", ".join(labels))

    def _allowed(self):
        """May the current user do what this rule does? The erasure runs with their rights."""
        self.ensure_one()
        operation = "unlink" if self.action == "delete" else "write"
        return self.env[self.model].has_access(operation)

    def action_activate(self):
        """The officer accepts proposed rules: they apply to the next erasures."""
        self.write({"active": True})

    def action_propose(self):
        """Inspect the installed models and file, inactive, the rules they need that no rule
        (active or not) covers yet: the officer reviews them and activates those to keep.

        Not an ``api.model`` method: the rules list's header button calls it with whatever
        rows are there (or selected), which it ignores.

        The planning is ``rule_planning.propose_rules``; this only describes the registry and
        files the result. Opens the proposals.
        """
        Rule = self.browse().with_context(active_test=False)
        existing = {(rule.model, rule.partner_field, rule.action) for rule in Rule.search([])}
        proposals, skipped = rule_planning.propose_rules(self._model_infos(), existing)
        for reason in skipped:
            _logger.info("GDPR rule proposal: no rule for %s", reason)
        created = Rule.create(
            [
                {
                    "name": proposal.name,
                    "sequence": proposal.sequence,
                    "active": False,
                    "proposed": True,
                    "model_id": self.env["ir.model"]._get_id(proposal.model),
                    "partner_field": proposal.partner_field,
                    "extra_domain": json.dumps(proposal.extra_domain),
                    "action": proposal.action,
                    "field_names": ",".join(proposal.field_names) or False,
                    "note": proposal.why,
                }
                for proposal in proposals
            ]
        )
        _logger.info("GDPR rule proposal: %d rules proposed", len(created))
        action = self.env["ir.actions.act_window"]._for_xml_id("zero_sudo_gdpr.action_rules")
        action.update(context={"search_default_proposed": 1}, target="main")  # the list again, filtered: no breadcrumb of itself
        return action

    @api.model
    def _model_infos(self):
        """The registry, described for ``rule_planning``: every table-backed model with its fields."""
        infos = []
        for name in self.env.registry:
            model = self.env[name]
            if model._transient or model._abstract or not model._auto:
                continue
            unique = {
                column.strip()
                for _name, definition, _message in model._sql_constraints
                for match in UNIQUE.finditer(definition)
                for column in match.group(1).split(",")
            }
            infos.append(
                rule_planning.ModelInfo(
                    name,
                    model._description or name,
                    tuple(
                        rule_planning.FieldInfo(
                            field.name,
                            field.type,
                            field.string or field.name,
                            comodel=field.comodel_name,
                            store=bool(field.store),
                            writable=not field.related and (not field.compute or bool(field.inverse)),
                            required=bool(field.required),
                            ondelete=getattr(field, "ondelete", None),
                            model_field=getattr(field, "model_field", None),
                            unique=field.name in unique,
                        )
                        for field in model._fields.values()
                    ),
                )
            )
        return infos
