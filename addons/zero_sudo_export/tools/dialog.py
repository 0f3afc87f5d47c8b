"""The export dialog's streamed formats, as plain functions of rows: the pure half.

Rows are what Odoo's ``export_data`` gives (lists of cells, one2many lines included); the
cells are written as Odoo's own ``/web/export/csv`` writes them, so a streamed file and
Odoo's differ in nothing but the time the first byte leaves.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class StreamFormat:
    tag: str  # the dialog's format tag: the download goes to /web/export/<tag>
    label: str
    extension: str
    content_type: str


STREAM_FORMATS = {
    fmt.tag: fmt
    for fmt in (
        StreamFormat("zs_csv", "CSV (streamed)", ".csv", "text/csv;charset=utf8"),
        StreamFormat("zs_xlsx", "XLSX (streamed)", ".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        StreamFormat("zs_json", "JSON (streamed)", ".json", "application/json"),
    )
}

# Rows written to the in-memory text buffer before it is encoded and handed to the socket:
# large enough that a piece is worth a write, small enough that it never matters for memory.
ROWS_PER_PIECE = 500


def csv_cell(value):
    """One cell as Odoo's CSVExport.from_data writes it: empty for None/False, bytes decoded,
    and a leading ``=``, ``+`` or ``-`` quoted so spreadsheets do not run it as a formula."""
    if value is None or value is False:
        return ""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value.startswith(("=", "-", "+")):
        return "'" + value
    return value


def csv_pieces(headers: list[str], rows: Iterable[list]) -> Iterator[bytes]:
    """The CSV file (every field quoted, as Odoo's) in UTF-8 pieces of ``ROWS_PER_PIECE`` rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL)
    writer.writerow(headers)
    pending = 1
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
        pending += 1
        if pending >= ROWS_PER_PIECE:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    if pending:
        yield buffer.getvalue().encode()


def _json_default(value):
    if isinstance(value, (datetime.date, datetime.datetime)):
        return str(value)  # Odoo's own strings: "2026-11-29", "2026-11-29 08:00:00"
    if isinstance(value, bytes):
        return value.decode()
    raise TypeError("cannot write %r as JSON" % type(value).__name__)


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default)


def json_keys(headers: list[str]) -> list[str]:
    """The objects' keys: the columns' headers, a repeated header numbered (``Name (2)``) so
    that no column overwrites another."""
    seen: dict[str, int] = {}
    keys = []
    for header in headers:
        seen[header] = seen.get(header, 0) + 1
        keys.append(header if seen[header] == 1 else "%s (%d)" % (header, seen[header]))
    return keys


def json_pieces(headers: list[str], rows: Iterable[list]) -> Iterator[bytes]:
    """A JSON array of one object per row, keyed by the column headers, one row at a time."""
    keys = json_keys(headers)
    yield b"["
    separator = ""
    for row in rows:
        yield (separator + _ENCODER.encode(dict(zip(keys, row, strict=True)))).encode()
        separator = ","
    yield b"]"
