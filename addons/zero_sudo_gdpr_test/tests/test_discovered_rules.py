"""Rules discovered on a database with mail, contacts and privacy_lookup: once the officer
activates what 'Propose rules' proposes, an erasure leaves the person's name, email and phone
in no text of any record linked to them, and Odoo's privacy log records the erasure."""

from odoo.tests import TransactionCase, tagged

NAME, EMAIL, PHONE = "Zoé Quintana-Erasmus", "zoe.quintana@example.org", "+32 470 55 01 99"
NEEDLES = (NAME.lower(), EMAIL, PHONE, "quintana")


def _linked_records(env, partner):
    """Every record the installed models link to ``partner``: through a stored many2one to
    res.partner, or a many2one_reference naming res.partner (chatter, attachments,
    activities); and the contact itself."""
    found = [partner.with_context(active_test=False)]
    for name in env.registry:
        model = env[name].with_context(active_test=False)
        if model._transient or model._abstract or not model._auto:
            continue
        for field in model._fields.values():
            if not field.store:
                continue
            if field.type == "many2one" and field.comodel_name == "res.partner":
                domain = [(field.name, "=", partner.id)]
            elif field.type == "many2one_reference" and field.model_field in model._fields:
                domain = [(field.name, "=", partner.id), (field.model_field, "=", "res.partner")]
            else:
                continue
            records = model.search(domain)
            if records:
                found.append(records)
    return found


def _leaks(env, partner):
    """(model, id, field, value) of every char, text and html field holding the person's
    name, email or phone, over the records linked to them."""
    env.flush_all()
    env.invalidate_all()
    leaks = []
    for records in _linked_records(env, partner):
        names = [name for name, field in records._fields.items() if field.store and field.type in ("char", "text", "html")]
        for row in records.read(names):
            for name in names:
                value = str(row[name] or "")
                if any(needle in value.lower() for needle in (n.lower() for n in NEEDLES)):
                    leaks.append((records._name, row["id"], name, value[:80]))
    return leaks


@tagged("post_install", "-at_install", "zero_sudo")
class TestDiscoveredRules(TransactionCase):
    def setUp(self):
        super().setUp()
        env = self.env
        self.person = env["res.partner"].create(
            {"name": NAME, "email": EMAIL, "phone": PHONE, "mobile": PHONE, "street": "Rue Quintana 4"}
        )
        self.person.email = "zoe.q@old.example.org"  # tracked: the former email lands in the chatter
        self.person.email = EMAIL
        env["res.partner"].create(
            [
                {"name": NAME + " (billing)", "type": "invoice", "email": EMAIL, "phone": PHONE, "parent_id": self.person.id},
                {"name": "Max Mustermann", "type": "contact", "email": "max@example.org", "parent_id": self.person.id},
            ]
        )
        other = env["res.partner"].create({"name": "ZS Supplier"})
        other.message_subscribe(partner_ids=self.person.ids)
        other.message_post(
            body="Hello, this is %s (%s, %s)" % (NAME, EMAIL, PHONE),
            author_id=self.person.id,
            email_from='"%s" <%s>' % (NAME, EMAIL),
            message_type="comment",
            subtype_xmlid="mail.mt_comment",
        )
        self.person.message_post(body="Called %s on %s" % (NAME, PHONE), message_type="comment", subtype_xmlid="mail.mt_note")
        env["mail.activity"].create(
            {
                "res_model_id": env.ref("base.model_res_partner").id,
                "res_id": self.person.id,
                "summary": "Call " + NAME,
                "activity_type_id": env.ref("mail.mail_activity_data_call").id,
                "user_id": env.uid,
            }
        )
        env["ir.attachment"].create(
            {"name": "id-card of %s.pdf" % NAME, "raw": b"%PDF", "res_model": "res.partner", "res_id": self.person.id}
        )
        env["res.partner.bank"].create({"acc_number": "BE71 0961 2345 6769", "partner_id": self.person.id})
        channel = env["discuss.channel"].create({"name": "ZS channel"})
        channel.add_members(partner_ids=self.person.ids)
        # Start from no rule at all (in this test's transaction, rolled back after it).
        env["zero_sudo.gdpr.request"].search([]).unlink()
        env["zero_sudo.gdpr.rule"].with_context(active_test=False).search([]).unlink()

    def _propose_and_activate(self):
        Rule = self.env["zero_sudo.gdpr.rule"]
        action = Rule.action_propose()
        proposed = Rule.with_context(action["context"]).search([("proposed", "=", True), ("active", "=", False)])
        self.assertTrue(proposed)
        self.assertFalse(Rule.search([]), "proposals wait for the officer: none is active")
        proposed.action_activate()
        return proposed

    def _erase(self):
        request = self.env["zero_sudo.gdpr.request"].create({"partner_id": self.person.id})
        request.action_run()
        for line in request.line_ids.sorted(lambda line: (line.rule_id.sequence, line.id)):
            while not line._erase_chunk(50):  # the task's chunks, in this test's transaction
                pass
        request._finish()
        return request

    def test_the_proposed_rules_once_active_leave_nothing_of_the_person_in_linked_records(self):
        before = {leak[0] for leak in _leaks(self.env, self.person)}
        self.assertLessEqual(
            {"res.partner", "mail.message", "mail.activity", "ir.attachment"},
            before,
            "the person is all over the database before",
        )
        rules = self._propose_and_activate()
        described = {(rule.model, rule.partner_field): rule for rule in rules}
        self.assertEqual(described[("mail.message", "author_id")].action, "anonymize", "messages the person wrote")
        self.assertEqual(described[("mail.followers", "partner_id")].action, "delete", "followers removed")
        self.assertEqual(rules.sorted()[-1].partner_field, "id", "the contact itself, last")
        request = self._erase()
        self.assertEqual(request.state, "done")
        self.assertEqual(_leaks(self.env, self.person), [])
        self.assertEqual(self.person.name, "[erased]")
        supplier_thread = self.env["res.partner"].search([("name", "=", "ZS Supplier")])
        self.assertEqual(supplier_thread.message_ids.filtered(lambda m: m.author_id == self.person).body, "<p>[erased]</p>")
        self.assertNotIn(self.person, supplier_thread.message_follower_ids.partner_id)
        self.assertIn(
            "Max Mustermann",
            self.env["res.partner"].search([("name", "=", "Max Mustermann")]).name,
            "the person's contacts are people of their own: left as they are",
        )

    def test_proposing_again_proposes_nothing_new(self):
        first = self._propose_and_activate()
        self.env["zero_sudo.gdpr.rule"].action_propose()
        again = self.env["zero_sudo.gdpr.rule"].with_context(active_test=False).search([]) - first
        self.assertFalse(again)

    def test_the_erasure_is_logged_in_the_privacy_log_masked(self):
        self._propose_and_activate()
        logs_before = self.env["privacy.log"].search([])
        request = self._erase()
        log = self.env["privacy.log"].search([]) - logs_before
        self.assertEqual(len(log), 1)
        self.assertEqual(log, request.privacy_log_id)
        self.assertEqual((log.anonymized_name, log.anonymized_email), ("Z** " + "Q" + "*" * 15, "z**.q*******@e******.org"))
        self.assertIn("Message: Author", log.records_description)
        self.assertIn("anonymize mail.message", log.execution_details)
        self.assertNotIn("Quintana", log.execution_details + log.records_description)
