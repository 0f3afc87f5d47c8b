import random
from collections import OrderedDict

from odoo.tests import BaseCase, tagged

from ..tools.coherence import PURGE_PER_INSERTION, CoherentLRU
from ..tools.model_index import ModelIndex, cache_model

MODELS = ["res.partner", "res.users", "ir.model", "res.country", "res.company"]
SIZE = 64


def _eager_drop(reference: OrderedDict, model: str) -> None:
    doomed = [key for key in reference if cache_model(key) == model]
    for key in doomed:
        del reference[key]


@tagged("post_install", "-at_install", "zero_sudo")
class TestModelIndex(BaseCase):
    """Dropping a model's cache entries is O(1): what a lookup sees is what eager deletion
    would leave, and the dropped entries leave the LRU as new ones come in."""

    def assert_consistent(self, cache: CoherentLRU, reference: OrderedDict):
        visible = dict(cache.items())
        for key, value in visible.items():
            self.assertIn(key, reference, "a dropped or deleted entry is visible again")
            self.assertIs(value, reference[key])
        for keys in cache._index._keys.values():
            self.assertTrue(keys <= cache.d.keys(), "the index names a key the LRU no longer has")
        self.assertEqual(len(cache), len(visible))
        self.assertLessEqual(len(cache.d), SIZE)

    def test_lookups_see_what_eager_deletion_would_leave(self):
        rng = random.Random(7)
        cache, reference = CoherentLRU(SIZE), OrderedDict()  # reference: every drop deletes at once
        for _step in range(5000):
            key = (rng.choice(MODELS), "method", rng.randrange(100))
            action = rng.random()
            if action < 0.7:
                value = object()
                cache[key] = reference[key] = value  # beyond 64 entries, the least recently used goes
                reference.move_to_end(key, last=False)
                while len(reference) > SIZE:
                    reference.popitem(last=True)
            elif action < 0.8 and key in cache:
                del cache[key]
                reference.pop(key, None)
            elif action < 0.85 and key in cache:
                cache.pop(key)
                reference.pop(key, None)
            elif action < 0.9:
                if cache.get(key) is not None:  # a hit moves the entry to the front: eviction order changes
                    reference.move_to_end(key, last=False)
            elif action < 0.99:
                model = rng.choice(MODELS)
                visible = sum(1 for k in cache if cache_model(k) == model)
                _eager_drop(reference, model)
                self.assertEqual(cache.drop_models({model}), visible)
                self.assertFalse(any(cache_model(k) == model for k in cache), "dropped entries still visible")
            else:
                cache.clear()
                reference.clear()
            self.assert_consistent(cache, reference)

    def test_dropped_entries_leave_the_lru_as_new_ones_come_in(self):
        cache = CoherentLRU(1000)
        for n in range(500):
            cache[("res.partner", "m", n)] = n
            cache[("res.users", "m", n)] = n
        self.assertEqual(cache.drop_models({"res.partner"}), 500)
        self.assertEqual(len(cache.d), 1000, "the drop itself deletes nothing")
        self.assertEqual(len(cache), 500)
        for n in range(500 // PURGE_PER_INSERTION):
            cache[("res.country", "m", n)] = n
        self.assertEqual(len(cache.d), 500 + 500 // PURGE_PER_INSERTION, "every dropped entry purged")
        self.assertFalse(any(cache_model(k) == "res.partner" for k in cache.d))

    def test_an_entry_cached_again_after_a_drop_is_never_purged(self):
        cache = CoherentLRU(100)
        cache[("res.partner", "m", 1)] = "old"
        cache.drop_models({"res.partner"})
        self.assertIsNone(cache.get(("res.partner", "m", 1)))
        cache[("res.partner", "m", 1)] = "new"
        for n in range(10):
            cache[("res.users", "m", n)] = n  # purging visits the dropped key, now live again
        self.assertEqual(cache[("res.partner", "m", 1)], "new")

    def test_keys_of_no_model_are_never_dropped(self):
        index = ModelIndex()
        for key in ("plain", ("res.partner", "m", 1), (1, 2), ()):
            index.add(key)
        self.assertEqual(len(index), 1)
        self.assertEqual(index.drop(["res.partner", "res.users"]), 1)
        self.assertEqual(len(index), 0)
        self.assertTrue(all(index.holds(key) for key in ("plain", (1, 2), ())))
        self.assertFalse(index.holds(("res.partner", "m", 1)))
        self.assertEqual(index.purgeable(10), [("res.partner", "m", 1)])
        self.assertEqual(index.purgeable(10), [])
