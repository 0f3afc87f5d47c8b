import logging
from collections.abc import Mapping, Sequence
from contextlib import closing
from datetime import timedelta
from functools import partial
from typing import Any

import psycopg2
import psycopg2.extensions
from zero_sudo_bus.lockhash import deterministic_hash

from odoo import api, fields, models
from odoo.modules.registry import Registry
from odoo.sql_db import connection_info_for

from ..tools.exceptions import ExecutorFull, TaskLeaseError, TaskTargetError
from ..tools.offload import executor
from ..tools.settings import settings_from_odoo_conf

_logger = logging.getLogger(__name__)

STATES = [("queued", "Queued"), ("running", "Running"), ("done", "Done"), ("failed", "Failed")]
# Lock namespace of a running task's lease: deterministic_hash(LEASE_NAMESPACE, task_id).
LEASE_NAMESPACE = "zero_sudo.task.lease"
PROCESS_DIED = "the process running this task ended (killed or restarted) before it finished"
# A task still queued after this long was queued in a process that died (its queue died with
# it), or waits behind a long queue: the reaper (every 5 minutes) hands it to its own
# process's executor too, and whichever executor claims it first runs it, once.
ADOPT_QUEUED_AFTER = timedelta(minutes=5)


def _run_task(db_name: str, task_id: int) -> None:
    """Executor thread: run one task in its own cursors and record how it went.

    The work and the ``done`` state commit together (in the cursor opened here); on failure
    the work rolls back and the error is recorded in a fresh transaction, so a task never stays
    ``running`` because of it. See ``Task`` for what a method that commits as it goes may do.
    Throughout, a connection of its own holds the task's lease (a session advisory lock, see
    ``Task._cron_reap`` and :func:`_lease_connection`): if this process dies, PostgreSQL
    frees the lease and the task is marked failed instead of staying ``running`` for ever.

    A task may be handed to more than one executor (the reaper adopts tasks queued too long):
    the one that takes the lease of a task still ``queued`` claims it; any other finds the
    lease taken or the task claimed, and leaves it. A task runs once.
    """
    registry = Registry(db_name)
    lease_key = deterministic_hash(LEASE_NAMESPACE, task_id)
    try:
        lease = _lease_connection(db_name)
    except TaskLeaseError as exc:
        _logger.error("task %d not run: %s", task_id, exc)
        _record_failure(registry, task_id, exc, only_if_queued=True)
        return
    with closing(lease):
        with lease.cursor() as cr:
            cr.execute("SELECT pg_try_advisory_lock(%s)", [lease_key])
            if not cr.fetchone()[0]:
                _logger.info("task %d is being run by another executor: left to it", task_id)
                return
        _run_leased_task(registry, task_id)
        # Closing the connection frees the lease, whatever happened.


def _lease_connection(db_name: str) -> psycopg2.extensions.connection:
    """A connection of the task's own to ``db_name``, in autocommit: the lease outlives
    transactions, and the connection never sits in one.

    Odoo's own connection parameters, but for ``task_lease_db_host``/``task_lease_db_port``:
    a session lock taken through a transaction-mode pooler would stay on a server connection
    that the pooler then hands to other clients (the lease held by nobody, or by whoever
    gets that connection), so behind one the lease goes to PostgreSQL itself.

    Raises :class:`TaskLeaseError` when the lease cannot be had (no connection, a pooler): the
    task is then failed with that line, while Odoo's own connections still work to say so.
    """
    _name, params = connection_info_for(db_name)
    conf = settings_from_odoo_conf()
    if conf.task_lease_db_host:
        params["host"] = conf.task_lease_db_host
    if conf.task_lease_db_port:
        params["port"] = conf.task_lease_db_port
    where = "host %s, port %s" % (params.get("host", "local socket"), params.get("port", 5432))
    try:
        connection = psycopg2.connect(**params)
    except psycopg2.OperationalError as exc:
        raise TaskLeaseError(
            "cannot connect for the task's lease (%s; odoo.conf's [zero_sudo] "
            "task_lease_db_host/task_lease_db_port, or Odoo's db_host/db_port): %s" % (where, str(exc).strip())
        ) from None
    connection.autocommit = True
    # A pooler answers the start-up with a backend key of its own, not the server process's.
    with connection.cursor() as cr:
        cr.execute("SELECT pg_backend_pid()")
        pooled = cr.fetchone()[0] != connection.get_backend_pid()
    if pooled:
        connection.close()
        raise TaskLeaseError(
            "the lease connection (%s) goes through a connection pooler, which would give the "
            "task's lease to other clients: set task_lease_db_host and task_lease_db_port in odoo.conf's "
            "[zero_sudo] section to PostgreSQL itself" % where
        )
    return connection


def _run_leased_task(registry: Registry, task_id: int) -> None:
    # The bookkeeping runs as the superuser (the system's records); the work itself runs as
    # the task's user, through Task._target().
    with registry.cursor() as cr:
        task = api.Environment(cr, api.SUPERUSER_ID, {})["zero_sudo.task"].browse(task_id).exists()
        if task.state != "queued":
            _logger.info("task %d was already run by another executor (or deleted): skipped", task_id)
            return
        task.write({"state": "running", "started_at": fields.Datetime.now()})
    try:
        with registry.cursor() as cr:
            task = api.Environment(cr, api.SUPERUSER_ID, {})["zero_sudo.task"].browse(task_id)
            task._target()(*(task.args or []), **(task.kwargs or {}))
            task.write({"state": "done", "finished_at": fields.Datetime.now()})
    except Exception as exc:
        _logger.exception("task %d failed", task_id)
        _record_failure(registry, task_id, exc)


def _record_failure(registry: Registry, task_id: int, exc: Exception, only_if_queued: bool = False) -> None:
    """Mark the task failed with ``exc``, in a transaction of its own."""
    with registry.cursor() as cr:
        task = api.Environment(cr, api.SUPERUSER_ID, {})["zero_sudo.task"].browse(task_id).exists()
        if task and not (only_if_queued and task.state != "queued"):
            task.write({"state": "failed", "finished_at": fields.Datetime.now(), "error": "%s: %s" % (type(exc).__name__, exc)})


def _start_queued(db_name: str, task_ids: list[int]) -> None:
    """Postcommit: hand committed queued tasks to this process's executor while it has room.

    The rest stay queued and the reaper adopts them later (``ADOPT_QUEUED_AFTER``): a task
    that found no room is delayed, never lost.
    """
    pool = executor.get()
    for index, task_id in enumerate(task_ids):
        try:
            slot = pool.reserve()
        except ExecutorFull:
            _logger.warning("executor full at commit: tasks %s stay queued until the reaper adopts them", task_ids[index:])
            return
        slot.submit(_run_task, db_name, task_id)


class Task(models.Model):
    """A long-running job offloaded from an HTTP request to the process's bounded executor.

    Submit with ``env["zero_sudo.task"]._submit(records, "method", args, kwargs)``: the method
    runs later, on ``records`` as the submitting user. When running and queued tasks reach
    their bound, ``_submit`` raises ``ExecutorFull`` (answer 503 with ``Retry-After``); an
    accepted task ends ``done`` or ``failed``.

    Commit contract: the method runs in the task's cursor, which the executor opened and
    commits once, together with the ``done`` state (a failure rolls it back): the work of a
    task is all or nothing. Nobody else commits that cursor: a method that must commit as it
    goes (chunk by chunk) opens a cursor of its own per transaction (``Registry(db).cursor()``)
    and commits that one. The task's cursor took its snapshot before those commits, so such a
    method leaves it alone: it writes nothing there that its own cursors wrote.

    Death of a process: while a task runs, its executor holds the task's lease (see
    ``_cron_reap``); when the process dies, the reaper marks the task failed and calls
    ``_zero_sudo_task_died(task)`` on the task's records if their model defines it (to resume,
    say). That is the one way a dead worker is detected: no model times its own work. A task
    still queued after ``ADOPT_QUEUED_AFTER`` (its process may have died with its queue) is
    handed by the reaper to another executor; the first to claim it runs it (``_run_task``).
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

    def _records(self) -> models.BaseModel:
        """The task's records, as its user (without superuser mode), in its context."""
        self.ensure_one()
        if self.res_model not in self.env:
            raise TaskTargetError("no model %r" % self.res_model)
        env = self.env(user=self.user_id.id, context=self.context or {}, su=False)
        return env[self.res_model].browse(self.res_ids or [])

    def _target(self):
        """The bound method this task runs, on its records, as its user, in its context."""
        records = self._records()
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
        *,
        at_commit: bool = False,
    ) -> "Task":
        """Queue ``records.method(*args, **kwargs)``; args and kwargs must be JSON values.

        The task runs in cursors of its own, so it sees committed data only. By default it is
        recorded in a transaction of its own, committed at once, and may start before the
        caller's transaction ends: it must need nothing the caller has not committed. With
        ``at_commit=True`` it is recorded in the caller's transaction and starts once that
        commits (never, if it rolls back): the way to run work on what the caller just wrote,
        without committing a cursor the caller did not open. Either way the executor's room is
        checked now: ``ExecutorFull`` reaches the caller, not the background. A task submitted
        at commit takes its slot when the commit happens: the caller's transaction, however
        long, holds none, and a commit that runs no hooks (Odoo's test cursor) leaks none.
        Should the executor have filled up meanwhile, the task stays queued until the reaper
        adopts it: delayed, never lost.

        Private (server-side API) on purpose: an RPC-reachable submit would run arbitrary methods.
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
        return self._enqueue(values, at_commit=at_commit)

    @api.model
    def _enqueue(self, values: dict, at_commit: bool = False) -> "Task":
        if at_commit:
            executor.get().check_room()
            task_id = self._create_checked(self.env, values)
            self._start_at_commit([task_id])
            return self.browse(task_id)
        dbname = self.env.cr.dbname
        slot = executor.get().reserve()
        try:
            with Registry(dbname).cursor() as cr:
                task_id = self._create_checked(api.Environment(cr, self.env.uid, {}), values)
        except BaseException:
            slot.release()
            raise
        slot.submit(_run_task, dbname, task_id)
        return self.browse(task_id)

    @api.model
    def _start_at_commit(self, task_ids: list[int]) -> None:
        """Start ``task_ids`` once this transaction commits (see :func:`_start_queued`)."""
        self.env.cr.postcommit.add(partial(_start_queued, self.env.cr.dbname, task_ids))

    @api.model
    def _create_checked(self, env: api.Environment, values: dict) -> int:
        # Bookkeeping is the system's (the work runs as user_id); no context, so that the
        # caller's defaults (default_state from a form, say) do not leak into the task.
        task = env(context={}, su=True)["zero_sudo.task"].create(values)
        task._target()  # refuse an unknown model or method now, not in the background
        return task.id

    @api.model
    def _cron_reap(self) -> "Task":
        """Mark failed the tasks whose process died while running them; returns them.

        A running task's executor holds its lease, a session advisory lock that PostgreSQL
        frees when that connection ends, on any server. A ``running`` task whose lease can be
        taken has no process left: taking it (until this transaction ends) also keeps a late
        writer of the same task out while it is marked. Then each dead task's records hear of
        it (``_died``), in this transaction: what they queue starts once it commits.
        """
        utils = self.env["zero_sudo.security.utils"]
        dead = self.search([("state", "=", "running")]).filtered(
            lambda task: utils._try_advisory_xact_lock(LEASE_NAMESPACE, task.id)
        )
        for task in dead:
            _logger.warning("task %d (%s) lost its process while running: marked failed", task.id, task.name)
        dead.write({"state": "failed", "finished_at": fields.Datetime.now(), "error": PROCESS_DIED})
        for task in dead:
            task._died()
        self._adopt_queued()
        return dead

    @api.model
    def _adopt_queued(self) -> "Task":
        """Hand the tasks queued longer than ``ADOPT_QUEUED_AFTER`` to this process's executor,
        once this transaction commits, as far as it has room (:func:`_start_queued`); returns them.

        A process that dies loses its executor's queue: without this, what it had queued would
        stay ``queued`` for ever. A task whose own process is alive but busy may be adopted
        too: harmless, since only one executor claims it (``_run_task``).
        """
        stale = self.search(
            [("state", "=", "queued"), ("create_date", "<", fields.Datetime.now() - ADOPT_QUEUED_AFTER)], order="id"
        )
        if stale:
            _logger.warning("%d tasks queued for over %s adopted by this process: %s", len(stale), ADOPT_QUEUED_AFTER, stale.ids)
            self._start_at_commit(stale.ids)
        return stale

    def _died(self) -> None:
        """Call ``_zero_sudo_task_died(task)`` on the dead task's records, if their model has it.

        The hook runs as the task's user, in a savepoint: a failing hook is logged and undone,
        and neither stops the reaping of the other tasks nor un-fails this one.
        """
        self.ensure_one()
        try:
            records = self._records()
        except TaskTargetError:
            return  # the model is gone (module uninstalled): nobody to tell
        hook = getattr(records, "_zero_sudo_task_died", None)
        if not callable(hook):
            return
        try:
            with self.env.cr.savepoint():
                hook(self)
        except Exception:
            _logger.exception("task %d (%s): %s._zero_sudo_task_died failed", self.id, self.name, self.res_model)

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
