import logging
import time

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.service.model import retrying

from odoo.addons.zero_sudo.tools.exceptions import ExecutorFull

_logger = logging.getLogger(__name__)

# Records per transaction: small enough that a chunk's locks last well under a second on a
# loaded server (a concurrent writer waits at most that long), large enough that the fixed
# per-chunk queries stay a small part of the work.
CHUNK_SIZE = 500


class GdprRequest(models.Model):
    """The erasure of one person's data, rule by rule, chunk by chunk, committed per chunk.

    Progress is kept per rule (records done, the last ID reached), so a crash or a restart
    resumes where it stopped and a run repeated is harmless. The erasure runs as a zero_sudo
    task; when that task's process dies (the task's lease reaper says so), the request is
    queued again and resumes at its last committed chunk. Two erasures of one person take
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
        default="draft",
        required=True,
        readonly=True,
    )
    line_ids = fields.One2many("zero_sudo.gdpr.request.line", "request_id", readonly=True)
    progress = fields.Float(compute="_compute_progress", help="Records done, out of those found when the run started.")
    audit = fields.Text(readonly=True)
    error = fields.Text(readonly=True)

    @api.depends("line_ids.done", "line_ids.total")
    def _compute_progress(self):
        for request in self:
            total = sum(request.line_ids.mapped("total"))
            request.progress = (
                100.0 * sum(request.line_ids.mapped("done")) / total if total else (100.0 if request.state == "done" else 0.0)
            )

    def action_run(self):
        """Plan the erasure and queue it in zero_sudo's bounded executor (refused with
        ``ExecutorFull`` when it is full).

        The task starts once this transaction commits, so it sees the plan; nothing here
        commits the caller's cursor (the request's, which is not ours to commit).
        """
        for request in self:
            if request.state not in ("draft", "failed"):
                raise UserError(_("Erasure %s is already %s.", request.display_name, request.state))
            request._plan()
            request.state = "queued"
            request._erasure_planned()
            request._queue_erasure(_("Erase %s", request.partner_id.display_name))

    def _queue_erasure(self, name):
        self.ensure_one()
        return self.env["zero_sudo.task"]._submit(self, "_run_erasure", name=name, at_commit=True)

    def _zero_sudo_task_died(self, task):
        """The process running this erasure died (zero_sudo.task's reaper found its lease free):
        queue it again, to resume at its last committed chunk once the reaper commits.

        When the executor is full, the request is marked failed with the reason: it can be run
        again from its form (it resumes all the same).
        """
        if task.method != "_run_erasure":
            return
        for request in self.filtered(lambda request: request.state in ("queued", "running")):
            _logger.warning("GDPR erasure %d: its task %d lost its process, resuming", request.id, task.id)
            try:
                request._queue_erasure(_("Resume erasure of %s", request.partner_id.display_name))
            except ExecutorFull as exc:
                request.write({"state": "failed", "error": _("Its process died and it could not be resumed: %s", exc)})

    def _plan(self):
        """One line per active rule, counting what there is to do (kept across restarts)."""
        self.ensure_one()
        planned = self.line_ids.rule_id
        for rule in self.env["zero_sudo.gdpr.rule"].search([]):
            if rule not in planned:
                total = self.env[rule.model].with_context(active_test=False).search_count(rule._domain(self.partner_id.id))
                self.env["zero_sudo.gdpr.request.line"].create({"request_id": self.id, "rule_id": rule.id, "total": total})

    def _run_erasure(self, chunk_size=CHUNK_SIZE):
        """Every rule's chunks, each in its own transaction; resumable, idempotent.

        It runs as a zero_sudo task, whose cursor commits only with the task's ``done``: every
        transaction here is in a cursor opened here (``_in_own_cursor``), committed when it
        closes. The caller's cursor is not used (the caller must have committed the request):
        it reads what they committed afterwards; its cache, stale by then, is invalidated.
        """
        self.ensure_one()
        try:
            line_ids = self._in_own_cursor(lambda request: request._start_running())
            for line_id in line_ids:
                while not self._chunk_transaction(line_id, chunk_size):
                    pass
            self._in_own_cursor(lambda request: request._finish())
        except Exception as exc:
            error = "%s: %s" % (type(exc).__name__, exc)
            self._in_own_cursor(lambda request: request.write({"state": "failed", "error": error}))
            raise
        finally:
            self.env.invalidate_all()

    def _erasure_planned(self):
        """Hook: the erasure is planned and will run once the caller commits (the
        privacy_lookup bridge opens its privacy log entry here, while the person's name and
        email are still there to be masked)."""

    def _finish(self):
        """The last transaction of an erasure: the request is done."""
        self.write({"state": "done"})

    def _start_running(self):
        """Mark the request running; the IDs of the lines left to do, in their rules' order."""
        self.write({"state": "running", "error": False})
        lines = self.line_ids.filtered(lambda line: not line.finished).sorted(lambda line: (line.rule_id.sequence, line.id))
        return lines.ids

    def _in_own_cursor(self, function):
        """``function(self)`` on a new cursor of this database, committed when it returns."""
        with self.env.registry.cursor() as cr:
            return function(self.with_env(self.env(cr=cr)))

    def _chunk_transaction(self, line_id, chunk_size):
        """Run one chunk as a transaction of its own (a cursor opened for it, dropped after:
        flat memory, nothing of the chunk stays cached) and commit it: its locks end there,
        and a crash loses at most this chunk.

        The chunk reads and writes at READ COMMITTED, not Odoo's REPEATABLE READ: a user
        writing to one of the person's records meanwhile only makes the chunk wait for that
        row (erasing what is there now is the point), instead of failing it with a
        serialization error. Deadlocks and the like are retried as Odoo retries a request.
        """
        started = time.monotonic()
        with self.env.registry.cursor() as cr:
            line = self.env(cr=cr)["zero_sudo.gdpr.request.line"].browse(line_id)

            def attempt():
                cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                return line._erase_chunk(chunk_size)

            finished = retrying(attempt, line.env)  # commits cr
        _logger.debug("erasure %d: chunk committed in %.1f ms", self.id, (time.monotonic() - started) * 1000)
        return finished

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
        # Archived records are the person's data all the same; the erasure leaves no chatter
        # trace of the values it overwrites (mail would track the old name and email).
        model = self.env[rule.model].with_context(active_test=False, tracking_disable=True, mail_notrack=True)
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
