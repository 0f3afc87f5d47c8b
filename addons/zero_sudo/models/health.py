"""Settings > Technical > zero_sudo > Health: what this worker sees of the stack.

A transient record per look: opening the page (or Refresh) takes the readings
(``tools.health_probe``, bounded by its deadline) and stores the verdicts as lines, so the
form is plain Odoo (list with status badges, a Retry button per failed task) and nothing is
kept beyond the transient vacuum. Administrators only (``base.group_system``): the page shows
server addresses and other users' task errors.
"""

import logging

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..tools import health_probe
from ..tools.exceptions import ExecutorFull, TaskTargetError
from ..tools.health import PROBE_LABELS, Status, worst

_logger = logging.getLogger(__name__)

STATUSES = [
    (Status.OK.value, "OK"),
    (Status.WARNING.value, "Warning"),
    (Status.ERROR.value, "Error"),
    (Status.UNKNOWN.value, "Unknown"),
]
PROBES = [(probe.value, label) for probe, label in PROBE_LABELS.items()]
# The failed tasks the page lists, newest first: enough to see a pattern, few enough to read.
FAILED_TASKS_SHOWN = 20


class Health(models.TransientModel):
    _name = "zero_sudo.health"
    _description = "zero_sudo health"

    name = fields.Char(default="zero_sudo health", readonly=True)
    status = fields.Selection(STATUSES, readonly=True, help="The worst status of the checks below.")
    checked_at = fields.Datetime(readonly=True)
    process = fields.Char(string="Answered by", readonly=True, help="The page shows what this process sees.")
    line_ids = fields.One2many("zero_sudo.health.line", "health_id", string="Checks", readonly=True)
    failed_task_ids = fields.One2many("zero_sudo.health.failed_task", "health_id", string="Recent failed tasks", readonly=True)
    failed_task_count = fields.Integer(string="Failed tasks", readonly=True)

    @api.model
    def action_open(self):
        """The menu's server action: a fresh look, opened as a form."""
        health = self.create({})
        health._take_readings()
        return {
            "type": "ir.actions.act_window",
            "name": _("zero_sudo health"),
            "res_model": self._name,
            "res_id": health.id,
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "current",
        }

    def action_refresh(self):
        """Take the readings again in place (the form reloads the record)."""
        self._take_readings()
        return True

    def _take_readings(self):
        self.ensure_one()
        checks = health_probe.collect(self.env.cr.dbname)
        Task = self.env["zero_sudo.task"]
        failed = Task.search([("state", "=", "failed")], order="finished_at desc, id desc", limit=FAILED_TASKS_SHOWN)
        self.line_ids.unlink()
        self.failed_task_ids.unlink()
        self.write(
            {
                "status": worst(check.status for check in checks).value,
                "checked_at": fields.Datetime.now(),
                "process": health_probe.process_label(),
                "failed_task_count": Task.search_count([("state", "=", "failed")]),
                "line_ids": [
                    fields.Command.create(
                        {
                            "sequence": index,
                            "database": check.database or False,
                            "probe": check.probe.value,
                            "status": check.status.value,
                            "detail": check.detail,
                        }
                    )
                    for index, check in enumerate(checks)
                ],
                "failed_task_ids": [fields.Command.create({"task_id": task.id}) for task in failed],
            }
        )


class HealthLine(models.TransientModel):
    _name = "zero_sudo.health.line"
    _description = "zero_sudo health check"
    _order = "sequence, id"

    health_id = fields.Many2one("zero_sudo.health", required=True, ondelete="cascade")
    sequence = fields.Integer()
    database = fields.Char(help="Empty: about this process, whatever the database.")
    probe = fields.Selection(PROBES, string="Check", required=True)
    status = fields.Selection(STATUSES, required=True)
    detail = fields.Char()


class HealthFailedTask(models.TransientModel):
    _name = "zero_sudo.health.failed_task"
    _description = "zero_sudo health: a failed task"
    _order = "id"

    health_id = fields.Many2one("zero_sudo.health", required=True, ondelete="cascade")
    task_id = fields.Many2one("zero_sudo.task", required=True, ondelete="cascade")
    name = fields.Char(related="task_id.name")
    user_id = fields.Many2one(related="task_id.user_id")
    finished_at = fields.Datetime(related="task_id.finished_at")
    error = fields.Text(related="task_id.error")
    # Text, not a Many2one: the new task is committed by its own cursor, after this request's
    # snapshot, so this transaction cannot see (nor reference) it.
    retried_as = fields.Char(string="Retried as", readonly=True)

    def action_retry(self):
        """Run the failed task again through the task model's own retry (a new task, recorded
        and committed in a cursor of its own: only its ID is used here)."""
        self.ensure_one()
        try:
            new_task = self.task_id._retry()
        except ExecutorFull as exc:
            raise UserError(
                _("The executor is full; retry in %(seconds)s s. (%(reason)s)", seconds=exc.retry_after, reason=exc)
            ) from exc
        except TaskTargetError as exc:
            raise UserError(_("This task cannot be retried: %s", exc)) from exc
        self.retried_as = _("task #%s", new_task.id)
        _logger.info("health page: task %d retried as task %d by user %d", self.task_id.id, new_task.id, self.env.uid)
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "message": _("Task “%(name)s” queued again as task #%(id)s.", name=self.task_id.name, id=new_task.id),
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }
