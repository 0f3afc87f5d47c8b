import random

from odoo.tests import BaseCase, tagged

from ..tools.coherence import CoherentLRU
from ..tools.model_index import ModelIndex, cache_model

MODELS = ["res.partner", "res.users", "ir.model", "res.country", "res.company"]


@tagged("post_install", "-at_install", "zero_sudo")
class TestModelIndex(BaseCase):
    """Dropping a model's cache entries goes through an index kept in step with the LRU."""

    def assert_index_matches(self, cache):
        for model in MODELS:
            expected = {key for key in cache.d if cache_model(key) == model}
            self.assertEqual(set(cache._index._keys.get(model, ())), expected, model)

    def test_the_index_follows_every_insertion_deletion_and_eviction(self):
        rng = random.Random(7)
        cache = CoherentLRU(64)
        for step in range(5000):
            key = (rng.choice(MODELS), "method", rng.randrange(100))
            action = rng.random()
            if action < 0.7:
                cache[key] = step  # beyond 64 entries, the least recently used is evicted
            elif action < 0.8 and key in cache.d:
                del cache[key]
            elif action < 0.85 and key in cache.d:
                cache.pop(key)
            elif action < 0.9:
                cache.get(key)  # a hit moves the entry to the front: eviction order changes
            elif action < 0.99:
                model = rng.choice(MODELS)
                before = {k for k in cache.d if cache_model(k) == model}
                self.assertEqual(cache.drop_models({model}), len(before))
                self.assertFalse(any(cache_model(k) == model for k in cache.d))
            else:
                cache.clear()
            self.assertLessEqual(len(cache.d), 64)
            if step % 250 == 0:
                self.assert_index_matches(cache)
        self.assert_index_matches(cache)

    def test_keys_of_no_model_are_kept_out_of_the_index(self):
        index = ModelIndex()
        for key in ("plain", ("res.partner", "m", 1), (1, 2), ()):
            index.add(key)
        self.assertEqual(len(index), 1)
        self.assertEqual(index.take(["res.partner", "res.users"]), [("res.partner", "m", 1)])
        self.assertEqual(len(index), 0)
