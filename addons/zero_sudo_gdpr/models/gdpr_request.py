import logging
import time
from functools import partial

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.service.model import retrying

_logger = logging.getLogger(__name__)

# Records per transaction: small enough that a chunk's locks last well under a second on a
# loaded server (a concurrent writer waits at most that long), large enough that the fixed
# per-chunk queries stay a small part of the work.
CHUNK_SIZE = 500
# An erasure whose lines have not moved for this long is taken for dead (its process
# crashed or restarted): chunks take well under a second, so ten minutes is no false alarm.
STALLED_MINUTES = 10


class GdprRequest(models.Model):
    """The erasure of one person's data, rule by rule, chunk by chunk, committed per chunk.

    Progress is kept per rule (records done, the last ID reached), so a crash or a restart
    resumes where it stopped and a run repeated is harmless. Two erasures of one person take
    turns chunk by chunk, under a zero_sudo advisory lock on the person. The audit trail says
    what was erased (models, actions, counts), never the erased data.
    """

    _name = "zero_sudo.gdpr.request"
    _inherit = ["zero_sudo.change.event.mixin"]
    _description = "GDPR erasure request"
    _order = "id desc"

    partner_id = fields.Many2one("res.partner", string="Person", required=True, ondelete="restrict")
    company_id = fields.Many2one("res.company", required=True, default=lambda self: self.env.company)
    state = fields.Selection(
        [("draft", "Draft"), ("queued", "Queued"), ("running", "Running"), ("done", "Done"), ("failed", "Failed")],
        default="draft", required=True, readonly=True,
    )
    line_ids = fields.One2many("zero_sudo.gdpr.request.line", "request_id", readonly=True)
    progress = fields.Float(compute="_compute_progress", help="Records done, out of those found when the run started.")
    audit = fields.Text(readonly=True)
    error = fields.Text(readonly=True)

    @api.depends("line_ids.done", "line_ids.total")
    def _compute_progress(self):
        for request in self:
            total = sum(request.line_ids.mapped("total"))
            request.progress = 100.0 * sum(request.line_ids.mapped("done")) / total if total else (100.0 if request.state == "done" else 0.0)

    def action_run(self):
        """Queue the erasure in zero_sudo's bounded executor (503-style refusal when full)."""
        for request in self:
            if request.state not in ("draft", "failed"):
                raise UserError(_("Erasure %s is already %s.", request.display_name, request.state))
            request._plan()
            request.state = "queued"
        self.env.cr.commit()  # the background task reads committed data only
        for request in self:
            self.env["zero_sudo.task"]._submit(request, "_run_erasure", name=_("Erase %s", request.partner_id.display_name))

    def _plan(self):
        """One line per active rule, counting what there is to do (kept across restarts)."""
        self.ensure_one()
        planned = self.line_ids.rule_id
        for rule in self.env["zero_sudo.gdpr.rule"].search([]):
            if rule not in planned:
                total = self.env[rule.model].search_count(rule._domain(self.partner_id.id))
                self.env["zero_sudo.gdpr.request.line"].create({"request_id": self.id, "rule_id": rule.id, "total": total})

    def _run_erasure(self, chunk_size=CHUNK_SIZE):
        """Every rule's chunks, each in its own transaction; resumable, idempotent."""
        self.ensure_one()
        lines = self.line_ids.filtered(lambda line: not line.finished).sorted(lambda line: (line.rule_id.sequence, line.id))
        self.write({"state": "running", "error": False})
        self.env.cr.commit()  # from here on, each chunk's transaction starts with its first query
        try:
            for line in lines:
                while not self._chunk_transaction(partial(line._erase_chunk, chunk_size)):
                    self.env.invalidate_all()  # flat memory: nothing of the chunk stays cached
        except Exception as exc:
            self.env.cr.rollback()
            self.write({"state": "failed", "error": "%s: %s" % (type(exc).__name__, exc)})
            self.env.cr.commit()
            raise
        self.state = "done"
        self.env.cr.commit()

    def _chunk_transaction(self, erase_chunk):
        """Run one chunk as a transaction of its own and commit it: its locks end there, and a
        crash loses at most this chunk.

        The chunk reads and writes at READ COMMITTED, not Odoo's REPEATABLE READ: a user
        writing to one of the person's records meanwhile only makes the chunk wait for that
        row (erasing what is there now is the point), instead of failing it with a
        serialization error. Deadlocks and the like are retried as Odoo retries a request.
        """
        started = time.monotonic()

        def attempt():
            self.env.cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            return erase_chunk()

        finished = retrying(attempt, self.env)
        _logger.debug("erasure %d: chunk committed in %.1f ms", self.id, (time.monotonic() - started) * 1000)
        return finished

    @api.model
    def _cron_resume(self, stalled_minutes=STALLED_MINUTES):
        """Requeue erasures a crash or a restart left behind: they resume at their last chunk."""
        threshold = fields.Datetime.subtract(fields.Datetime.now(), minutes=stalled_minutes)
        stalled = self.search([("state", "in", ("queued", "running")), ("write_date", "<", threshold)]).filtered(
            lambda request: max(request.line_ids.mapped("write_date") or [request.write_date]) < threshold
        )
        for request in stalled:
            _logger.warning("GDPR erasure %d stalled since %s: resuming", request.id, request.write_date)
            self.env["zero_sudo.task"]._submit(request, "_run_erasure", name=_("Resume erasure of %s", request.partner_id.display_name))

    def _append_audit(self, entry):
        self.audit = "%s%s\n" % (self.audit or "", entry)


class GdprRequestLine(models.Model):
    _name = "zero_sudo.gdpr.request.line"
    _description = "GDPR erasure progress of one rule"
    _order = "id"

    request_id = fields.Many2one("zero_sudo.gdpr.request", required=True, ondelete="cascade", index=True)
    rule_id = fields.Many2one("zero_sudo.gdpr.rule", required=True, ondelete="restrict")
    total = fields.Integer(readonly=True)
    done = fields.Integer(readonly=True)
    last_id = fields.Integer(readonly=True, help="Records up to this ID are handled: where a resumed run starts.")
    finished = fields.Boolean(readonly=True)
    progress = fields.Float(compute="_compute_progress", help="Records done, out of those this rule found when planned.")

    @api.depends("done", "total", "finished")
    def _compute_progress(self):
        for line in self:
            line.progress = 100.0 * min(line.done, line.total) / line.total if line.total else (100.0 if line.finished else 0.0)

    def _erase_chunk(self, chunk_size):
        """Handle the next chunk; True when the rule has nothing left."""
        self.ensure_one()
        rule, request = self.rule_id, self.request_id
        # Two erasures of the same person take turns, chunk by chunk.
        self.env["zero_sudo.security.utils"]._advisory_xact_lock("zero_sudo.gdpr", request.partner_id.id)
        model = self.env[rule.model]
        records = model.search([*rule._domain(request.partner_id.id), ("id", ">", self.last_id)], order="id", limit=chunk_size)
        if not records:
            self.finished = True
            request._append_audit("%s: %s %s: %d records" % (fields.Datetime.now(), rule.action, rule.model, self.done))
            return True
        last_id = records.ids[-1]
        if rule.action == "delete":
            records.unlink()
        else:
            records.write(rule._anonymized_values())
        self.write({"done": self.done + len(records), "last_id": last_id})
        return False
