"""Erasure where the person is, in real Chromium (Debian's package, driven by Playwright) on a
real Odoo 18 with mail, contacts and privacy_lookup: a GDPR officer (not the admin user)
proposes the rules, opens a contact, picks Actions > Erase personal data, reads what each rule
will do, confirms, and watches the erasure's progress on the contact until it is done.

Here rather than in the addon's pytest-odoo suite: the erasure runs as a zero_sudo task once
the confirmation's transaction commits, in cursors of its own; an HttpCase's single test
transaction never commits. A prefork server (tests/live_stack.OdooServer, no daemons needed)
is what users meet.
"""

from __future__ import annotations

import re

import pytest
from browser import chromium, log_in, screenshot
from live_stack import JsonRpc, OdooServer, find_odoo, wait_for
from playwright.sync_api import expect

ODOO = find_odoo()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(ODOO is None, reason="no Odoo 18 found (ODOO_PATH, see README 'Odoo suites'): GDPR browser test not run"),
]

NAME, EMAIL, PHONE = "Zoé Quintana", "zoe.quintana@example.org", "+32 470 55 01 99"
ADDRESSES = 30


@pytest.fixture(scope="module")
def odoo():
    server = OdooServer(ODOO, ["zero_sudo_gdpr", "contacts"])
    try:
        yield serve(server)
    finally:
        server.drop()


def serve(server: OdooServer) -> OdooServer:
    """Install and start ``server``, with an officer and a person to erase. The officer also
    administers Settings: the erasure runs with their rights, and the rules proposed for mail
    reach records (reactions, notifications, followers) only administrators may change."""
    server.install()
    server.start()
    admin = JsonRpc(server.url, server.db, "admin", "admin")
    groups = [
        admin.call_kw("ir.model.data", "check_object_reference", [module, xmlid])[1]
        for module, xmlid in (
            ("base", "group_system"),
            ("base", "group_partner_manager"),
            ("zero_sudo_gdpr", "group_gdpr_officer"),
        )
    ]
    admin.call_kw(
        "res.users",
        "create",
        [{"name": "Olga Officer", "login": "officer", "password": "officer-pass", "groups_id": [(6, 0, groups)]}],
    )
    person = admin.call_kw("res.partner", "create", [{"name": NAME, "email": EMAIL, "phone": PHONE, "street": "Rue Haute 4"}])
    admin.call_kw(
        "res.partner",
        "create",
        [
            [
                {"name": "%s (address %d)" % (NAME, n), "type": "delivery", "email": EMAIL, "parent_id": person}
                for n in range(ADDRESSES)
            ]
        ],
    )
    admin.call_kw("res.partner", "message_post", [[person]], {"body": "Called %s on %s" % (NAME, PHONE)})
    server.admin, server.person = admin, person
    return server


@pytest.fixture
def page(odoo):
    with chromium() as browser:
        yield log_in(browser, odoo.url, "officer", "officer-pass")


def test_an_officer_erases_a_contact_from_its_form_and_sees_the_progress(odoo, page):
    # The officer has the installed models proposed as rules, and activates them all.
    page.goto(odoo.url + "/odoo/action-zero_sudo_gdpr.action_rules")
    page.locator(".o_list_button_propose, button", has_text="Propose rules").first.click()
    expect(page.locator(".o_data_row", has_text="the contact itself")).to_be_visible()
    expect(page.get_by_role("cell", name="Message: Author", exact=True)).to_be_visible()
    screenshot(page, "gdpr_proposed_rules")
    page.locator("thead .o_list_record_selector input").check()
    page.locator(".o_list_buttons button, .o_control_panel button", has_text="Activate").first.click()
    expect(page.locator(".o_data_row")).to_have_count(0)  # the "Proposed, to review" filter: none left

    # On the contact: Actions > Erase personal data.
    page.goto(odoo.url + "/odoo/action-contacts.action_contacts/%d" % odoo.person)
    expect(page.locator(".o_form_view .o_field_widget[name=name] input")).to_have_value(NAME)
    page.locator(".o_cp_action_menus button").first.click()
    page.locator(".o-dropdown-item", has_text="Erase personal data").click()
    dialog = page.locator(".modal:has(.o_field_widget[name=line_ids])")
    expect(dialog).to_be_visible()
    addresses = dialog.locator(".o_data_row", has_text="the person's addresses")
    expect(addresses.locator("td[name=count]")).to_have_text(str(ADDRESSES))
    expect(addresses.locator("td[name=what]")).to_contain_text("Anonymize Name, Email")
    expect(dialog.locator(".o_data_row", has_text="the contact itself").locator("td[name=count]")).to_have_text("1")
    expect(dialog.locator(".o_data_row", has_text="Document Followers: Related Partner").locator("td[name=what]")).to_have_text(
        "Delete the records"
    )
    screenshot(page, "gdpr_erase_confirmation")
    dialog.locator(".modal-footer button", has_text="Erase").click()
    expect(page.locator(".o_notification", has_text="the contact shows its progress")).to_be_visible()

    # The contact shows the erasure, and follows it to the end as the officer reloads.
    button = page.locator(".o_zs_gdpr_erasure")
    expect(button).to_be_visible()
    expect(button).to_contain_text(re.compile(r"Erasure (queued|running|done)"))
    screenshot(page, "gdpr_contact_erasure_started")

    def done() -> bool:
        page.reload()
        page.locator(".o_form_view").wait_for()
        return "Erasure done" in button.inner_text()

    wait_for(done, 60, "the contact to show the erasure done", lambda: odoo.output.tail())
    expect(button).to_contain_text("100%")
    expect(page.locator(".o_form_view .o_field_widget[name=name] input")).to_have_value("[erased]")
    screenshot(page, "gdpr_contact_erasure_done")
    button.click()
    expect(page.locator(".o_form_view .o_field_widget[name=state] .o_arrow_button_current")).to_have_text("Done")
    expect(page.locator(".o_form_view .o_field_widget[name=line_ids] .o_data_row").first).to_be_visible()
    screenshot(page, "gdpr_request_done")

    found = odoo.admin.call_kw("res.partner", "search_count", [[("email", "=", EMAIL)]], {"context": {"active_test": False}})
    assert found == 0, "neither the person nor their addresses keep the email"
