import logging
from collections.abc import Mapping, Sequence
from typing import Any

from odoo import api, fields, models
from odoo.modules.registry import Registry

from ..tools.exceptions import TaskTargetError
from ..tools.offload import executor

_logger = logging.getLogger(__name__)

STATES = [("queued", "Queued"), ("running", "Running"), ("done", "Done"), ("failed", "Failed")]
# Lock namespace of a running task's lease: deterministic_hash(LEASE_NAMESPACE, task_id).
LEASE_NAMESPACE = "zero_sudo.task.lease"
PROCESS_DIED = "the process running this task ended (killed or restarted) before it finished"


def _run_task(db_name: str, task_id: int) -> None:
    """Executor thread: run one task in its own cursors and record how it went.

    The work and the ``done`` state commit together; on failure the work rolls back and the
    error is recorded in a fresh transaction, so a task never stays ``running`` because of it.
    Throughout, a connection of its own holds the task's lease (a session advisory lock, see
    ``Task._cron_reap``): if this process dies, PostgreSQL frees the lease and the task is
    marked failed instead of staying ``running`` for ever.
    """
    registry = Registry(db_name)
    with registry.cursor() as lease:
        lease_key = api.Environment(lease, api.SUPERUSER_ID, {})["zero_sudo.security.utils"]._get_deterministic_hash(LEASE_NAMESPACE, task_id)
        lease.execute("SELECT pg_advisory_lock(%s)", [lease_key])
        lease.commit()  # the lease outlives transactions; the connection must not sit in one
        try:
            _run_leased_task(registry, task_id)
        finally:
            lease.execute("SELECT pg_advisory_unlock(%s)", [lease_key])
            lease.commit()


def _run_leased_task(registry: Registry, task_id: int) -> None:
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

    @api.model
    def _cron_reap(self) -> "Task":
        """Mark failed the tasks whose process died while running them; returns them.

        A running task's executor holds its lease, a session advisory lock that PostgreSQL
        frees when that connection ends, on any server. A ``running`` task whose lease can be
        taken has no process left: taking it (until this transaction ends) also keeps a late
        writer of the same task out while it is marked.
        """
        utils = self.env["zero_sudo.security.utils"]
        dead = self.search([("state", "=", "running")]).filtered(lambda task: utils._try_advisory_xact_lock(LEASE_NAMESPACE, task.id))
        for task in dead:
            _logger.warning("task %d (%s) lost its process while running: marked failed", task.id, task.name)
        dead.write({"state": "failed", "finished_at": fields.Datetime.now(), "error": PROCESS_DIED})
        return dead

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
