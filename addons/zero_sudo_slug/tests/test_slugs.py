from odoo.tests import BaseCase, tagged

from ..tools.slugs import FALLBACK_SLUG, MAX_SLUG_LENGTH, is_slug_of, is_valid_slug, next_free_slug, slugify


@tagged("post_install", "-at_install", "zero_sudo")
class TestSlugFunctions(BaseCase):
    def test_slugify(self):
        self.assertEqual(slugify("Crème Brûlée: 2 ways!"), "creme-brulee-2-ways")
        self.assertEqual(slugify("  --Hello   World--  "), "hello-world")
        self.assertEqual(slugify("日本"), FALLBACK_SLUG)
        self.assertEqual(slugify(None), FALLBACK_SLUG)
        long = slugify("word " * 100)
        self.assertLessEqual(len(long), MAX_SLUG_LENGTH)
        self.assertFalse(long.endswith("-"))

    def test_free_slugs(self):
        self.assertEqual(next_free_slug("a", set()), "a")
        self.assertEqual(next_free_slug("a", {"a", "a-2", "a-4"}), "a-3")
        self.assertTrue(is_slug_of("a-12", "a"))
        self.assertFalse(is_slug_of("a-b", "a"))
        self.assertFalse(is_slug_of("ab", "a"))

    def test_garbage_is_not_a_slug(self):
        for garbage in ("", "x" * 10_000, "ça", "a--b", "-a", "A", "1;DROP TABLE x", "../../etc/passwd", "a/b", None, 12):
            with self.subTest(garbage=garbage):
                self.assertFalse(is_valid_slug(garbage))
        self.assertTrue(is_valid_slug("creme-brulee-2"))
