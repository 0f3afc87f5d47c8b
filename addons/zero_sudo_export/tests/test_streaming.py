import json

from odoo.tests import BaseCase, tagged

from ..tools.streaming import PathTree, flatten, json_array, ndjson, render


@tagged("post_install", "-at_install", "zero_sudo")
class TestStreaming(BaseCase):
    def test_json_array_is_valid_for_any_number_of_rows(self):
        for count in (0, 1, 3):
            rows = ({"n": n, "s": "é"} for n in range(count))
            body = b"".join(json_array(rows))
            self.assertEqual(json.loads(body), [{"n": n, "s": "é"} for n in range(count)])

    def test_ndjson_is_one_object_per_line(self):
        body = b"".join(ndjson([{"a": 1}, {"a": 2}]))
        self.assertEqual([json.loads(line) for line in body.splitlines()], [{"a": 1}, {"a": 2}])
        with self.assertRaises(ValueError):
            render([], "xml")

    def test_paths_become_a_tree_and_rows_flatten_back(self):
        tree = PathTree.parse(["name", "partner_id.name", "partner_id.country_id.code"])
        self.assertEqual(set(tree.children), {"name", "partner_id"})
        values = {"name": "x", "partner_id": {"name": "P", "country_id": {"code": "BE"}}}
        self.assertEqual(flatten(values, tree), {"name": "x", "partner_id.name": "P", "partner_id.country_id.code": "BE"})
        self.assertEqual(
            flatten({"name": "y", "partner_id": None}, tree),
            {"name": "y", "partner_id.name": None, "partner_id.country_id.code": None},
        )
        for bad in ("", "a..b", ".a"):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                PathTree.parse([bad])
