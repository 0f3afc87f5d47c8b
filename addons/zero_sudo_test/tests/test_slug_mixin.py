import threading
from concurrent.futures import ThreadPoolExecutor

from odoo import SUPERUSER_ID, api
from odoo.tests import HttpCase, TransactionCase, tagged

from odoo.addons.zero_sudo.tools.coherence import invalidate_models, make_coherent


@tagged("post_install", "-at_install", "zero_sudo")
class TestSlugMixin(TransactionCase):
    def test_slugs_are_made_unique_and_follow_renames(self):
        Article = self.env["zero_sudo.test.article"]
        first, second = Article.create([{"name": "Hello World"}, {"name": "hello, world!"}])
        self.assertEqual((first.slug, second.slug), ("hello-world", "hello-world-2"))
        self.assertEqual(Article._resolve_slug("hello-world-2"), second.id)
        second.name = "Another Title"
        invalidate_models(self.env.registry, {Article._name})  # what the relay's event does on every worker
        self.assertEqual(second.slug, "another-title")
        self.assertIsNone(Article._resolve_slug("hello-world-2"), "the old slug resolves to nothing")
        self.assertEqual(Article._resolve_slug("another-title"), second.id)
        second.name = "ANOTHER title"
        self.assertEqual(second.slug, "another-title", "same title, same slug")

    def test_garbage_resolves_to_nothing_without_a_query(self):
        Article = self.env["zero_sudo.test.article"]
        with self.assertQueryCount(0):
            for garbage in ("", "x" * 10_000, "ünïcode", "' OR 1=1 --", "../../etc/passwd", "a/b", None, 42):
                self.assertIsNone(Article._resolve_slug(garbage))


@tagged("post_install", "-at_install", "zero_sudo")
class TestSlugCache(TransactionCase):
    """On real, short transactions, as requests are: the cache serves them."""

    def _queries(self, function):
        """(result, queries) of ``function(env)`` in a transaction of its own, on a thread of
        its own, as a request is (the test's own long transaction stays out of it)."""

        def run():
            with self.registry.cursor() as cr:
                before = cr.sql_log_count
                result = function(api.Environment(cr, SUPERUSER_ID, {}))
                return result, cr.sql_log_count - before

        with ThreadPoolExecutor(max_workers=1) as request_thread:
            return request_thread.submit(run).result()

    def setUp(self):
        super().setUp()
        with self.registry.cursor() as cr:
            self.article_id = api.Environment(cr, SUPERUSER_ID, {})["zero_sudo.test.article"].create({"name": "Cached Slug"}).id

        def cleanup():
            with self.registry.cursor() as cr:
                cr.execute("DELETE FROM zero_sudo_test_article WHERE id = %s", (self.article_id,))

        self.addCleanup(cleanup)

    def resolve(self, env):
        return env["zero_sudo.test.article"]._resolve_slug("cached-slug")

    def test_after_the_first_hit_resolution_costs_no_query(self):
        self.assertEqual(self._queries(self.resolve)[0], self.article_id)
        for _ in range(3):
            self.assertEqual(self._queries(self.resolve), (self.article_id, 0))

    def test_a_change_of_another_model_keeps_the_entries(self):
        make_coherent(self.registry)  # as zero_sudo does for every registry it serves
        self._queries(self.resolve)
        invalidate_models(self.registry, {"res.partner"})
        self.assertEqual(self._queries(self.resolve), (self.article_id, 0))
        invalidate_models(self.registry, {"zero_sudo.test.article"})
        self.assertEqual(self._queries(self.resolve)[1], 1, "this model's entries went: one query again")


@tagged("post_install", "-at_install", "zero_sudo")
class TestSlugConcurrency(TransactionCase):
    """Two real transactions creating the same title at the same moment."""

    def test_two_workers_creating_the_same_title_get_two_slugs(self):
        registry = self.registry
        first_created = threading.Event()
        second_done = threading.Event()
        slugs = {}

        def second_worker():
            with registry.cursor() as cr:
                env = api.Environment(cr, SUPERUSER_ID, {})
                first_created.wait(10)
                slugs["second"] = env["zero_sudo.test.article"].create({"name": "Race Title"}).slug
                cr.commit()
            second_done.set()

        try:
            with ThreadPoolExecutor(max_workers=1) as other_worker:
                second = other_worker.submit(second_worker)
                with registry.cursor() as cr:
                    env = api.Environment(cr, SUPERUSER_ID, {})
                    slugs["first"] = env["zero_sudo.test.article"].create({"name": "Race Title"}).slug
                    first_created.set()  # the second now blocks on the advisory lock until we commit
                    self.assertFalse(second_done.wait(0.5), "the second creation must wait for the first")
                    cr.commit()
                second.result(10)
            self.assertEqual(sorted(slugs.values()), ["race-title", "race-title-2"])
        finally:
            with registry.cursor() as cr:
                cr.execute("DELETE FROM zero_sudo_test_article WHERE name = 'Race Title'")


@tagged("post_install", "-at_install", "zero_sudo")
class TestSlugRoute(HttpCase):
    def test_the_converter_serves_a_slug_and_404s_the_rest(self):
        article = self.env["zero_sudo.test.article"].create({"name": "Route Me"})
        response = self.url_open("/zero_sudo_test/article/route-me")
        self.assertEqual(response.status_code, 200)
        self.assertEqual({key: response.json()[key] for key in ("id", "name")}, {"id": article.id, "name": "Route Me"})
        for missing in ("no-such-slug", "Route-Me", "r%C3%A9", "x" * 5000, "a--b"):
            with self.subTest(missing=missing):
                self.assertEqual(self.url_open("/zero_sudo_test/article/" + missing).status_code, 404)
