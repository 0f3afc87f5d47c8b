"""Erasure where the person is: the contact's 'Erase personal data' action (officers only),
its confirmation, and the erasure's progress shown on the contact."""

from odoo.exceptions import ValidationError
from odoo.tests import TransactionCase, new_test_user, tagged

from .test_erasure import _make_person


@tagged("post_install", "-at_install", "zero_sudo")
class TestContactErasure(TransactionCase):
    def setUp(self):
        super().setUp()
        self.officer = new_test_user(
            self.env, "zs_gdpr_officer", groups="base.group_user,base.group_partner_manager,zero_sudo_gdpr.group_gdpr_officer"
        )
        self.clerk = new_test_user(self.env, "zs_gdpr_clerk2", groups="base.group_user,base.group_partner_manager")
        self.person = _make_person(self.env, contacts=4, accounts=2)

    def _wizard(self, user, partners):
        return (
            self.env["zero_sudo.gdpr.erase.wizard"]
            .with_user(user)
            .with_context(active_model="res.partner", active_ids=partners.ids)
            .create({})
        )

    def test_the_action_is_on_contact_forms_and_lists_for_officers_only(self):
        def erase_action(user):
            bindings = self.env["ir.actions.actions"].with_user(user).get_bindings("res.partner")["action"]
            erase = self.env.ref("zero_sudo_gdpr.action_erase_wizard").id
            return [action for action in bindings if action["id"] == erase]

        [action] = erase_action(self.officer)
        self.assertEqual(action["name"], "Erase personal data")
        self.assertEqual(set(action["binding_view_types"].split(",")), {"form", "list"})
        self.assertEqual(erase_action(self.clerk), [])
        self.assertNotIn(
            "zs_gdpr_status", self.env["res.partner"].with_user(self.clerk).fields_get(), "a clerk does not see erasures"
        )

    def test_the_confirmation_lists_what_each_active_rule_does_and_how_many_records(self):
        wizard = self._wizard(self.officer, self.person)
        self.assertEqual(
            [(line.rule_id.name, line.what, line.count) for line in wizard.line_ids],
            [("Contacts", "Anonymize Name, Email, Phone", 4), ("Bank accounts", "Delete the records", 2)],
        )
        self.assertEqual(wizard.total, 6)
        other = _make_person(self.env, contacts=1, accounts=1)  # two people chosen in the list: counts add up
        self.assertEqual(self._wizard(self.officer, self.person | other).line_ids.mapped("count"), [5, 3])

    def test_erasing_queues_a_request_whose_progress_the_contact_shows(self):
        self.assertFalse(self.person.with_user(self.officer).zs_gdpr_status)
        result = self._wizard(self.officer, self.person).action_erase()
        self.assertEqual(result["params"]["next"]["tag"], "soft_reload", "back to the contact, reloaded")
        contact = self.person.with_user(self.officer)
        self.assertEqual((contact.zs_gdpr_status, contact.zs_gdpr_progress), ("Erasure queued", "0%"))
        request = contact.zs_gdpr_request_ids
        self.assertEqual(request.line_ids.mapped("total"), [4, 2])
        request.line_ids[0]._erase_chunk(3)  # what the task does, chunk by chunk
        contact.invalidate_recordset()
        self.assertEqual(contact.zs_gdpr_progress, "50%")
        self.assertEqual(contact.action_open_zs_gdpr_requests()["res_id"], request.id)

    def test_without_active_rules_the_confirmation_says_so_and_erases_nothing(self):
        self.env["zero_sudo.gdpr.rule"].search([]).write({"active": False})
        wizard = self._wizard(self.officer, self.person)
        self.assertFalse(wizard.line_ids)
        with self.assertRaisesRegex(Exception, "No erasure rule is active"):
            wizard.action_erase()

    def test_a_contact_is_anonymized_never_deleted_by_its_own_rule(self):
        values = {"name": "Me", "model_id": self.env.ref("base.model_res_partner").id, "partner_field": "id"}
        self.env["zero_sudo.gdpr.rule"].create({**values, "action": "anonymize", "field_names": "name"})
        with self.assertRaises(ValidationError):
            self.env["zero_sudo.gdpr.rule"].create({**values, "action": "delete"})

    def test_propose_files_inactive_rules_for_the_officer_to_review(self):
        Rule = self.env["zero_sudo.gdpr.rule"].with_user(self.officer)
        active_before = Rule.search([])
        action = Rule.action_propose()
        self.assertEqual((action["context"], action["target"]), ({"search_default_proposed": 1}, "main"))
        self.assertEqual(Rule.search([]), active_before, "nothing proposed is active yet")
        proposed = Rule.with_context(active_test=False).search([("proposed", "=", True)])
        contact = proposed.filtered(lambda rule: rule.partner_field == "id")
        self.assertEqual((contact.model, contact.action, contact.sequence), ("res.partner", "anonymize", 1000))
        links = {(rule.model, rule.partner_field) for rule in proposed}
        self.assertNotIn(("res.partner.bank", "partner_id"), links, "a link some rule covers already is not proposed again")
        self.assertNotIn(("res.partner", "parent_id"), links)
        proposed.action_activate()
        self.assertEqual(Rule.search([]), active_before | proposed)

    def test_the_confirmation_says_which_rules_the_officer_may_not_apply_and_refuses_them(self):
        self.env["zero_sudo.gdpr.rule"].create(
            {
                "name": "Delete addresses",
                "model_id": self.env.ref("base.model_res_partner").id,
                "partner_field": "parent_id",
                "action": "delete",
            }
        )
        junior = new_test_user(self.env, "zs_gdpr_junior", groups="base.group_user,zero_sudo_gdpr.group_gdpr_officer")
        wizard = self._wizard(junior, self.person)
        refused = wizard.line_ids.filtered(lambda line: not line.allowed)
        self.assertEqual(
            [(line.rule_id.name, line.count) for line in refused],
            [("Contacts", 4), ("Bank accounts", 2), ("Delete addresses", 4)],
        )
        with self.assertRaisesRegex(Exception, "you may not do what these rules do: Contacts, Bank accounts, Delete addresses"):
            wizard.action_erase()
        self.assertFalse(self.env["zero_sudo.gdpr.request"].search([("partner_id", "=", self.person.id)]))
