"""Odoo's XLSX export writer with xlsxwriter's constant-memory mode.

Odoo's ``ExportXlsxWriter`` keeps every cell of the sheet in memory (``in_memory``) until the
workbook closes. This subclass keeps its cell formatting (``write_cell``: styles for dates,
datetimes, floats and monetary amounts, bytes, lists, line breaks) and changes only where the
cells go: each row is written to a temporary file as soon as the next one starts, and the
workbook is zipped into ``output`` (a file) at the end.
"""

from __future__ import annotations

import tempfile

from odoo.exceptions import UserError
from odoo.tools.misc import xlsxwriter

from odoo.addons.web.controllers.export import ExportXlsxWriter


class ConstantMemoryXlsxWriter(ExportXlsxWriter):
    def __init__(self, env, output, fields: list[dict], columns_headers: list[str]):
        # Not super().__init__: it opens an in-memory workbook and reads ``request``, which a
        # background task has not. The styles below are Odoo's, in the same order.
        self.env = env
        self.fields = fields
        self.columns_headers = columns_headers
        self.output = output
        self.workbook = xlsxwriter.Workbook(output, {"constant_memory": True, "tmpdir": tempfile.gettempdir()})
        self.header_style = self.workbook.add_format({"bold": True})
        self.date_style = self.workbook.add_format({"text_wrap": True, "num_format": "yyyy-mm-dd"})
        self.datetime_style = self.workbook.add_format({"text_wrap": True, "num_format": "yyyy-mm-dd hh:mm:ss"})
        self.base_style = self.workbook.add_format({"text_wrap": True})
        self.float_style = self.workbook.add_format({"text_wrap": True, "num_format": "#,##0.00"})
        decimal_places = env["res.currency"]._read_group([], aggregates=["decimal_places:max"])[0][0]
        self.monetary_style = self.workbook.add_format({"text_wrap": True, "num_format": f"#,##0.{(decimal_places or 2) * '0'}"})
        self.worksheet = self.workbook.add_worksheet()
        self.value = False
        self.too_long = env._(
            "The content of this cell is too long for an XLSX file (more than %s characters). Please use the CSV format for this export.",
            self.worksheet.xls_strmax,
        )

    def close(self):
        self.workbook.close()

    def write_cell(self, row, column, cell_value):
        """Odoo's, with its two messages taken from this writer's environment (Odoo's read
        ``request``), and a row past the sheet's last refused rather than silently dropped."""
        if row > self.worksheet.xls_rowmax - 1:
            raise UserError(
                self.env._(
                    "There are too many rows (%(count)s rows, limit: %(limit)s) to export as Excel 2007-2013 (.xlsx) format. Consider splitting the export.",
                    count=row,
                    limit=self.worksheet.xls_rowmax,
                )
            )
        if isinstance(cell_value, bytes):
            try:
                cell_value = cell_value.decode()
            except UnicodeDecodeError:
                raise UserError(
                    self.env._(
                        "Binary fields can not be exported to Excel unless their content is base64-encoded. That does not seem to be the case for %s.",
                        self.columns_headers[column],
                    )
                ) from None
        elif isinstance(cell_value, str) and len(cell_value) > self.worksheet.xls_strmax:
            cell_value = self.too_long
        super().write_cell(row, column, cell_value)

    def write_rows(self, rows) -> int:
        """Write ``rows`` under the header; returns how many there were.

        Most cells are plain text: for those, the cell goes straight to the string writer that
        ``worksheet.write`` would have picked after five calls of dispatch (the string is not
        empty, not a formula, not a URL, not too long). Any other cell takes Odoo's
        ``write_cell``, dispatch included.
        """
        worksheet, style, strmax = self.worksheet, self.base_style, self.worksheet.xls_strmax
        write_string, write_cell = worksheet._write_string, self.write_cell
        count, rowmax = 0, worksheet.xls_rowmax
        for count, values in enumerate(rows, 1):
            if count >= rowmax:
                write_cell(count, 0, "")  # refuses, as any cell past the sheet's last row
            for column, value in enumerate(values):
                if type(value) is str and value and ":" not in value and value[0] not in "={" and len(value) <= strmax:
                    write_string(count, column, value.replace("\r", " "), style)
                else:
                    write_cell(count, column, value)
        return count
