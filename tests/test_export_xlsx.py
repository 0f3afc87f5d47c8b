"""addons/zero_sudo_export/tools/xlsx.py without Odoo: the streamed XLSX, read back with zipfile
and ElementTree (no xlsxwriter, no openpyxl). The addon's own suite compares it with Odoo's
file, cell for cell, through openpyxl."""

import datetime
import io
import posixpath
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass

import pytest

from conftest import addon_tools

addon_tools("zero_sudo_export")  # before importing from its package, zero_sudo_export_tools
from zero_sudo_export_tools import xlsx  # noqa: E402

NS = {
    "m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "p": "http://schemas.openxmlformats.org/package/2006/relationships",
    "t": "http://schemas.openxmlformats.org/package/2006/content-types",
}
R_ID = "{%s}id" % NS["r"]
TOO_LONG = "Too long for a cell"
FORMAT = xlsx.SheetFormat(monetary_columns=frozenset({1}), monetary_decimals=3, too_long_text=TOO_LONG)


@dataclass(frozen=True)
class Cell:
    value: object  # text, number, bool, "=formula", or None (blank)
    number_format: str
    bold: bool


def read_workbook(content: bytes) -> tuple[dict, dict, zipfile.ZipFile]:
    """Cells by reference (``B2``) and links by reference (target, with its ``#anchor``)."""
    archive = zipfile.ZipFile(io.BytesIO(content))
    styles = ET.fromstring(archive.read("xl/styles.xml"))
    formats = {int(f.get("numFmtId")): f.get("formatCode") for f in styles.iterfind("m:numFmts/m:numFmt", NS)}
    bold_fonts = [font.find("m:b", NS) is not None for font in styles.iterfind("m:fonts/m:font", NS)]
    xfs = [
        (formats.get(int(xf.get("numFmtId")), "General"), bold_fonts[int(xf.get("fontId"))])
        for xf in styles.iterfind("m:cellXfs/m:xf", NS)
    ]
    sheet = ET.fromstring(archive.read("xl/worksheets/sheet1.xml"))
    cells = {}
    for c in sheet.iterfind("m:sheetData/m:row/m:c", NS):
        formula, value = c.find("m:f", NS), c.findtext("m:v", None, NS)
        if c.get("t") == "inlineStr":
            value = "".join(c.find("m:is", NS).itertext())
        elif formula is not None:
            value = "=" + formula.text
        elif c.get("t") == "b":
            value = value == "1"
        elif value is not None:
            value = float(value)
        cells[c.get("r")] = Cell(value, *xfs[int(c.get("s", 0))])
    targets = {}
    if "xl/worksheets/_rels/sheet1.xml.rels" in archive.namelist():
        rels = ET.fromstring(archive.read("xl/worksheets/_rels/sheet1.xml.rels"))
        targets = {rel.get("Id"): rel.get("Target") for rel in rels.iterfind("p:Relationship", NS)}
    links = {}
    for link in sheet.iterfind("m:hyperlinks/m:hyperlink", NS):
        target = targets.get(link.get(R_ID), "")
        links[link.get("ref")] = target + ("#" + link.get("location") if link.get("location") else "")
    return cells, links, archive


def write(headers, rows, sheet_format=FORMAT) -> bytes:
    return b"".join(xlsx.xlsx_pieces(headers, rows, sheet_format))


def test_cells_have_odoos_values_and_formats():
    rows = [
        ["text", 1.5, 2.25, 7, True, False],
        ["", None, 0.0, -3, datetime.date(2026, 11, 29), datetime.datetime(2026, 11, 29, 8, 0, 1)],
        [b"bytes", ["a", 1], "line\r\nbreak", "x" * 40_000, "{not a formula}", 12.5],
    ]
    cells, _links, _archive = read_workbook(write(["Name", "Amount", "Rate", "Count", "Date", "When"], rows))
    assert cells["A1"] == Cell("Name", "General", True), "the header is bold"
    assert [cells["%s2" % c] for c in "ABCDEF"] == [
        Cell("text", "General", False),
        Cell(1.5, "#,##0.000", False),  # a monetary column: the currencies' largest number of decimals
        Cell(2.25, "#,##0.00", False),
        Cell(7.0, "General", False),
        Cell(True, "General", False),
        Cell(False, "General", False),
    ]
    assert [cells["%s3" % c].value for c in "ABCDEF"] == [None, None, 0.0, -3.0, 46355.0, 46355.33334490741]
    assert (cells["E3"].number_format, cells["F3"].number_format) == ("yyyy-mm-dd", "yyyy-mm-dd hh:mm:ss")
    assert [cells["%s4" % c].value for c in "ABCDE"] == ["bytes", "['a', 1]", "line \nbreak", TOO_LONG, "{not a formula}"]
    assert cells["F4"] == Cell(12.5, "#,##0.00", False), "a float outside the monetary column"


def test_without_monetary_decimals_amounts_keep_two():
    sheet_format = xlsx.SheetFormat(frozenset({0}), monetary_decimals=None, too_long_text=TOO_LONG)
    cells, _links, _archive = read_workbook(write(["Amount"], [[1.0]], sheet_format))
    assert cells["A2"].number_format == "#,##0.00"


def test_text_comes_back_as_written():
    texts = ["a & b <c> \"d\" 'e'", " leading", "trailing ", "\ttab", "é ü 漢字 😀", "<r>rich</r>"]
    cells, _links, _archive = read_workbook(write(["Text"], [[text] for text in texts]))
    assert [cells["A%d" % n].value for n in range(2, 2 + len(texts))] == texts
    # What XML cannot hold, Excel writes _xHHHH_ (and so a literal _xHHHH_ escapes its _).
    cells, _links, _archive = read_workbook(write(["Text"], [["bell\x07"], ["_x0041_"]]))
    assert (cells["A2"].value, cells["A3"].value) == ("bell_x0007_", "_x005F_x0041_")


def test_the_download_starts_before_the_first_row_and_goes_on_during_the_rows():
    pulled = []

    def rows():
        for n in range(10 * xlsx.ROWS_PER_PIECE):
            pulled.append(n)
            yield ["Contact %d with some text to deflate: %d" % (n, n * 7919 % 10007)]

    pieces = xlsx.xlsx_pieces(["Name"], rows(), FORMAT)
    assert next(pieces).startswith(b"PK\x03\x04") and not pulled, "the first bytes leave before any row is read"
    during = [len(pulled) for piece in pieces if piece]
    assert min(during) < len(pulled), "pieces leave while rows are still being read"
    assert len(pulled) == 10 * xlsx.ROWS_PER_PIECE


def test_formulas_are_written_as_xlsxwriter_writes_them():
    rows = [["=1+1"], ["{=SUM(A2:A3)}"], ["=UNIQUE(A2:A4)"], ['=A2&"<x>"']]
    cells, _links, archive = read_workbook(write(["Formula"], rows))
    assert [cells["A%d" % n].value for n in range(2, 6)] == ["=1+1", "=SUM(A2:A3)", "=_xlfn.UNIQUE(A2:A4)", '=A2&"<x>"']
    sheet = ET.fromstring(archive.read("xl/worksheets/sheet1.xml"))
    array, dynamic = (sheet.find("m:sheetData/m:row/m:c[@r='%s']" % ref, NS) for ref in ("A3", "A4"))
    assert array.find("m:f", NS).attrib == {"t": "array", "ref": "A3"}
    assert dynamic.get("cm") == "1", "a spilling function makes a dynamic array formula"
    assert "xl/metadata.xml" in archive.namelist()
    assert xlsx.prepare_formula("{=SORT(A1:A3)}") == "_xlfn._xlws.SORT(A1:A3)"
    assert xlsx.prepare_formula("=_xlfn.UNIQUE(A1)") == "_xlfn.UNIQUE(A1)", "already prefixed"


def test_urls_are_links():
    rows = [
        ["https://zs.example.com/a b#part 2"],
        ["mailto:someone@example.com"],
        ["internal:Sheet1!A1"],
        ["https://zs.example.com/" + "a" * xlsx.URL_CHARS],
        ["time 12:30"],
    ]
    cells, links, _archive = read_workbook(write(["Link"], rows))
    assert [cells["A%d" % n].value for n in range(2, 7)] == [
        "https://zs.example.com/a b#part 2",
        "someone@example.com",
        "Sheet1!A1",
        rows[3][0],
        "time 12:30",
    ]
    assert links == {
        "A2": "https://zs.example.com/a%20b#part%202",
        "A3": "mailto:someone@example.com",
        "A4": "#Sheet1!A1",
    }, "a link longer than Excel takes is its text; a colon alone makes no link"


def test_past_a_sheets_links_urls_are_text(monkeypatch):
    monkeypatch.setattr(xlsx, "SHEET_LINKS", 2)
    _cells, links, _archive = read_workbook(write(["Link"], [["https://zs.example.com/%d" % n] for n in range(3)]))
    assert sorted(links) == ["A2", "A3"]


def test_rows_past_the_sheets_last_are_refused(monkeypatch):
    monkeypatch.setattr(xlsx, "SHEET_ROWS", 3)
    read_workbook(write(["Name"], [["a"], ["b"]]))  # header and two rows: the sheet is full
    with pytest.raises(xlsx.TooManyRows) as refused:
        write(["Name"], [["a"], ["b"], ["c"]])
    assert (refused.value.count, refused.value.limit) == (3, 3)


def test_bytes_that_are_not_text_are_refused_with_their_column():
    with pytest.raises(xlsx.UndecodableBinary) as refused:
        write(["Name", "File"], [["a", b"\xff\xfe"]])
    assert refused.value.column == 1


def test_every_declared_part_is_there():
    _cells, _links, archive = read_workbook(write(["Formula", "Link"], [["=UNIQUE(A1:A2)", "https://zs.example.com"]]))
    names = set(archive.namelist())
    types = ET.fromstring(archive.read("[Content_Types].xml"))
    assert {o.get("PartName").lstrip("/") for o in types.iterfind("t:Override", NS)} <= names
    for rels_name in [name for name in names if name.endswith(".rels")]:
        base = posixpath.dirname(posixpath.dirname(rels_name))
        for rel in ET.fromstring(archive.read(rels_name)).iterfind("p:Relationship", NS):
            if rel.get("TargetMode") != "External":
                assert posixpath.normpath(posixpath.join(base, rel.get("Target"))) in names


def test_dates_and_columns_as_excel_counts_them():
    assert xlsx.excel_serial(datetime.date(1900, 2, 28)) == 59
    assert xlsx.excel_serial(datetime.date(1900, 3, 1)) == 61, "after Excel's 29 February 1900"
    assert [xlsx.column_letters(n) for n in (0, 25, 26, 701, 16383)] == ["A", "Z", "AA", "ZZ", "XFD"]
