import datetime
import json
import os

from odoo import http
from odoo.exceptions import AccessError
from odoo.tests import HttpCase, TransactionCase, new_test_user, tagged
from odoo.tools import mute_logger

from odoo.addons.zero_sudo.tests.common import wait_until

from ..tools.streaming import render

FIELDS = ["name", "parent_id.name", "parent_id.country_id.code", "category_id"]


@tagged("post_install", "-at_install", "zero_sudo")
class TestExportRows(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        belgium = cls.env.ref("base.be")
        cls.company = cls.env["res.partner"].create({"name": "ZS Parent", "is_company": True, "country_id": belgium.id})
        cls.tag = cls.env["res.partner.category"].create({"name": "zs-tag"})
        cls.people = cls.env["res.partner"].create(
            [{"name": "ZS Person %d" % n, "parent_id": cls.company.id, "category_id": [(6, 0, cls.tag.ids)]} for n in range(7)]
        )
        cls.domain = [("name", "like", "ZS Person")]

    def export(self, chunk_size=1000, env=None):
        return list((env or self.env)["zero_sudo.export"]._export_rows("res.partner", self.domain, FIELDS, chunk_size))

    def test_rows_hold_plain_related_and_relational_values(self):
        rows = self.export()
        self.assertEqual([row["id"] for row in rows], self.people.ids)
        self.assertEqual(
            rows[0],
            {
                "id": self.people[0].id,
                "name": "ZS Person 0",
                "parent_id.name": "ZS Parent",
                "parent_id.country_id.code": "BE",
                "category_id": self.tag.ids,
            },
        )

    def test_values_are_those_read_gives_whatever_the_field_type(self):
        self.people[0].write({"color": 3, "partner_latitude": 50.5, "active": False, "comment": "<p>hi</p>"})
        fields = [
            "name",
            "active",
            "color",
            "partner_latitude",
            "type",
            "write_date",
            "comment",
            "parent_id",
            "category_id",
            "email",
            "display_name",
        ]
        domain = [("id", "in", self.people.ids), ("active", "in", (True, False))]
        rows = list(self.env["zero_sudo.export"]._export_rows("res.partner", domain, fields))
        expected = self.people.with_context(active_test=False).read(fields, load=None)
        self.assertEqual(json.loads(json.dumps(rows, default=str)), json.loads(json.dumps(expected, default=str)))
        self.assertEqual((rows[0]["color"], rows[0]["active"], rows[1]["email"]), (3, False, False))
        rate = self.env["res.currency.rate"].create(
            {"name": "2026-11-29", "rate": 1.25, "currency_id": self.env.ref("base.EUR").id}
        )
        rows = list(
            self.env["zero_sudo.export"]._export_rows(
                "res.currency.rate", [("id", "=", rate.id)], ["name", "rate", "currency_id"]
            )
        )
        self.assertEqual(
            rows, [{"id": rate.id, "name": datetime.date(2026, 11, 29), "rate": 1.25, "currency_id": rate.currency_id.id}]
        )
        self.assertEqual(json.loads(b"".join(render(rows, "json")))[0]["name"], "2026-11-29")

    def test_related_values_follow_record_rules_not_the_active_flag(self):
        other = self.env["res.company"].create({"name": "ZS Other Company"})
        hidden = self.env["res.partner"].create({"name": "ZS Hidden Parent", "is_company": True, "company_id": other.id})
        archived = self.env["res.partner"].create({"name": "ZS Archived Parent", "is_company": True, "active": False})
        self.people[0].parent_id = hidden
        self.people[1].parent_id = archived
        self.people[:2].company_id = False
        clerk = new_test_user(
            self.env,
            "zs_export_clerk",
            groups="base.group_user",
            company_id=self.env.company.id,
            company_ids=[(6, 0, self.env.company.ids)],
        )
        rows = self.export(env=self.env(user=clerk))
        self.assertEqual([row["parent_id.name"] for row in rows[:3]], [None, "ZS Archived Parent", "ZS Parent"])
        self.assertEqual(rows[0]["parent_id.country_id.code"], None, "nothing of a hidden record leaks through its relations")

    def test_keyset_chunks_give_the_same_rows(self):
        self.assertEqual(self.export(chunk_size=2), self.export(chunk_size=1000))

    def test_queries_per_chunk_do_not_grow_with_the_chunk(self):
        def queries(chunk_size):
            self.env.invalidate_all()
            before = self.cr.sql_log_count
            rows = self.export(chunk_size)
            chunks = -(-len(rows) // chunk_size) + 1  # the last, empty search counts too
            return (self.cr.sql_log_count - before) / chunks

        small, large = queries(2), queries(7)
        self.assertLessEqual(large, small + 1, "a chunk of 7 costs about what a chunk of 2 does")
        self.assertLessEqual(large, 8, "one search, one read, one per relation")

    def test_the_users_rights_apply(self):
        portal = new_test_user(self.env, "zs_export_portal", groups="base.group_portal")
        with self.assertRaises(AccessError):  # portal users have no access to background tasks
            list(self.env(user=portal)["zero_sudo.export"]._export_rows("zero_sudo.task", [], ["name"]))
        with self.assertRaises(ValueError):
            list(self.env["zero_sudo.export"]._export_rows("res.partner", [], ["no_such_field"]))
        with self.assertRaises(ValueError):
            list(self.env["zero_sudo.export"]._export_rows("res.partner", [], ["category_id.name"]))

    def test_only_a_complete_export_becomes_an_attachment(self):
        exporter = self.env["zero_sudo.export"]
        attachment = exporter._export_to_attachment("res.partner", self.domain, FIELDS, "json", "people.json")
        self.assertEqual(json.loads(attachment.raw), self.export())
        self.assertEqual(attachment.mimetype, "application/json")
        before = set(os.listdir(self.env["ir.attachment"]._filestore()))
        count = self.env["ir.attachment"].search_count([])
        with self.assertRaises(ValueError):
            exporter._export_to_attachment("res.partner", self.domain, ["no_such_field"], "json", "broken.json")
        self.assertEqual(self.env["ir.attachment"].search_count([]), count)
        self.assertEqual(set(os.listdir(self.env["ir.attachment"]._filestore())), before, "no temporary file left behind")


@tagged("post_install", "-at_install", "zero_sudo")
class TestExportEndpoint(HttpCase):
    def setUp(self):
        super().setUp()
        self.env["res.partner"].create([{"name": "ZS Http %d" % n} for n in range(5)])
        self.authenticate("admin", "admin")

    def get(self, query):
        return self.url_open("/zero_sudo/export/res.partner?" + query)

    def test_streams_a_valid_json_array_and_ndjson(self):
        domain = json.dumps([["name", "like", "ZS Http"]])
        response = self.get("fields=name,country_id.code&chunk=2&domain=" + domain)
        self.assertEqual(response.status_code, 200, response.text[:300])
        self.assertEqual([row["name"] for row in response.json()], ["ZS Http %d" % n for n in range(5)])
        response = self.get("fields=name&format=ndjson&domain=" + domain)
        self.assertEqual(len(response.text.splitlines()), 5)

    def test_malformed_requests_get_precise_errors(self):
        for query, status in [
            ("fields=name&format=xml", 400),
            ("fields=", 400),
            ("fields=name&domain=[oops", 400),
            ("fields=name&domain={}", 400),
            ("fields=no_such_field", 400),
            ("fields=name&chunk=many", 400),
        ]:
            with self.subTest(query=query):
                self.assertEqual(self.get(query).status_code, status)
        self.assertEqual(self.url_open("/zero_sudo/export/no.such.model?fields=name").status_code, 404)

    def test_queuing_an_export_needs_the_csrf_token(self):
        tasks = self.env["zero_sudo.task"]
        count = tasks.search_count([])
        url = "/zero_sudo/export/res.partner/attachment"
        with mute_logger("odoo.http"):
            refused = self.url_open(url, data={"fields": "name"})
        self.assertEqual(refused.status_code, 400, "a cross-site form post was accepted")
        self.assertEqual(tasks.search_count([]), count)
        accepted = self.url_open(url, data={"fields": "name", "csrf_token": http.Request.csrf_token(self)})
        self.assertEqual(accepted.status_code, 202, accepted.text[:300])
        status_url = accepted.json()["status"]
        wait_until(lambda: self.url_open(status_url).json()["state"] == "done", what="the queued export to finish")
