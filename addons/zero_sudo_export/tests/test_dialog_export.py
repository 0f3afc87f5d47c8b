import csv
import datetime
import html
import io
import json
from types import SimpleNamespace
from unittest.mock import patch

import openpyxl

from odoo import http
from odoo.exceptions import UserError
from odoo.http import _request_stack
from odoo.tests import BaseCase, HttpCase, TransactionCase, new_test_user, tagged
from odoo.tools import mute_logger

from odoo.addons.web.controllers.export import ExcelExport
from odoo.addons.zero_sudo.tests.common import wait_until

from ..models.dialog_export import BACKGROUND_THRESHOLD_PARAM, READY, DialogExport, Exporter
from ..tools import xlsx
from ..tools.dialog import csv_cell, csv_pieces, json_keys, json_pieces

PARTNER_FIELDS = [
    ("name", "Name", "char"),
    ("type", "Address Type", "selection"),
    ("parent_id", "Related Company", "many2one"),
    ("title", "Title", "many2one"),
    ("country_id/name", "Country/Country Name", "char"),
    ("category_id", "Tags", "many2many"),
    ("child_ids/name", "Contact/Name", "char"),
    ("child_ids/type", "Contact/Address Type", "selection"),
    ("create_date", "Created on", "datetime"),
    ("ref", "Reference", "char"),
    ("website", "Website Link", "char"),
]
CURRENCY_FIELDS = [
    ("name", "Currency", "char"),
    ("currency_unit_label", "Currency Unit", "char"),
    ("position", "Symbol Position", "selection"),
    ("rate_ids/name", "Rates/Date", "date"),
    ("rate_ids/company_rate", "Rates/Technical Rate", "float"),
    ("rate_ids/company_id", "Rates/Company", "many2one"),
    ("write_date", "Last Updated on", "datetime"),
]


def payload(model, fields, domain=(), ids=False, import_compat=False, context=None):
    """What the dialog posts (ListController.downloadExport)."""
    exported = [{"name": name, "label": label, "type": kind} for name, label, kind in fields]
    if import_compat:
        exported.insert(0, {"name": "id", "label": "External ID"})
    return json.dumps(
        {
            "import_compat": import_compat,
            "context": context or {},
            "domain": list(domain),
            "fields": exported,
            "groupby": [],
            "ids": ids,
            "model": model,
        }
    )


@tagged("post_install", "-at_install", "zero_sudo")
class TestDialogFormats(BaseCase):
    def test_cells_are_written_as_odoo_writes_them(self):
        self.assertEqual(
            [csv_cell(v) for v in (None, False, 0, b"ab", "=SUM(A1)", "-3", "+x", "ok")],
            ["", "", 0, "ab", "'=SUM(A1)", "'-3", "'+x", "ok"],
        )
        body = b"".join(csv_pieces(["A", "B"], ([n, "x"] for n in range(1200)))).decode()
        self.assertEqual(list(csv.reader(io.StringIO(body)))[:2], [["A", "B"], ["0", "x"]])
        self.assertEqual(len(body.splitlines()), 1201)

    def test_json_objects_keep_every_column(self):
        self.assertEqual(json_keys(["Name", "Tags", "Name"]), ["Name", "Tags", "Name (2)"])
        rows = json.loads(b"".join(json_pieces(["Name", "Name"], [["a", "b"], ["c", False]])))
        self.assertEqual(rows, [{"Name": "a", "Name (2)": "b"}, {"Name": "c", "Name (2)": False}])
        self.assertEqual(json.loads(b"".join(json_pieces(["A"], []))), [])


class DialogCase(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["res.lang"]._activate_lang("fr_FR")
        doctor = cls.env.ref("base.res_partner_title_doctor")
        doctor.with_context(lang="fr_FR").name = "Docteur"
        cls.env.ref("base.be").with_context(lang="fr_FR").name = "Belgique"
        tag = cls.env["res.partner.category"].create({"name": "zs-dialog"})
        cls.company = cls.env["res.partner"].create(
            {
                "name": "ZS Dialog Co",
                "is_company": True,
                "country_id": cls.env.ref("base.be").id,
                "category_id": [(6, 0, tag.ids)],
                "ref": "=1+1",
                "website": "https://zs.example.com",
            }
        )
        cls.env["res.partner"].create(
            [
                {
                    "name": "ZS Dialog Person %d" % n,
                    "parent_id": cls.company.id,
                    "title": doctor.id,
                    "type": ("invoice", "delivery", "other")[n % 3],
                    "country_id": cls.env.ref("base.be").id,
                }
                for n in range(5)
            ]
        )
        cls.domain = [["name", "like", "ZS Dialog"]]
        eur = cls.env.ref("base.EUR")
        eur.active = True
        cls.env["res.currency.rate"].create(
            [{"name": "2026-11-%02d" % day, "rate": 1 + day / 100, "currency_id": eur.id} for day in (1, 2)]
        )
        cls.clerk = new_test_user(cls.env, "zs_dialog_clerk", groups="base.group_user,base.group_allow_export")

    def post(self, fmt, data, login="admin"):
        self.authenticate(login, login)
        with mute_logger("odoo.addons.web.controllers.export", "odoo.addons.zero_sudo_export.controllers.dialog", "odoo.http"):
            return self.url_open("/web/export/%s" % fmt, data={"data": data, "csrf_token": http.Request.csrf_token(self)})

    def plan(self, data, fmt="zs_csv"):
        return self.make_jsonrpc_request("/zero_sudo/export/dialog/plan", {"data": data, "format": fmt})


@tagged("post_install", "-at_install", "zero_sudo")
class TestDialogExport(DialogCase):
    def assert_same_as_odoo(self, data):
        odoo_csv, streamed_csv = self.post("csv", data), self.post("zs_csv", data)
        self.assertEqual(streamed_csv.status_code, 200, streamed_csv.text[:500])
        self.assertEqual(streamed_csv.headers["Content-Disposition"], odoo_csv.headers["Content-Disposition"])
        rows = list(csv.reader(io.StringIO(streamed_csv.content.decode())))
        self.assertEqual(rows, list(csv.reader(io.StringIO(odoo_csv.content.decode()))))
        self.assertEqual(streamed_csv.content, odoo_csv.content, "byte for byte")

        odoo_xlsx, streamed_xlsx = self.post("xlsx", data), self.post("zs_xlsx", data)
        self.assertEqual(streamed_xlsx.status_code, 200, streamed_xlsx.text[:500])
        self.assertEqual(sheet(streamed_xlsx.content), sheet(odoo_xlsx.content))
        return rows

    def test_streamed_csv_and_xlsx_equal_odoos_cell_for_cell(self):
        for import_compat in (False, True):
            with self.subTest(import_compat=import_compat):
                rows = self.assert_same_as_odoo(
                    payload("res.partner", PARTNER_FIELDS, self.domain, import_compat=import_compat, context={"lang": "fr_FR"})
                )
                self.assertEqual(len(rows), 1 + 6 + 4, "the header, six partners, four more lines for the company's contacts")
                flat = [cell for row in rows for cell in row]
                self.assertIn("Docteur", flat, "translated values are in the dialog's language")
                self.assertIn("Belgique", flat)
                self.assertIn("'=1+1", flat, "a formula is quoted, as Odoo does")
        rows = self.assert_same_as_odoo(payload("res.currency", CURRENCY_FIELDS, [["name", "=", "EUR"]]))
        self.assertIn("2026-11-02", [row[3] for row in rows], "dates as Odoo writes them")

    def test_selected_records_export_in_the_order_given(self):
        partners = self.env["res.partner"].search(self.domain)
        data = payload("res.partner", PARTNER_FIELDS[:3], ids=list(reversed(partners.ids)))
        rows = self.assert_same_as_odoo(data)
        self.assertEqual([row[0] for row in rows[1:]], list(reversed(partners.mapped("name"))))

    def test_streamed_json_holds_the_same_rows(self):
        objects = self.post("zs_json", payload("res.partner", PARTNER_FIELDS, self.domain)).json()
        self.assertEqual(list(objects[0]), [label for _name, label, _type in PARTNER_FIELDS])
        partners = self.env["res.partner"].with_context(import_compat=False).search(self.domain)
        expected = json.loads(
            json.dumps(partners.export_data([name for name, _label, _type in PARTNER_FIELDS])["datas"], default=str)
        )
        self.assertEqual([list(obj.values()) for obj in objects], expected)

    def test_a_model_the_user_cannot_read_is_refused(self):
        data = payload("ir.config_parameter", [("key", "Key", "char"), ("value", "Value", "text")])
        for fmt in ("zs_csv", "zs_xlsx", "zs_json"):
            response = self.post(fmt, data, login="zs_dialog_clerk")
            self.assertEqual(response.status_code, 500)
            text = html.unescape(response.text)
            error = json.loads(text[text.index("{") : text.rindex("}") + 1])
            self.assertEqual(error["data"]["name"], "odoo.exceptions.AccessError")
            self.assertNotIn("web.base.url", response.text)
        self.authenticate("zs_dialog_clerk", "zs_dialog_clerk")
        with self.assertRaises(Exception) as refused, mute_logger("odoo.http"):
            self.plan(data)
        self.assertIn("AccessError", str(refused.exception))

    def test_users_without_the_export_right_are_refused(self):
        new_test_user(self.env, "zs_dialog_viewer", groups="base.group_user")
        response = self.post("zs_csv", payload("res.partner", PARTNER_FIELDS[:1], self.domain), login="zs_dialog_viewer")
        self.assertEqual(response.status_code, 500)
        self.assertIn("rights to export", response.text)

    def test_a_record_rule_hides_rows_from_the_stream_as_from_the_list(self):
        group = self.env["res.groups"].create({"name": "ZS dialog rule group", "users": [(4, self.clerk.id)]})
        self.env["ir.rule"].create(
            {
                "name": "zs dialog: no secret partners",
                "model_id": self.env.ref("base.model_res_partner").id,
                "groups": [(6, 0, group.ids)],
                "domain_force": "[('name', 'not like', 'Secret')]",
            }
        )
        self.env["res.partner"].create({"name": "ZS Dialog Secret"})
        listed = self.env["res.partner"].with_user(self.clerk).search(self.domain)
        self.assertEqual(len(listed), 6)
        data = payload("res.partner", PARTNER_FIELDS[:1], self.domain)
        for fmt in ("zs_csv", "zs_xlsx"):
            response = self.post(fmt, data, login="zs_dialog_clerk")
            names = [row[0] for row in (csv_rows(response.content) if fmt == "zs_csv" else sheet(response.content)[0])[1:]]
            self.assertEqual(names, listed.mapped("name"))
            self.assertNotIn("ZS Dialog Secret", names)
        self.assertIn("ZS Dialog Secret", [row[0] for row in csv_rows(self.post("zs_csv", data).content)], "admin sees it")

    def test_the_dialog_offers_the_streamed_formats(self):
        self.authenticate("admin", "admin")
        tags = [fmt["tag"] for fmt in self.make_jsonrpc_request("/web/export/formats", {})]
        self.assertEqual(tags, ["xlsx", "csv", "zs_csv", "zs_xlsx", "zs_json"])
        self.assertEqual(self.plan(payload("res.partner", PARTNER_FIELDS[:1], self.domain)), {"mode": "stream", "records": 6})


@tagged("post_install", "-at_install", "zero_sudo")
class TestBackgroundExport(DialogCase):
    def test_past_the_threshold_the_export_runs_in_the_background(self):
        self.env["ir.config_parameter"].set_param(BACKGROUND_THRESHOLD_PARAM, "3")
        data = payload("res.partner", PARTNER_FIELDS, self.domain)
        self.authenticate("admin", "admin")
        plan = self.plan(data)
        self.assertEqual((plan["mode"], plan["records"]), ("background", 6))
        # Polled over HTTP: the task's cursor and this thread's share one connection in tests.
        status = "/zero_sudo/task/%d" % plan["task"]
        wait_until(lambda: self.url_open(status).json()["state"] in ("done", "failed"), what="the background export")
        self.assertEqual(self.url_open(status).json()["state"], "done", self.url_open(status).text)
        attachment = self.env["ir.attachment"].search([("name", "=", "Contact (res.partner).csv")], order="id desc", limit=1)
        self.assertEqual(attachment.raw, self.post("zs_csv", data).content)
        self.assertEqual(attachment.create_uid, self.env.ref("base.user_admin"))


@tagged("post_install", "-at_install", "zero_sudo")
class TestBackgroundNotification(TransactionCase):
    def test_without_zero_sudo_live_the_bus_says_the_file_is_ready(self):
        self.env["res.partner"].create({"name": "ZS Bus Person"})
        data = json.loads(payload("res.partner", PARTNER_FIELDS[:2], [["name", "=", "ZS Bus Person"]]))
        with patch.object(Exporter, "_live_notifications", lambda self: False):
            attachment = self.env["zero_sudo.export"]._dialog_to_attachment(data, "zs_xlsx")
        self.assertEqual(attachment.name, "Contact (res.partner).xlsx")
        self.assertEqual(sheet(attachment.raw)[0][1][:1], ["ZS Bus Person"])
        sent = [json.loads(values["message"]) for values in self.env.cr.precommit.data.get("bus.bus.values", [])]
        ready = [message["payload"] for message in sent if message["type"] == READY]
        self.assertEqual(ready[-1]["url"], "/web/content/%d?download=true" % attachment.id)


# One of each kind of cell export_data gives, and of the text xlsxwriter reads as more than text.
EVERY_KIND_OF_CELL = [
    "plain", "", None, False, True, 0, 7, 2**40, 1.5, 0.1, 12345.678, -1e-7,
    datetime.date(2026, 11, 29), datetime.datetime(2026, 11, 29, 8, 0, 1), datetime.date(1900, 3, 1),
    "=1+1", "{=SUM(A1:A2)}", "=UNIQUE(A1:A3)", "=SORT(A1:A3)", '=A1&"<x>"', "{not a formula}", "time 12:30",
    "https://zs.example.com/a b#part 2", "mailto:zs@example.com", "internal:Sheet1!A1",
    "external:c:/temp/book.xlsx#Sheet1!A1", "external:./book.xlsx", "https://zs.example.com/" + "a" * 300,
    " leading", "trailing ", "line\r\nbreak", "bell\x07", "a & b <c>", "é 漢字 😀", "x" * 40_000, b"Ynl0ZXM=", ["a", 1],
]  # fmt: skip


@tagged("post_install", "-at_install", "zero_sudo")
class TestStreamedXlsxCells(TransactionCase):
    fields = [
        {"name": "name", "label": "Name", "type": "char"},
        {"name": "amount", "label": "Amount", "type": "monetary"},
        {"name": "rate", "label": "Rate", "type": "float"},
    ]

    headers = ["Name", "=Header", "https://zs.example.com/header"]  # headers are written as cells are

    def streamed(self, rows, headers=None):
        headers = headers or self.headers
        export = DialogExport(self.env["res.partner"], [f["name"] for f in self.fields], headers, self.fields, [], [])
        return b"".join(self.env["zero_sudo.export"]._dialog_xlsx(export, iter(rows)))

    def test_every_kind_of_cell_is_written_as_odoos_writer_writes_it(self):
        rows = [[value] * 3 for value in EVERY_KIND_OF_CELL]
        # Odoo's writer reads request.env (the currencies' decimals, its message for a long cell).
        _request_stack.push(SimpleNamespace(env=self.env))
        self.addCleanup(_request_stack.pop)
        self.assertEqual(sheet(self.streamed(rows)), sheet(ExcelExport().from_data(self.fields, self.headers, rows)))

    def test_what_a_sheet_cannot_hold_is_refused_with_odoos_messages(self):
        with patch.object(xlsx, "SHEET_ROWS", 3), self.assertRaises(UserError) as refused:
            self.streamed([["a", 1.0, 1.0]] * 3)
        self.assertIn("too many rows (3 rows, limit: 3)", str(refused.exception))
        with self.assertRaises(UserError) as refused:
            self.streamed([["a", b"\xff\xfe", 1.0]], headers=["Name", "Attachment", "Rate"])
        self.assertIn("case for Attachment", str(refused.exception))


def csv_rows(content):
    return list(csv.reader(io.StringIO(content.decode())))


def sheet(content):
    """Every cell's value, then its number format, boldness and link, row by row, of the
    workbook's first sheet."""
    rows = list(openpyxl.load_workbook(io.BytesIO(content)).worksheets[0].iter_rows())
    return [[cell.value for cell in row] for row in rows], [
        [(cell.number_format, bool(cell.font.bold), link(cell)) for cell in row] for row in rows
    ]


def link(cell):
    return cell.hyperlink and (cell.hyperlink.target, cell.hyperlink.location)
