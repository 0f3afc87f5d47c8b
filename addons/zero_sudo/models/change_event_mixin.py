import logging

from zero_sudo_bus.protocol import PG_CHANNEL, Op, encode_notify_payloads

from odoo import api, models

from ..tools import coherence

_logger = logging.getLogger(__name__)

# Key of the cursor's precommit data holding {(model name, op): {id: None}} for the transaction.
PENDING = "zero_sudo.change_events"


def _send_change_events(env: api.Environment) -> None:
    """Precommit hook: one set of NOTIFYs per model and operation, integer IDs only.

    PostgreSQL delivers NOTIFY at commit, so a transaction that rolls back sends nothing; the
    payloads come from the shared encoder, each below PostgreSQL's 8000-byte limit.
    """
    cr = env.cr
    pending = cr.precommit.data.pop(PENDING, {})
    for (model, op), ids in pending.items():
        payloads = list(encode_notify_payloads(model, op, ids))
        cr.execute(
            "SELECT pg_notify(%s, payload) FROM unnest(%s::text[]) WITH ORDINALITY AS p(payload, n) ORDER BY n",
            [PG_CHANNEL, payloads],
        )
        _logger.debug("change events: %s op=%s ids=%d payloads=%d", model, op.name, len(ids), len(payloads))
    models_changed = {model for model, _op in pending}
    if not coherence.is_live(cr.dbname):
        # No relay channel in this process: Odoo's own database signaling tells the others.
        env.registry.clear_cache()
    cr.postcommit.add(lambda: coherence.invalidate_models(env.registry, models_changed))


class ChangeEventMixin(models.AbstractModel):
    """Inherit to publish this model's changes: created, written and unlinked record IDs go out
    as PostgreSQL NOTIFYs on ``zero_sudo_events`` when the transaction commits, and the relay
    turns them into cache invalidations on every worker.

    Contract for ``ormcache`` methods of such a model: a cached value may depend on this model's
    records only (invalidation is targeted by model).
    """

    _name = "zero_sudo.change.event.mixin"
    _description = "zero_sudo change events"

    def _zero_sudo_collect(self, op: Op) -> None:
        if not self.ids:
            return
        cr = self.env.cr
        if PENDING not in cr.precommit.data:
            cr.precommit.data[PENDING] = {}
            env = self.env
            cr.precommit.add(lambda: _send_change_events(env))
        cr.precommit.data[PENDING].setdefault((self._name, op), {}).update(dict.fromkeys(self._ids))

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        records._zero_sudo_collect(Op.CREATE)
        return records

    def write(self, vals):
        result = super().write(vals)
        self._zero_sudo_collect(Op.WRITE)
        return result

    def unlink(self):
        self._zero_sudo_collect(Op.UNLINK)
        return super().unlink()
