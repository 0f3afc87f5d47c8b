import json
import logging

from werkzeug.exceptions import InternalServerError

from odoo import api, http
from odoo.http import content_disposition, request
from odoo.modules.registry import Registry
from odoo.tools import osutil

from odoo.addons.web.controllers.export import Export
from odoo.addons.zero_sudo.tools.exceptions import ExecutorFull

from ..tools.dialog import STREAM_FORMATS

_logger = logging.getLogger(__name__)


def _odoo_error(exc):
    """The error Odoo's /web/export/<format> answers, which the web client's download() reads."""
    payload = json.dumps({"code": 200, "message": "Odoo Server Error", "data": http.serialize_exception(exc)})
    return InternalServerError(payload)


class StreamingExportFormats(Export):
    @http.route()
    def formats(self):
        """Odoo's formats, then the streamed ones: the dialog lists them all as radio buttons."""
        return super().formats() + [
            {"tag": fmt.tag, "label": fmt.label, "short": fmt.extension[1:].upper(), "streamed": True}
            for fmt in STREAM_FORMATS.values()
        ]


class DialogExportController(http.Controller):
    @http.route("/zero_sudo/export/dialog/plan", type="json", auth="user")
    def plan(self, data, format):
        """Called by the dialog before a streamed download: refuses what cannot run (no right to
        export or read, unknown field, too many rows for XLSX) as an ordinary RPC error, and
        queues an export past the background threshold (see ``_dialog_plan``)."""
        try:
            return request.env["zero_sudo.export"]._dialog_plan(json.loads(data), format)
        except ExecutorFull:
            return {"mode": "busy"}

    @http.route(["/web/export/%s" % tag for tag in STREAM_FORMATS], type="http", auth="user", methods=["POST"])
    def stream(self, data, **_kw):
        """The dialog's export, streamed: same request (``data``) and same file as Odoo's
        /web/export/csv and /web/export/xlsx, produced chunk by chunk while it is sent.

        Checks run before the response starts, as the requesting user; the body runs on a
        cursor of its own (the request's is gone by then), as that user, in the same context.
        """
        tag = request.httprequest.path.rsplit("/", 1)[-1]
        fmt = STREAM_FORMATS[tag]
        try:
            params = json.loads(data)
            export = request.env["zero_sudo.export"]._dialog_parse(params)
            filename = osutil.clean_filename(export.filename + fmt.extension)
        except Exception as exc:
            _logger.info("streamed export refused: %s", exc)
            raise _odoo_error(exc) from exc
        db, uid, context = request.db, request.env.uid, dict(request.env.context)

        def body():
            with Registry(db).cursor() as cr:
                exporter = api.Environment(cr, uid, context)["zero_sudo.export"]
                yield from exporter._dialog_pieces(exporter._dialog_parse(params), tag)

        return request.make_response(
            body(), headers=[("Content-Disposition", content_disposition(filename)), ("Content-Type", fmt.content_type)]
        )
