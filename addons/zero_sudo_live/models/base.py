"""Change events of the models an admin publishes: every create, write (recomputed stored
fields included) and unlink the ORM performs, as ID-only NOTIFYs at commit.

Hooked at the ORM's lowest level that every path goes through: ``_create`` (the INSERT),
``_write_multi`` (every UPDATE: ``write()``'s flush and the recomputation of stored computed
fields alike) and ``unlink``. An unpublished model pays one cached set lookup per call.
Deletions PostgreSQL cascades by itself (``ondelete="cascade"`` foreign keys) are not the
ORM's and are not published.
"""

import functools
import logging

from zero_sudo_bus.protocol import PG_CHANNEL, Op, encode_notify_payloads

from odoo import api, models

from ..tools.changes import net_changes
from .ir_model import IrModel, PublishedModels

_logger = logging.getLogger(__name__)

# Key of the cursor's precommit data: {(model name, op): {id: None}} for the transaction.
PENDING = "zero_sudo_live.changes"


def _send(cr) -> None:
    """Precommit hook: the transaction's IDs, one set of payloads per model and operation.

    NOTIFY is delivered at COMMIT, so a transaction that rolls back sends nothing. Writes to
    records the transaction created or deleted are not announced (``net_changes``).
    """
    pending = net_changes(cr.precommit.data.pop(PENDING, {}))
    for (model, op), ids in pending.items():
        payloads = list(encode_notify_payloads(model, op, ids))
        cr.execute(
            "SELECT pg_notify(%s, payload) FROM unnest(%s::text[]) WITH ORDINALITY AS p(payload, n) ORDER BY n",
            [PG_CHANNEL, payloads],
        )
        _logger.debug("live changes: %s op=%s ids=%d payloads=%d", model, op.name, len(ids), len(payloads))


# The ormcache entry of ir.model._zero_sudo_live_published: ("ir.model", the cached function).
_PUBLISHED_KEY = ("ir.model", IrModel._zero_sudo_live_published.__cache__.method)


def _published(records: models.BaseModel) -> PublishedModels:
    """The published models, as ``ir.model._zero_sudo_live_published()`` caches them.

    Called on every ORM write of every model, so the cached value is peeked at in the
    registry's LRU without its lock and bookkeeping (about 0.2 µs where an ormcache call
    costs 5 to 20: the LRU's locked access dominates), and the ormcache is called only when
    the entry is missing: the same value, cleared at the same moments (an admin's change
    here, Odoo's signaling in the other processes).
    """
    value = records.pool._Registry__caches["default"].d.get(_PUBLISHED_KEY)
    if value is None:
        value = records.env["ir.model"]._zero_sudo_live_published()
    return value


def _collect(records: models.BaseModel, op: Op) -> None:
    """Remember ``records`` as changed by ``op`` if their model publishes."""
    if not records._ids or not records.pool.ready:
        return  # nothing to say, or the registry is being loaded (install, upgrade)
    published = _published(records)
    name = records._name
    if name in published.by_code:
        # The mixin publishes create(), write() and unlink() itself; recomputed stored fields
        # reach the database through _write_multi only, so they are added to its own set.
        if op is Op.WRITE:
            records._zero_sudo_collect(op)
        return
    if name not in published.flagged:
        return
    cr = records.env.cr
    pending = cr.precommit.data.get(PENDING)
    if pending is None:
        pending = cr.precommit.data[PENDING] = {}
        cr.precommit.add(functools.partial(_send, cr))
    pending.setdefault((name, op), {}).update(dict.fromkeys(records._ids))


class Base(models.AbstractModel):
    _inherit = "base"

    @api.model
    def _create(self, data_list):
        records = super()._create(data_list)
        _collect(records, Op.CREATE)
        return records

    def _write_multi(self, vals_list):
        result = super()._write_multi(vals_list)
        _collect(self, Op.WRITE)
        return result

    def unlink(self):
        records = self.browse(self._ids)  # the IDs, kept for after the DELETE
        result = super().unlink()
        _collect(records, Op.UNLINK)
        return result
