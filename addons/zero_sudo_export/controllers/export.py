import json
import logging

from odoo import api, http
from odoo.exceptions import AccessError
from odoo.http import request
from odoo.modules.registry import Registry

from odoo.addons.zero_sudo.tools.exceptions import ExecutorFull

from ..tools.streaming import FORMATS, render

_logger = logging.getLogger(__name__)

CONTENT_TYPES = {"json": "application/json", "ndjson": "application/x-ndjson"}
RETRY_AFTER_S = 5


def _error(status, message):
    headers = [("Retry-After", str(RETRY_AFTER_S))] if status == 503 else []
    return request.make_json_response({"error": message}, headers=headers, status=status)


def _parse(model, fields, domain, fmt):
    """The request's export, checked; a (status, message) pair when it cannot run."""
    if fmt not in FORMATS:
        return None, (400, "format must be one of %s" % ", ".join(FORMATS))
    paths = [path.strip() for path in (fields or "").split(",") if path.strip()]
    if not paths:
        return None, (400, "give the fields to export, e.g. fields=name,partner_id.name")
    try:
        parsed_domain = json.loads(domain or "[]")
    except ValueError as exc:
        return None, (400, "domain is not JSON: %s" % exc)
    if not isinstance(parsed_domain, list):
        return None, (400, "domain must be a JSON list")
    try:
        request.env["zero_sudo.export"]._check_request(model, paths)
        request.env[model].search_count(parsed_domain, limit=1)  # a malformed domain fails now, as a 400
    except AccessError as exc:
        return None, (403, str(exc))
    except (ValueError, KeyError, TypeError) as exc:
        return None, (404 if model not in request.env else 400, str(exc))
    return (paths, parsed_domain), None


class ExportController(http.Controller):
    @http.route("/zero_sudo/export/<string:model>", type="http", auth="user", methods=["GET"])
    def export(self, model, fields="", domain="[]", format="json", chunk="1000", **_kw):
        """Stream ``model``'s records as a JSON array (or NDJSON), chunk by chunk.

        The body is produced by generators on a cursor of its own, as the requesting user,
        while it is sent: memory stays flat and the first bytes leave at once.
        """
        parsed, error = _parse(model, fields, domain, format)
        if error:
            return _error(*error)
        paths, parsed_domain = parsed
        try:
            chunk_size = int(chunk)
        except ValueError:
            return _error(400, "chunk must be an integer")
        db, uid, context = request.db, request.env.uid, dict(request.env.context)

        def body():
            with Registry(db).cursor() as cr:
                env = api.Environment(cr, uid, context)
                yield from render(env["zero_sudo.export"]._export_rows(model, parsed_domain, paths, chunk_size), format)

        filename = "%s.%s" % (model, format)
        return request.make_response(
            body(),
            headers=[("Content-Type", CONTENT_TYPES[format]), ("Content-Disposition", 'attachment; filename="%s"' % filename)],
        )

    @http.route("/zero_sudo/export/<string:model>/attachment", type="http", auth="user", methods=["POST"])
    def export_to_attachment(self, model, fields="", domain="[]", format="json", **_kw):
        """Queue a large export into an attachment; 202 with the task to follow, 503 when busy.

        Odoo's CSRF check applies (``csrf_token`` in the form): a cross-site post is refused."""
        parsed, error = _parse(model, fields, domain, format)
        if error:
            return _error(*error)
        paths, parsed_domain = parsed
        exporter = request.env["zero_sudo.export"]
        try:
            task = request.env["zero_sudo.task"]._submit(
                exporter,
                "_export_to_attachment",
                args=[model, parsed_domain, paths, format, "%s.%s" % (model, format)],
                name="Export %s" % model,
            )
        except ExecutorFull:
            return _error(503, "too many background tasks; retry later")
        return request.make_json_response({"task": task.id, "status": "/zero_sudo/task/%d" % task.id}, status=202)
