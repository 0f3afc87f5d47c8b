"""Odoo's XLSX export written as it is sent: the pure half of the streamed XLSX (no Odoo here).

xlsxwriter, which Odoo's ``ExportXlsxWriter`` drives, spends most of an export's time in
per-cell Python (a dispatch, a cell tuple, a row table, one temporary-file write per cell) and
zips the workbook only once it is closed. Here each row becomes its sheet XML in one pass,
deflated into the zip that leaves while it is written (``ZipStream``): the download starts
with the first rows and memory holds one batch of them.

The cells are those Odoo's writer gives, decided as ``ExportXlsxWriter.write_cell`` and then
xlsxwriter's ``Worksheet.write`` decide them: the header in bold; text wrapped, its ``\\r``
made spaces, past 32 767 characters replaced by Odoo's message; ``""`` and ``None`` blank;
booleans, numbers; dates and datetimes as Excel serial numbers formatted ``yyyy-mm-dd`` and
``yyyy-mm-dd hh:mm:ss``; floats ``#,##0.00`` or, in a monetary column, with the currencies'
largest number of decimals; text starting with ``=`` (or ``{=…}``) as a formula; a URL
(``http(s)://``, ``ftp(s)://``, ``mailto:``, ``internal:``, ``external:``) as a link. Strings
are inline, as in xlsxwriter's constant-memory mode. Two departures, both where xlsxwriter
loses the value: a link Excel cannot hold (target or anchor past 2 079 characters, or past a
sheet's 65 530th) is written as its text where xlsxwriter leaves the cell empty, and text
written as ``<r>…</r>`` stays that text where xlsxwriter copies it into the XML unescaped.
"""

from __future__ import annotations

import datetime
import math
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .dialog import ROWS_PER_PIECE
from .zipstream import ZipStream

SHEET_ROWS = 1_048_576  # an XLSX sheet's rows, the header's included (xlsxwriter's xls_rowmax)
CELL_CHARS = 32_767  # the longest text a cell holds (xlsxwriter's xls_strmax)
URL_CHARS = 2079  # Excel's longest link target, and longest anchor (since Excel 2016; xlsxwriter's limit)
SHEET_LINKS = 65_530  # Excel's links per sheet
# zlib's fastest level. The bench's 100 000 rows (40 MB of sheet XML) deflate in 0.11 s to
# 3.4 MB; at level 6 (zipfile's and xlsxwriter's default) in 0.69 s to 2.7 MB: the CPU of the
# worker serving the export is scarcer than 0.7 MB of download.
DEFLATE_LEVEL = 1
# Odoo's set_column(..., 30) in Excel's units: (30 characters * 7 px + 5 px padding) / 7 px,
# truncated to 1/256 as xlsxwriter writes it.
COLUMN_WIDTH = "30.7109375"
# Spooled hyperlinks (they go after the rows) stay in memory up to this size, then on disk.
LINKS_IN_MEMORY = 1 << 20

# The styles (cellXfs) of styles.xml, by index: Odoo's formats, in a fixed order after Excel's
# default style (0).
HEADER, TEXT, DATE, DATETIME, FLOAT, MONETARY = range(1, 7)

_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELATIONSHIPS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE_RELATIONSHIPS = "http://schemas.openxmlformats.org/package/2006/relationships"
_SHEET = "xl/worksheets/sheet1.xml"

_EXCEL_EPOCH = datetime.datetime(1899, 12, 31)
# Excel counts a 29 February 1900 that never was: serial 60. Later days are one further on.
_LEAP_BUG_SERIAL = 59

# What a string needs beyond being copied between <t> and </t>: XML escapes, control
# characters (written _xHHHH_; \r among them, which Odoo's writer makes a space), a literal
# _xHHHH_ (whose _ is escaped), the two non-characters.
_NEEDS_ESCAPE = re.compile("[&<>\x00-\x08\x0b-\x1f\ufffe\uffff]|_x[0-9a-fA-F]{4}_")
_ESCAPED_LITERAL = re.compile("(_x[0-9a-fA-F]{4}_)")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\ufffe\uffff]")
_URL = re.compile("(ftp|http)s?://|mailto:|(in|ex)ternal:")
_ALREADY_ESCAPED_URL = re.compile("%[0-9a-fA-F]{2}")
_URL_ESCAPES = {c: "%%%02x" % ord(c) for c in '%" <>[]^`{}'}
_WINDOWS_PATH = re.compile(r"\w:|\\")
# Excel 365's functions that spill: a formula using one is a dynamic array formula, and the
# newer ones need their _xlfn. prefix in the file (as xlsxwriter's _prepare_formula writes them).
_DYNAMIC_FUNCTION = re.compile(r"\b(SORT|LET|LAMBDA|SINGLE|SORTBY|UNIQUE|XMATCH|FILTER|XLOOKUP|SEQUENCE|RANDARRAY|ANCHORARRAY)\(")
_WORKSHEET_PREFIXED = ("SORT", "FILTER")  # _xlfn._xlws.SORT(, _xlfn._xlws.FILTER(


class SheetRefused(Exception):
    """Rows a sheet cannot hold as asked: the Odoo side turns each case into Odoo's own message."""


class TooManyRows(SheetRefused):
    """The rows do not fit in a sheet: ``count`` rows under the header, ``limit`` in all."""

    def __init__(self, count: int, limit: int):
        super().__init__(count, limit)
        self.count, self.limit = count, limit


class UndecodableBinary(SheetRefused):
    """Column ``column`` holds bytes that are not text (base64), which a cell cannot show."""

    def __init__(self, column: int):
        super().__init__(column)
        self.column = column


@dataclass(frozen=True)
class SheetFormat:
    """What Odoo's writer takes from Odoo: which columns are monetary, the currencies' largest
    number of decimals, and its message (in the user's language) for a too-long cell."""

    monetary_columns: frozenset[int]
    monetary_decimals: int | None  # None: no currency, Odoo's writer then shows two
    too_long_text: str


def column_letters(index: int) -> str:
    """``0`` → ``A``, ``25`` → ``Z``, ``26`` → ``AA``."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def excel_serial(value: datetime.date) -> float:
    """A date or naive datetime as the day count Excel stores (xlsxwriter's arithmetic)."""
    if type(value) is datetime.date:
        value = datetime.datetime(value.year, value.month, value.day)
    delta = value - _EXCEL_EPOCH
    serial = delta.days + (delta.seconds + delta.microseconds / 1e6) / 86400
    return serial + 1 if serial > _LEAP_BUG_SERIAL else serial


def escape_data(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_text(text: str) -> str:
    """A string as the content of ``<t>``: XML escapes, and Excel's own for what XML cannot hold."""
    if "_x" in text:
        text = _ESCAPED_LITERAL.sub(r"_x005F\1", text)
    return escape_data(_CONTROL.sub(lambda match: "_x%04X_" % ord(match.group()), text))


def escape_attribute(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "&#xA;")


def escape_url(url: str) -> str:
    """xlsxwriter's, which is Excel's: a few characters %-escaped, unless some already are."""
    if _ALREADY_ESCAPED_URL.search(url):
        return url
    return "".join(_URL_ESCAPES.get(c, c) for c in url)


def prepare_formula(formula: str) -> str:
    """The formula as the file stores it: no ``=`` nor array braces, dynamic functions prefixed."""
    formula = formula.removeprefix("{").removeprefix("=").removesuffix("}")
    if "_xlfn." in formula:
        return formula
    return _DYNAMIC_FUNCTION.sub(
        lambda match: ("_xlfn._xlws." if match[1] in _WORKSHEET_PREFIXED else "_xlfn.") + match[0], formula
    )


class _Sheet:
    """The sheet's cells as XML, and what the rest of the workbook needs to know of them."""

    def __init__(self, sheet_format: SheetFormat):
        self.format = sheet_format
        self.links = 0
        self.external_links = 0  # numbered rId1, rId2… in the sheet's relationships
        self.dynamic_arrays = False
        self.hyperlinks = tempfile.SpooledTemporaryFile(LINKS_IN_MEMORY, mode="w+", encoding="utf-8")
        self.relationships = tempfile.SpooledTemporaryFile(LINKS_IN_MEMORY, mode="w+", encoding="utf-8")

    def close(self) -> None:
        self.hyperlinks.close()
        self.relationships.close()

    def row(self, number: int, letters: list[str], values: Iterable) -> str:
        """Row ``number`` (1-based) of exported values, as ``write_cell`` writes them.

        A plain string (most cells) is written on the spot; anything else goes through
        ``exported_cell``."""
        cells = []
        append = cells.append
        row = str(number)
        for column, (letter, value) in enumerate(zip(letters, values, strict=True)):
            if (
                type(value) is str
                and value
                and value[0] not in "={"
                and ":" not in value
                and len(value) <= CELL_CHARS
                and not _NEEDS_ESCAPE.search(value)
                and not value[0].isspace()
                and not value[-1].isspace()
            ):
                append(f'<c r="{letter}{row}" s="{TEXT}" t="inlineStr"><is><t>{value}</t></is></c>')
            else:
                append(self.exported_cell(letter + row, column, value))
        return f'<row r="{row}">{"".join(cells)}</row>'

    def exported_cell(self, ref: str, column: int, value) -> str:
        """Odoo's ``write_cell``: the value made writable and its style chosen."""
        if isinstance(value, bytes):
            try:
                value = value.decode()
            except UnicodeDecodeError:
                raise UndecodableBinary(column) from None
        elif isinstance(value, (list, tuple, dict)):
            value = str(value)
        style = TEXT
        if isinstance(value, str):
            value = self.format.too_long_text if len(value) > CELL_CHARS else value.replace("\r", " ")
        elif isinstance(value, datetime.datetime):
            style = DATETIME
        elif isinstance(value, datetime.date):
            style = DATE
        elif isinstance(value, float):
            style = MONETARY if column in self.format.monetary_columns else FLOAT
        return self.cell(ref, style, value)

    def cell(self, ref: str, style: int, value) -> str:
        """xlsxwriter's ``write``: the cell's kind follows the value's type."""
        if value is None:
            return f'<c r="{ref}" s="{style}"/>'
        if isinstance(value, bool):
            return f'<c r="{ref}" s="{style}" t="b"><v>{int(value)}</v></c>'
        if isinstance(value, str):
            return self.text_cell(ref, style, value)
        if isinstance(value, datetime.date):
            value = excel_serial(value)
        elif not isinstance(value, (int, float)):
            return self.text_cell(ref, style, str(value))
        if not math.isfinite(value):
            raise ValueError("an XLSX cell cannot hold %r (cell %s)" % (value, ref))
        return '<c r="%s" s="%d"><v>%.16G</v></c>' % (ref, style, value)

    def text_cell(self, ref: str, style: int, text: str) -> str:
        if not text:
            return f'<c r="{ref}" s="{style}"/>'
        if text.startswith("=") or (text.startswith("{=") and text.endswith("}")):
            return self.formula_cell(ref, style, text)
        if ":" in text and _URL.match(text):
            return self.link_cell(ref, style, text)
        return self.string_cell(ref, style, text)

    def string_cell(self, ref: str, style: int, text: str) -> str:
        if _NEEDS_ESCAPE.search(text):
            text = escape_text(text)
        space = ' xml:space="preserve"' if text[0].isspace() or text[-1].isspace() else ""
        return f'<c r="{ref}" s="{style}" t="inlineStr"><is><t{space}>{text}</t></is></c>'

    def formula_cell(self, ref: str, style: int, text: str) -> str:
        formula = escape_data(prepare_formula(text))
        if _DYNAMIC_FUNCTION.search(text):
            self.dynamic_arrays = True
            return f'<c r="{ref}" s="{style}" cm="1"><f t="array" ref="{ref}">{formula}</f><v>0</v></c>'
        if text.startswith("{"):
            return f'<c r="{ref}" s="{style}"><f t="array" ref="{ref}">{formula}</f><v>0</v></c>'
        return f'<c r="{ref}" s="{style}"><f>{formula}</f><v>0</v></c>'

    def link_cell(self, ref: str, style: int, url: str) -> str:
        """xlsxwriter's ``write_url``: the cell shows the text, the link goes after the rows."""
        internal = url.startswith("internal:")
        external = url.startswith("external:")
        if internal:
            url = url.replace("internal:", "")
        elif external:
            url = url.replace("external:", "").replace("/", "\\")
        text = url.replace("mailto:", "")
        anchor = text  # an internal link's location is all of it
        if not internal:
            url, hash_sign, anchor = url.partition("#")
            anchor = (anchor if external else escape_url(anchor)) if hash_sign else None
            url = escape_url(url)
            if _WINDOWS_PATH.match(url):
                url = "file:///" + url
            url = url.removeprefix(".\\")
        if len(url) > URL_CHARS or len(anchor or "") > URL_CHARS or self.links == SHEET_LINKS:
            return self.string_cell(ref, style, text)
        self.links += 1
        if internal:
            self.hyperlinks.write(
                '<hyperlink ref="%s" location="%s" display="%s"/>' % (ref, escape_attribute(url), escape_attribute(text))
            )
        else:
            location = ' location="%s"' % escape_attribute(anchor) if anchor is not None else ""
            self.external_links += 1
            self.hyperlinks.write('<hyperlink ref="%s" r:id="rId%d"%s/>' % (ref, self.external_links, location))
            self.relationships.write(
                '<Relationship Id="rId%d" Type="%s/hyperlink" Target="%s" TargetMode="External"/>'
                % (self.external_links, _RELATIONSHIPS, escape_attribute(url))
            )
        return self.string_cell(ref, style, text)


def xlsx_pieces(headers: list[str], rows: Iterable[list], sheet_format: SheetFormat) -> Iterator[bytes]:
    """The workbook of one sheet (``headers``, then ``rows``), as bytes pieces while written.

    The first piece leaves before the first row is asked for. Raises ``TooManyRows`` on the
    row past the sheet's last, ``UndecodableBinary`` on bytes that are not text."""
    sheet = _Sheet(sheet_format)
    letters = [column_letters(column) for column in range(len(headers))]
    archive = ZipStream(DEFLATE_LEVEL)
    try:
        member = archive.open(_SHEET)
        header = "".join(sheet.cell(letter + "1", HEADER, label) for letter, label in zip(letters, headers, strict=True))
        member.write(_sheet_head(len(headers), header).encode())
        yield archive.take()
        batch = []
        for number, values in enumerate(rows, 2):
            if number > SHEET_ROWS:
                raise TooManyRows(number - 1, SHEET_ROWS)
            batch.append(sheet.row(number, letters, values))
            if len(batch) == ROWS_PER_PIECE:
                member.write("".join(batch).encode())
                batch.clear()
                if piece := archive.take():
                    yield piece
        member.write("".join(batch).encode())
        member.write(b"</sheetData>")
        if sheet.links:
            member.write(b"<hyperlinks>")
            _copy(sheet.hyperlinks, member)
            member.write(b"</hyperlinks>")
        member.write(b'<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/></worksheet>')
        member.close()
        if sheet.external_links:
            member = archive.open("xl/worksheets/_rels/sheet1.xml.rels")
            member.write(('%s<Relationships xmlns="%s">' % (_XML, _PACKAGE_RELATIONSHIPS)).encode())
            _copy(sheet.relationships, member)
            member.write(b"</Relationships>")
            member.close()
        for name, content in _workbook_parts(sheet_format, sheet.dynamic_arrays):
            archive.write_member(name, content.encode())
        archive.close()
        yield archive.take()
    finally:
        sheet.close()


def _copy(spool, member) -> None:
    spool.seek(0)
    while text := spool.read(1 << 16):
        member.write(text.encode())


def _sheet_head(columns: int, header_cells: str) -> str:
    return (
        f'{_XML}<worksheet xmlns="{_MAIN}" xmlns:r="{_RELATIONSHIPS}">'
        '<sheetViews><sheetView tabSelected="1" workbookViewId="0"/></sheetViews>'
        '<sheetFormatPr defaultRowHeight="15"/>'
        f'<cols><col min="1" max="{max(columns, 1)}" width="{COLUMN_WIDTH}" customWidth="1"/></cols>'
        f'<sheetData><row r="1">{header_cells}</row>'
    )


def _styles(sheet_format: SheetFormat) -> str:
    monetary = "#,##0.%s" % ("0" * (sheet_format.monetary_decimals or 2))
    codes = {DATE: "yyyy-mm-dd", DATETIME: "yyyy-mm-dd hh:mm:ss", FLOAT: "#,##0.00", MONETARY: monetary}
    ids = {code: 164 + n for n, code in enumerate(dict.fromkeys(codes.values()))}  # 164: the first custom format
    wrapped = ' applyAlignment="1"><alignment wrapText="1"/></xf>'
    xfs = [
        '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>',
        '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>',
        '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"' + wrapped,
    ] + [
        '<xf numFmtId="%d" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"%s' % (ids[codes[style]], wrapped)
        for style in (DATE, DATETIME, FLOAT, MONETARY)
    ]
    formats = "".join('<numFmt numFmtId="%d" formatCode="%s"/>' % (ident, code) for code, ident in ids.items())
    font = '<sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    return (
        f'{_XML}<styleSheet xmlns="{_MAIN}"><numFmts count="{len(ids)}">{formats}</numFmts>'
        f'<fonts count="2"><font>{font}<font><b/>{font}</fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        f'<cellXfs count="{len(xfs)}">{"".join(xfs)}</cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>'
    )


_DYNAMIC_ARRAY_METADATA = (
    f'{_XML}<metadata xmlns="{_MAIN}" xmlns:xda="http://schemas.microsoft.com/office/spreadsheetml/2017/dynamicarray">'
    '<metadataTypes count="1"><metadataType name="XLDAPR" minSupportedVersion="120000" copy="1" pasteAll="1" '
    'pasteValues="1" merge="1" splitFirst="1" rowColShift="1" clearFormats="1" clearComments="1" assign="1" '
    'coerce="1" cellMeta="1"/></metadataTypes><futureMetadata name="XLDAPR" count="1"><bk><extLst>'
    '<ext uri="{bdbb8cdc-fa1e-496e-a857-3c3f30c029c3}"><xda:dynamicArrayProperties fDynamic="1" fCollapsed="0"/>'
    '</ext></extLst></bk></futureMetadata><cellMetadata count="1"><bk><rc t="1" v="0"/></bk></cellMetadata></metadata>'
)


def _workbook_parts(sheet_format: SheetFormat, dynamic_arrays: bool) -> list[tuple[str, str]]:
    """The parts around the sheet, which the zip may hold after it: written once it is done."""
    content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.%s+xml"
    overrides = [("/xl/workbook.xml", "sheet.main"), ("/" + _SHEET, "worksheet"), ("/xl/styles.xml", "styles")]
    relationships = [("worksheet", "worksheets/sheet1.xml"), ("styles", "styles.xml")]
    if dynamic_arrays:
        overrides.append(("/xl/metadata.xml", "sheetMetadata"))
        relationships.append(("sheetMetadata", "metadata.xml"))
    types = "".join('<Override PartName="%s" ContentType="%s"/>' % (part, content_type % kind) for part, kind in overrides)
    links = "".join(
        '<Relationship Id="rId%d" Type="%s/%s" Target="%s"/>' % (n, _RELATIONSHIPS, kind, target)
        for n, (kind, target) in enumerate(relationships, 1)
    )
    parts = [
        (
            "[Content_Types].xml",
            f'{_XML}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            f'<Default Extension="xml" ContentType="application/xml"/>{types}</Types>',
        ),
        (
            "_rels/.rels",
            f'{_XML}<Relationships xmlns="{_PACKAGE_RELATIONSHIPS}">'
            f'<Relationship Id="rId1" Type="{_RELATIONSHIPS}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        ),
        (
            "xl/workbook.xml",
            # fullCalcOnLoad: formulas are stored without their results, Excel computes them on opening.
            f'{_XML}<workbook xmlns="{_MAIN}" xmlns:r="{_RELATIONSHIPS}"><bookViews><workbookView/></bookViews>'
            '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets><calcPr fullCalcOnLoad="1"/></workbook>',
        ),
        ("xl/_rels/workbook.xml.rels", f'{_XML}<Relationships xmlns="{_PACKAGE_RELATIONSHIPS}">{links}</Relationships>'),
        ("xl/styles.xml", _styles(sheet_format)),
    ]
    if dynamic_arrays:
        parts.append(("xl/metadata.xml", _DYNAMIC_ARRAY_METADATA))
    return parts
