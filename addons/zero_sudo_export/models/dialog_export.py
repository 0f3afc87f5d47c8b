import logging
import uuid
from dataclasses import dataclass

from odoo import api, models
from odoo.exceptions import UserError
from odoo.modules.registry import Registry
from odoo.tools import SQL, osutil

from ..tools.dialog import STREAM_FORMATS, csv_pieces, json_pieces
from ..tools.xlsx import CELL_CHARS, SHEET_ROWS, SheetFormat, TooManyRows, UndecodableBinary, xlsx_pieces
from .exporter import CHUNK_SIZE

_logger = logging.getLogger(__name__)

# An export of more records than this (ir.config_parameter) runs as a background task that
# files an attachment and notifies the user; smaller ones stream straight to the browser.
# Records, not rows: one2many lines are not known before the export runs.
BACKGROUND_THRESHOLD_PARAM = "zero_sudo_export.background_threshold"
DEFAULT_BACKGROUND_THRESHOLD = 100_000
READY = "zero_sudo_export/ready"
# Field values the ORM cache may hold between two chunks before it is emptied (_dialog_rows):
# some 10 MB, whatever the number of records exported.
CACHE_BOUND = 100_000


def _cached_values(env) -> int:
    """How many field values the environment's cache holds. Odoo has no public measure of it:
    this counts the entries of its per-field dictionaries (a context-dependent field counts
    one per context)."""
    return sum(len(values) for values in env.cache._data.values())  # bus notification type of a finished background export


@dataclass(frozen=True)
class DialogExport:
    """What the export dialog asked, checked: ``model`` carries the dialog's context."""

    model: models.BaseModel
    field_names: list
    headers: list
    fields: list
    ids: list
    domain: list

    @property
    def filename(self) -> str:
        """Odoo's: ``Contact (res.partner)``, without extension."""
        return "%s (%s)" % (self.model.env["ir.model"]._get(self.model._name).name, self.model._name)


class Exporter(models.AbstractModel):
    """The standard export dialog's streamed formats (CSV, XLSX, JSON).

    The rows are Odoo's own: ``export_data`` (labels, selection values, many2one display
    names, x2many lines, external IDs in import-compatible mode, the dialog's language)
    called on one chunk of records at a time, with the ORM cache emptied between chunks.
    The records are those Odoo's export would take, in its order: the selected IDs, or the
    domain searched with the model's order, whose IDs are read through a server-side cursor
    1 000 at a time instead of all at once. No sudo: the user's access rights and record rules
    apply as in the list.
    """

    _inherit = "zero_sudo.export"

    @api.model
    def _dialog_parse(self, params: dict) -> DialogExport:
        """The dialog's request (Odoo's ``ExportFormat.base`` reading), checked before the first
        byte: the model exists, the user may export and read it, every field path exists."""
        try:
            model_name, fields, ids, domain, import_compat = (
                params[key] for key in ("model", "fields", "ids", "domain", "import_compat")
            )
        except (KeyError, TypeError):
            raise UserError(self.env._("This export request is incomplete.")) from None
        if model_name not in self.env:
            raise UserError(self.env._("There is no model %s.", model_name))
        model = self.env[model_name].with_context(import_compat=import_compat, **(params.get("context") or {}))
        if not model._is_an_ordinary_table():
            fields = [field for field in fields if field["name"] != "id"]
        field_names = [field["name"] for field in fields]
        headers = field_names if import_compat else [field["label"].strip() for field in fields]
        model.browse().export_data(field_names)  # Odoo's own "may this user export" check
        model.check_access("read")
        for name in field_names:
            self._dialog_check_path(model, name)
        ids = [int(record_id) for record_id in ids] if ids else []
        return DialogExport(model, field_names, headers, fields, ids, list(domain or []))

    def _dialog_check_path(self, model, path):
        # what export_data would stumble on halfway through the file
        for part in path.split("/"):
            if part in ("id", ".id"):
                return
            field = model._fields.get(part.split(".")[0])  # "properties.name": a property
            if field is None:
                raise UserError(self.env._("%(model)s has no field %(field)s.", model=model._name, field=part))
            if not field.relational:
                return
            model = model.env[field.comodel_name]

    def _dialog_records(self, export: DialogExport, chunk_size=CHUNK_SIZE):
        """The exported records, ``chunk_size`` at a time, in the order Odoo's export has them."""
        model = export.model
        if export.ids:
            for start in range(0, len(export.ids), chunk_size):
                yield model.browse(export.ids[start : start + chunk_size])
            return
        # Odoo's export: model.search(domain) in the model's order. The IDs come from a
        # server-side cursor of the same query (record rules and active_test included):
        # a million IDs never sit in memory at once.
        query = model._search(export.domain, order=model._order)
        select = query.select()
        model.env.flush_query(select)
        cr = model.env.cr
        cursor = SQL.identifier("zs_export_%s" % uuid.uuid4().hex)
        cr.execute(SQL("DECLARE %s NO SCROLL CURSOR FOR %s", cursor, select))
        while True:
            cr.execute(SQL("FETCH FORWARD %s FROM %s", chunk_size, cursor))
            ids = [row[0] for row in cr.fetchall()]
            if not ids:
                break
            yield model.browse(ids)
        cr.execute(SQL("CLOSE %s", cursor))

    def _dialog_rows(self, export: DialogExport, chunk_size=CHUNK_SIZE):
        """``export_data``'s rows, one chunk of records at a time; memory holds one chunk."""
        count = 0
        for records in self._dialog_records(export, chunk_size):
            yield from records.export_data(export.field_names)["datas"]
            count += len(records)
            # The chunk's own records leave the cache at once. The records they point to
            # (companies, countries, tags: often the same from one chunk to the next) stay,
            # so that their display names are not computed again for every chunk, until the
            # cache holds CACHE_BOUND values: then everything goes.
            records.invalidate_recordset()
            if _cached_values(records.env) > CACHE_BOUND:
                records.env.invalidate_all()
        _logger.info(
            "User %d exported %d %r records (streamed). Fields: %s. %s: %s",
            self.env.uid,
            count,
            export.model._name,
            ",".join(export.field_names),
            "IDs sample" if export.ids else "Domain",
            export.ids[:10] if export.ids else export.domain,
        )

    def _dialog_pieces(self, export: DialogExport, tag: str):
        """The file of format ``tag``, as bytes pieces produced while they are sent."""
        rows = self._dialog_rows(export)
        if tag == "zs_csv":
            return csv_pieces(export.headers, rows)
        if tag == "zs_json":
            return json_pieces(export.headers, rows)
        if tag == "zs_xlsx":
            return self._dialog_xlsx(export, rows)
        raise ValueError("no export format %r" % tag)

    def _dialog_xlsx(self, export, rows):
        """Odoo's XLSX (its ExportXlsxWriter's cells), written while it is sent (tools/xlsx.py):
        what the writer needs of Odoo is given here, its two refusals become Odoo's messages."""
        sheet_format = SheetFormat(
            monetary_columns=frozenset(n for n, field in enumerate(export.fields) if field.get("type") == "monetary"),
            monetary_decimals=self.env["res.currency"]._read_group([], aggregates=["decimal_places:max"])[0][0],
            too_long_text=self.env._(
                "The content of this cell is too long for an XLSX file (more than %s characters). Please use the CSV format for this export.",
                CELL_CHARS,
            ),
        )
        try:
            yield from xlsx_pieces(export.headers, rows, sheet_format)
        except TooManyRows as exc:
            raise self._xlsx_too_many_rows(exc.count, exc.limit) from None
        except UndecodableBinary as exc:
            raise UserError(
                self.env._(
                    "Binary fields can not be exported to Excel unless their content is base64-encoded. That does not seem to be the case for %s.",
                    export.headers[exc.column],
                )
            ) from None

    def _xlsx_too_many_rows(self, count: int, limit: int) -> UserError:
        return UserError(
            self.env._(
                "There are too many rows (%(count)s rows, limit: %(limit)s) to export as Excel 2007-2013 (.xlsx) format. Consider splitting the export.",
                count=count,
                limit=limit,
            )
        )

    @api.model
    def _dialog_count(self, export: DialogExport, limit=None) -> int:
        if export.ids:
            return len(export.ids)
        return export.model.search_count(export.domain, limit=limit)

    @api.model
    def _dialog_background_threshold(self) -> int:
        parameters = self.env["ir.config_parameter"].sudo()  # a setting every exporting user needs
        try:
            return int(parameters.get_param(BACKGROUND_THRESHOLD_PARAM, DEFAULT_BACKGROUND_THRESHOLD))
        except ValueError:
            return DEFAULT_BACKGROUND_THRESHOLD

    @api.model
    def _dialog_plan(self, params: dict, tag: str) -> dict:
        """How the dialog's export runs: ``{"mode": "stream"}`` (the browser downloads it now),
        or ``{"mode": "background", "task": id, "records": n}`` past the threshold, queued."""
        if tag not in STREAM_FORMATS:
            raise UserError(self.env._("There is no export format %s.", tag))
        export = self._dialog_parse(params)
        threshold = self._dialog_background_threshold()
        rowmax = SHEET_ROWS - 1  # the header takes a row
        count = self._dialog_count(export, limit=max(threshold, rowmax) + 1)
        if tag == "zs_xlsx" and count > rowmax:
            raise self._xlsx_too_many_rows(count, rowmax)
        if count <= threshold:
            return {"mode": "stream", "records": count}
        task = self.env["zero_sudo.task"]._submit(
            self, "_dialog_to_attachment", args=[params, tag], name=self.env._("Export of %s", export.filename)
        )
        return {"mode": "background", "task": task.id, "records": count}

    @api.model
    def _dialog_to_attachment(self, params: dict, tag: str):
        """Background task: the export as an attachment of the user's, then a notification.

        zero_sudo_live, when installed, tells the user of every finished task (with a download
        button for the attachment a task returns); without it Odoo's bus carries the news."""
        try:
            export = self._dialog_parse(params)
            fmt = STREAM_FORMATS[tag]
            name = osutil.clean_filename(export.filename + fmt.extension)
            attachment = self._file_attachment(self._dialog_pieces(export, tag), name, fmt.content_type.split(";")[0])
        except Exception as exc:
            if not self._live_notifications():
                self._dialog_notify_failed(exc)
            raise
        if not self._live_notifications():
            self.env.user._bus_send(
                READY,
                {
                    "title": self.env._("Export ready"),
                    "message": self.env._("%s is ready.", attachment.name),
                    "url": "/web/content/%d?download=true" % attachment.id,
                },
            )
        return attachment

    def _live_notifications(self) -> bool:
        return "zero_sudo.live" in self.env

    def _dialog_notify_failed(self, exc):
        # The task's transaction rolls back, a bus message sent in it with it: say so from a
        # transaction of its own.
        with Registry(self.env.cr.dbname).cursor() as cr:
            env = self.env(cr=cr)
            env.user._bus_send(READY, {"title": env._("Export failed"), "message": str(exc), "url": False})
