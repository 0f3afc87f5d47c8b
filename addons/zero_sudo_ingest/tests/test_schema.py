from odoo.tests import BaseCase, tagged

from ..tools.schema import SchemaError, check_schema, validate

SCHEMA = {
    "type": "object",
    "required": ["id", "amount"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 8},
        "amount": {"type": "number", "minimum": 0, "maximum": 100},
        "kind": {"enum": ["a", "b"]},
        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
        "note": {"type": ["string", "null"]},
    },
}


@tagged("post_install", "-at_install", "zero_sudo")
class TestSchema(BaseCase):
    """The JSON-Schema subset streams declare: what it checks, and what it refuses to."""

    def test_schema_accepts_valid_messages(self):
        check_schema(SCHEMA)
        self.assertEqual(validate(SCHEMA, {"id": "A1", "amount": 3.5, "kind": "a", "tags": ["x"], "note": None}), [])

    def test_schema_reports_every_violation_with_its_path(self):
        errors = validate(SCHEMA, {"id": "", "amount": True, "kind": "c", "tags": ["x", 1, "z"], "extra": 1})
        self.assertEqual(
            errors,
            [
                "$.id: shorter than 1 characters",
                "$.amount: expected number",
                "$.kind: must be one of 'a', 'b'",
                "$.tags: more than 2 items",
                "$.tags[1]: expected string",
                "$.extra: not allowed",
            ],
        )
        self.assertEqual(validate(SCHEMA, {"amount": 101}), ["$.id: required", "$.amount: above 100"])
        self.assertEqual(len(validate({"type": "array", "items": {"type": "string"}}, list(range(1000)))), 20)

    def test_schema_refuses_what_it_would_not_check(self):
        for schema in (
            [],
            {"pattern": "x"},
            {"type": "date"},
            {"properties": {"a": {"format": "email"}}},
            {"required": "a"},
            {"additionalProperties": {}},
        ):
            with self.subTest(schema=schema), self.assertRaises(SchemaError):
                check_schema(schema)
