import logging

import redis

from odoo import http
from odoo.exceptions import AccessError, MissingError
from odoo.http import request

from ..tools import coherence
from ..tools.amqp_pool import CONNECTION_ERRORS, PoolExhausted
from ..tools.exceptions import ExecutorFull, TaskTargetError
from ..tools.pools import amqp_pool, redis_client

_logger = logging.getLogger(__name__)


def busy_response(exc: ExecutorFull):
    """The answer to a request refused by the bounded executor: 503 with Retry-After."""
    return request.make_json_response(
        {"error": "busy", "message": str(exc), "retry_after": exc.retry_after},
        headers=[("Retry-After", str(exc.retry_after))],
        status=503,
    )


class ZeroSudoController(http.Controller):
    def _task(self, task_id):
        task = request.env["zero_sudo.task"].browse(task_id)
        try:
            task.check_access("read")
            task.state  # noqa: B018 (raises MissingError for a deleted task)
        except (AccessError, MissingError):
            return None
        return task

    @http.route("/zero_sudo/task/<int:task_id>", type="http", auth="user", methods=["GET"], readonly=True)
    def task_status(self, task_id):
        """A task's state (queued, running, done, failed) and error; 404 unless it is the user's."""
        task = self._task(task_id)
        if task is None:
            return request.make_json_response({"error": "not_found"}, status=404)
        return request.make_json_response(task._status())

    @http.route("/zero_sudo/task/<int:task_id>/retry", type="http", auth="user", methods=["POST"])
    def task_retry(self, task_id):
        """Run a failed task again: 202 with the new task's status URL, 409 unless it failed,
        503 with Retry-After while the executor is full (nothing is queued then).

        A state change on a cookie session: Odoo's CSRF check applies (``csrf_token`` in the
        form), so a cross-site form post is refused."""
        task = self._task(task_id)
        if task is None:
            return request.make_json_response({"error": "not_found"}, status=404)
        try:
            new_task = task._retry()
        except ExecutorFull as exc:
            return busy_response(exc)
        except TaskTargetError as exc:
            return request.make_json_response({"error": "conflict", "message": str(exc)}, status=409)
        url = "/zero_sudo/task/%d" % new_task.id
        return request.make_json_response({"id": new_task.id, "status_url": url}, headers=[("Location", url)], status=202)

    @http.route("/zero_sudo/health", type="http", auth="none", methods=["GET"], save_session=False)
    def health(self):
        """Whether this process reaches Redis and RabbitMQ through its pools (200, else 503)."""
        checks = {"redis": True, "amqp": True, "cache_coherence": coherence.is_live(request.db) if request.db else False}
        try:
            redis_client().ping()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            _logger.warning("health: Redis unreachable: %s", exc)
            checks["redis"] = False
        try:
            with amqp_pool().channel():
                pass
        except (PoolExhausted, *CONNECTION_ERRORS) as exc:
            _logger.warning("health: RabbitMQ unreachable: %s", exc)
            checks["amqp"] = False
        return request.make_json_response(checks, status=200 if checks["redis"] and checks["amqp"] else 503)
