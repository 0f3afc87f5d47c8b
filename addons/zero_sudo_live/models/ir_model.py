import logging
from typing import NamedTuple

from odoo import _, api, fields, models, tools
from odoo.exceptions import ValidationError

from ..tools.push import grants_changed

_logger = logging.getLogger(__name__)

MIXIN = "zero_sudo.change.event.mixin"


class PublishedModels(NamedTuple):
    """The models whose changes reach the gateways, as this process knows them."""

    flagged: frozenset[str]  # chosen by an admin (ir.model's "Publish live changes")
    by_code: frozenset[str]  # inherit the change-event mixin in Python

    @property
    def all(self) -> frozenset[str]:
        return self.flagged | self.by_code


class IrModel(models.Model):
    _inherit = "ir.model"

    zero_sudo_live_publish = fields.Boolean(
        string="Publish live changes",
        help="Every record this model creates, writes (recomputed stored fields included) or deletes is "
        "announced to the gateways when the transaction commits, so the lists, kanbans and forms "
        "showing it refresh on every user's screen. Takes effect on every server process at its "
        "next request, without a restart. Models that are not published pay nothing.",
    )
    zero_sudo_live_by_code = fields.Boolean(
        string="Published by code",
        compute="_compute_zero_sudo_live_by_code",
        help="The model inherits zero_sudo's change-event mixin: it always publishes.",
    )

    def _compute_zero_sudo_live_by_code(self):
        by_code = self._zero_sudo_live_published().by_code
        for model in self:
            model.zero_sudo_live_by_code = model.model in by_code

    @api.constrains("zero_sudo_live_publish")
    def _check_zero_sudo_live_publish(self):
        for model in self.filtered("zero_sudo_live_publish"):
            record_model = self.env.get(model.model)
            if record_model is None or record_model._abstract or record_model._transient:
                raise ValidationError(
                    _("%(model)s cannot publish live changes: only models stored in a table of their own do.", model=model.model)
                )

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        if any(vals.get("zero_sudo_live_publish") for vals in vals_list):
            self._zero_sudo_live_changed()
        return records

    def write(self, vals):
        if "zero_sudo_live_publish" not in vals:
            return super().write(vals)
        publish = bool(vals["zero_sudo_live_publish"])
        switched = self.filtered(lambda model: model.zero_sudo_live_publish != publish)
        result = super().write(vals)
        if switched:
            _logger.info("live changes: %s %s", "published" if publish else "unpublished", switched.mapped("model"))
            switched._zero_sudo_live_changed()
        return result

    def unlink(self):
        flagged = any(self.mapped("zero_sudo_live_publish"))
        result = super().unlink()
        if flagged:
            self._zero_sudo_live_changed()
        return result

    def _zero_sudo_live_changed(self) -> None:
        """Forget the published set here, and (Odoo's database signaling, at the end of this
        request) in every other server process before its next request; once committed, tell
        every internal user's web client, whose gateway grants are now stale."""
        self.flush_model(["zero_sudo_live_publish"])  # the set is read with SQL
        self.env.registry.clear_cache()
        internal_users = self.env["res.users"].sudo().search([("share", "=", False)])  # every web client, whoever changed it
        self.env["zero_sudo.live"]._push(internal_users, grants_changed())

    @api.model
    @tools.ormcache()
    def _zero_sudo_live_published(self) -> PublishedModels:
        """The published models, cached per process until an admin changes the setting.

        Plain SQL: called from inside the ORM's flush (``_write_multi``), where a search would
        flush again.
        """
        self.env.cr.execute("SELECT model FROM ir_model WHERE zero_sudo_live_publish")
        flagged = frozenset(row[0] for row in self.env.cr.fetchall())
        mixin = self.env.registry.get(MIXIN)
        by_code = frozenset(
            name
            for name, model_class in self.env.registry.items()
            if mixin is not None and name != MIXIN and not model_class._abstract and issubclass(model_class, mixin)
        )
        return PublishedModels(flagged, by_code)
