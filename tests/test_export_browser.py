"""The export dialog's streamed CSV, in real Chromium (Debian's package, driven by Playwright),
on a real Odoo 18 server: from the contacts list, select all, Export, "CSV (streamed)", and the
browser's download manager receives a file holding every contact.

Here rather than in the addon's pytest-odoo suite: an HttpCase serves from one thread inside
the test's transaction, while a streamed export runs on a cursor of its own as the response is
sent; a prefork server (tests/live_stack.OdooServer, without the daemons: none is needed)
is what users meet.
"""

from __future__ import annotations

import csv
import io

import pytest
from browser import chromium, log_in, screenshot
from live_stack import JsonRpc, OdooServer, find_odoo
from playwright.sync_api import expect

ODOO = find_odoo()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        ODOO is None, reason="no Odoo 18 found (ODOO_PATH, see README 'Odoo suites'): export browser test not run"
    ),
]

CONTACTS = 2500  # more than a page of the list (80) and than a chunk of the export (1 000)


@pytest.fixture(scope="module")
def odoo():
    server = OdooServer(ODOO, ["zero_sudo_export"])
    try:
        server.install()
        server.start()
        admin = JsonRpc(server.url, server.db, "admin", "admin")
        admin.call_kw(
            "res.partner", "create", [[{"name": "Browser Export %04d" % n, "email": "=cmd|%d" % n} for n in range(CONTACTS)]]
        )
        server.admin = admin
        yield server
    finally:
        server.drop()


@pytest.fixture
def page(odoo):
    with chromium() as browser:
        yield log_in(browser, odoo.url, "admin", "admin", accept_downloads=True)


def test_select_all_export_streamed_csv_downloads_every_contact(odoo, page, tmp_path):
    page.goto(odoo.url + "/odoo/action-base.action_partner_form?view_type=list")
    page.wait_for_selector(".o_list_view .o_data_row")
    page.locator("thead .o_list_record_selector input").check()
    page.locator(".o_list_select_domain").click()  # "Select all": the whole domain, not the page
    page.locator(".o_control_panel .o_cp_action_menus button").first.click()
    page.locator(".o-dropdown-item", has_text="Export").click()
    dialog = page.locator(".modal .o_export_data_dialog, .modal:has(.o_export_format)").first
    expect(dialog).to_be_visible()
    page.locator(".o_zs_export_streamed label", has_text="CSV").click()
    expect(page.locator("#o_radiozs_csv")).to_be_checked()
    screenshot(page, "export_dialog_streamed_csv")

    with page.expect_download() as started:
        page.locator(".modal-footer button", has_text="Export").first.click()
    download = started.value
    assert download.failure() is None
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    screenshot(page, "export_dialog_after_download")

    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    expected = odoo.admin.call_kw("res.partner", "search_read", [[]], {"fields": ["complete_name"]})
    assert download.suggested_filename == "Contact (res.partner).csv"
    header = rows[0]
    assert {"Complete Name", "Email"} <= set(header), "the dialog's columns, with their labels"
    assert len(rows) - 1 == len(expected) > CONTACTS, "one row per contact of the list, the header apart"
    names = [row[header.index("Complete Name")] for row in rows[1:]]
    assert sorted(names) == sorted(partner["complete_name"] for partner in expected)
    emails = {row[header.index("Email")] for row in rows[1:]}
    assert "'=cmd|7" in emails, "formula-looking cells are quoted, as Odoo's CSV does"
