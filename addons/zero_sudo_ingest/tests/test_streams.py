from odoo.exceptions import AccessError, ValidationError
from odoo.tests import TransactionCase, new_test_user, tagged


@tagged("post_install", "-at_install", "zero_sudo")
class TestStreams(TransactionCase):
    def test_codes_schemas_and_mappings_are_checked_when_saved(self):
        Stream = self.env["zero_sudo.ingest.stream"]
        for values in (
            {"code": "Bad Code"},
            {"code": "ok1", "message_schema": "{not json"},
            {"code": "ok2", "message_schema": '{"type": "object", "pattern": "x"}'},
            {
                "code": "ok3",
                "target_model_id": self.env.ref("base.model_res_partner").id,
                "field_mapping": '{"n": "no_such_field"}',
            },
            {"code": "ok4", "field_mapping": "[1, 2]"},
        ):
            with self.subTest(values=values), self.assertRaises(ValidationError):
                Stream.create({"name": "x", **values})
        Stream.create({"name": "x", "code": "ok5", "message_schema": '{"type": "object", "required": ["id"]}'})

    def test_publishers_see_only_their_own_streams(self):
        alice = new_test_user(self.env, "alice_ingest", groups="zero_sudo_ingest.group_ingest_publisher")
        bob = new_test_user(self.env, "bob_ingest", groups="zero_sudo_ingest.group_ingest_publisher")
        Stream = self.env["zero_sudo.ingest.stream"]
        mine = Stream.create({"name": "A", "code": "alice-orders", "user_id": alice.id})
        Stream.create({"name": "B", "code": "bob-orders", "user_id": bob.id})
        self.assertEqual(Stream.with_user(alice).search([]), mine)
        with self.assertRaises(AccessError):
            mine.with_user(alice).write({"name": "renamed"})
