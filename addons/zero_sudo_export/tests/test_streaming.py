import json

from odoo.tests import BaseCase, tagged

from ..tools.streaming import PathTree, json_array, leaves, ndjson, render


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

    def test_paths_become_a_tree_whose_leaves_are_the_row_keys(self):
        tree = PathTree.parse(["partner_id.name", "name", "partner_id.country_id.code", "partner_id.name"])
        self.assertEqual(list(tree.children), ["partner_id", "name"], "one node per relation, asked once")
        self.assertEqual(leaves(tree), ["partner_id.name", "partner_id.country_id.code", "name"])
        for bad in ("", "a..b", ".a"):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                PathTree.parse([bad])
