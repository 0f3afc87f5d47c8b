import logging
from collections.abc import Mapping, Sequence
from typing import Any

from odoo import api, fields, models
from odoo.modules.registry import Registry

from ..tools.exceptions import TaskTargetError
from ..tools.offload import executor

_logger = logging.getLogger(__name__)

STATES = [("queued", "Queued"), ("running", "Running"), ("done", "Done"), ("failed", "Failed")]


def _run_task(db_name: str, task_id: int) -> None:
    """Executor thread: run one task in its own cursors and record how it went.

    The work and the ``done`` state commit together; on failure the work rolls back and the
    error is recorded in a fresh transaction, so a task never stays ``running`` because of it.
    """
    registry = Registry(db_name)
    # The bookkeeping runs as the superuser (the system's records); the work itself runs as
    # the task's user, through Task._target().
    with registry.cursor() as cr:
        task = api.Environment(cr, api.SUPERUSER_ID, {})["zero_sudo.task"].browse(task_id)
        task.write({"state": "running", "started_at": fields.Datetime.now()})
    try:
        with registry.cursor() as cr:
            task = api.Environment(cr, api.SUPERUSER_ID, {})["zero_sudo.task"].browse(task_id)
            task._target()(*(task.args or []), **(task.kwargs or {}))
            task.write({"state": "done", "finished_at": fields.Datetime.now()})
    except Exception as exc:
        _logger.exception("task %d failed", task_id)
        with registry.cursor() as cr:
            task = api.Environment(cr, api.SUPERUSER_ID, {})["zero_sudo.task"].browse(task_id)
            task.write({"state": "failed", "finished_at": fields.Datetime.now(), "error": "%s: %s" % (type(exc).__name__, exc)})


class Task(models.Model):
    """A long-running job offloaded from an HTTP request to the process's bounded executor.

    Submit with ``env["zero_sudo.task"]._submit(records, "method", args, kwargs)``: the method
    runs later, on ``records`` as the submitting user, in a cursor of its own that commits at
    the end. When running and queued tasks reach their bound, ``_submit`` raises ``ExecutorFull``
    (answer 503 with ``Retry-After``); an accepted task always ends ``done`` or ``failed``.
    """

    _name = "zero_sudo.task"
    _inherit = ["zero_sudo.change.event.mixin"]  # state changes reach the gateways as events
    _description = "Background task"
    _order = "id desc"

    name = fields.Char(required=True, readonly=True)
    state = fields.Selection(STATES, required=True, default="queued", readonly=True, index=True)
    user_id = fields.Many2one("res.users", required=True, readonly=True, ondelete="cascade", index=True)
    res_model = fields.Char(string="Model", required=True, readonly=True)
    res_ids = fields.Json(string="Record IDs", readonly=True)
    method = fields.Char(required=True, readonly=True)
    args = fields.Json(readonly=True)
    kwargs = fields.Json(readonly=True)
    context = fields.Json(readonly=True)
    error = fields.Text(readonly=True)
    started_at = fields.Datetime(readonly=True)
    finished_at = fields.Datetime(readonly=True)

    def _target(self):
        """The bound method this task runs, on its records, as its user, in its context."""
        self.ensure_one()
        if self.res_model not in self.env:
            raise TaskTargetError("no model %r" % self.res_model)
        env = self.env(user=self.user_id.id, context=self.context or {}, su=False)
        records = env[self.res_model].browse(self.res_ids or [])
        function = getattr(type(records), self.method, None)
        if self.method.startswith("__") or not callable(function):
            raise TaskTargetError("%s has no method %r" % (self.res_model, self.method))
        return getattr(records, self.method)

    @api.model
    def _submit(
        self,
        records: models.BaseModel,
        method: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> "Task":
        """Queue ``records.method(*args, **kwargs)``; args and kwargs must be JSON values.

        The task reads committed data only: commit what it needs before submitting. Private
        (server-side API) on purpose: an RPC-reachable submit would run arbitrary methods.
        """
        values = {
            "name": name or "%s.%s" % (records._name, method),
            "user_id": records.env.uid,
            "res_model": records._name,
            "res_ids": records.ids,
            "method": method,
            "args": list(args),
            "kwargs": dict(kwargs or {}),
            "context": {key: value for key, value in records.env.context.items() if key in ("lang", "tz", "allowed_company_ids")},
        }
        return self._enqueue(values)

    @api.model
    def _enqueue(self, values: dict) -> "Task":
        slot = executor.get().reserve()
        try:
            with Registry(self.env.cr.dbname).cursor() as cr:
                tasks = api.Environment(cr, self.env.uid, {})["zero_sudo.task"]
                task = tasks.sudo().create(values)  # bookkeeping is the system's; the work runs as user_id
                task._target()  # refuse an unknown model or method now, not in the background
                task_id = task.id
        except BaseException:
            slot.release()
            raise
        slot.submit(_run_task, self.env.cr.dbname, task_id)
        return self.browse(task_id)

    def _retry(self) -> "Task":
        """Run a failed task again, as a new task (the failed one stays as the record of it)."""
        self.ensure_one()
        if self.state != "failed":
            raise TaskTargetError("only a failed task can be retried")
        copied = ("name", "res_model", "res_ids", "method", "args", "kwargs", "context")
        return self._enqueue({"user_id": self.user_id.id, **{name: self[name] for name in copied}})

    def _status(self) -> dict:
        """What the status endpoint answers."""
        self.ensure_one()
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "error": self.error or None,
            "created_at": fields.Datetime.to_string(self.create_date),
            "started_at": fields.Datetime.to_string(self.started_at) if self.started_at else None,
            "finished_at": fields.Datetime.to_string(self.finished_at) if self.finished_at else None,
        }
