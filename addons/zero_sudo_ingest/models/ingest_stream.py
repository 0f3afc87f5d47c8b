import json

from zero_sudo_bus.ingest import check_stream_code

from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

from ..tools.schema import SchemaError, check_schema


class IngestStream(models.Model):
    """A named flow of external data: who owns it, how to check it, where it lands.

    Publishers authenticate with the owner's own Odoo 18 API key (``Authorization: Bearer``,
    Odoo's ``auth="bearer"``): keys are hashed at rest by Odoo, revocable from the user's
    preferences, and the request then runs as the owner, under the owner's access rights.
    """

    _name = "zero_sudo.ingest.stream"
    _description = "Ingestion stream"
    _order = "code"

    name = fields.Char(required=True, index="trigram")
    code = fields.Char(
        required=True,
        index="trigram",
        help="Appears in the endpoint URL /zero_sudo/ingest/<code> and in RabbitMQ routing keys: "
        "1-64 characters of a-z, 0-9, _ and -.",
    )
    active = fields.Boolean(
        default=True, help="An archived stream accepts nothing; its queued messages go to the dead-letter queue."
    )
    user_id = fields.Many2one("res.users", string="Owner", required=True, default=lambda self: self.env.user, ondelete="restrict")
    message_schema = fields.Text(
        string="Message schema",
        default='{"type": "object"}',
        help="JSON Schema (a strict subset: type, properties, required, additionalProperties, items, "
        "enum, minLength, maxLength, minimum, maximum, maxItems) every message must satisfy.",
    )
    external_id_field = fields.Char(
        string="External ID key", required=True, default="id", help="The key of each message that makes it unique in this stream."
    )
    target_model_id = fields.Many2one(
        "ir.model", string="Target model", ondelete="cascade", help="Landed messages become records of this model."
    )
    target_model = fields.Char(related="target_model_id.model")
    match_field = fields.Char(
        help="Field of the target model that stores the external ID, so that a message received "
        "again updates its record instead of creating another (e.g. ref on contacts)."
    )
    field_mapping = fields.Text(
        default="{}", help='JSON object from message keys to target fields, e.g. {"name": "name", "mail": "email"}.'
    )
    landing_ids = fields.One2many("zero_sudo.ingest.landing", "stream_id")
    landed_count = fields.Integer(compute="_compute_counts")
    failed_count = fields.Integer(compute="_compute_counts")

    _sql_constraints = [("code_uniq", "unique(code)", "A stream code must be unique.")]

    def _compute_counts(self):
        counts = {
            (stream_id, state): count
            for stream_id, state, count in self.env["zero_sudo.ingest.landing"]._read_group(
                [("stream_id", "in", self.ids), ("state", "in", ("landed", "failed"))], ["stream_id", "state"], ["__count"]
            )
        }
        for stream in self:
            stream.landed_count = counts.get((stream, "landed"), 0)
            stream.failed_count = counts.get((stream, "failed"), 0)

    @api.constrains("code")
    def _check_code(self):
        for stream in self:
            try:
                check_stream_code(stream.code)
            except ValueError as exc:
                raise ValidationError(_("Stream code %(code)r: %(reason)s", code=stream.code, reason=exc)) from None

    @api.constrains("message_schema")
    def _check_message_schema(self):
        for stream in self:
            try:
                check_schema(stream._schema())
            except (ValueError, SchemaError) as exc:
                raise ValidationError(_("Message schema of %(stream)s: %(reason)s", stream=stream.code, reason=exc)) from None

    @api.constrains("field_mapping", "target_model_id", "match_field")
    def _check_mapping(self):
        for stream in self:
            try:
                mapping = stream._mapping()
            except ValueError as exc:
                raise ValidationError(_("Field mapping of %(stream)s: %(reason)s", stream=stream.code, reason=exc)) from None
            if not stream.target_model_id:
                continue
            target_fields = self.env[stream.target_model]._fields
            unknown = sorted({*mapping.values(), *([stream.match_field] if stream.match_field else [])} - set(target_fields))
            if unknown:
                raise ValidationError(
                    _("%(model)s has no field(s) %(fields)s", model=stream.target_model, fields=", ".join(unknown))
                )

    def _schema(self) -> dict:
        self.ensure_one()
        return json.loads(self.message_schema or "{}")

    def _mapping(self) -> dict[str, str]:
        self.ensure_one()
        mapping = json.loads(self.field_mapping or "{}")
        if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
            raise ValueError("expected a JSON object of strings")
        return mapping
