"""Which cache keys belong to which model, kept beside an LRU (pure; no Odoo).

Dropping a model's entries on a change event must not cost in proportion to the size of the
cache: a worker with full caches (8 192 entries each by default) that scanned every key for
each event would spend a core on invalidation at a few hundred events per second. Nor should
it cost one deletion per entry while the follower holds the cache's lock, stalling every
request thread of the worker that looks the cache up meanwhile (163 deletions ≈ 75 µs here).

So a drop is O(1): the model's set of keys is detached from the index, and from then on the
LRU treats a key as absent unless the index :meth:`holds <ModelIndex.holds>` it. The detached
keys wait in a purge queue; the LRU deletes a few of them on each later insertion
(:meth:`ModelIndex.purgeable`), so the dead entries leave as fast as new ones come in. The
index is updated on every insertion, deletion and eviction of the LRU it serves, so that it
never holds a key the LRU no longer has, nor misses a live one it does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Iterator


def cache_model(key: object) -> str | None:
    """The model an ``ormcache`` key belongs to: keys are ``(model._name, method, *args)``."""
    if type(key) is tuple and key and type(key[0]) is str:
        return key[0]
    return None


class ModelIndex:
    """model name → the keys of that model's live entries; dropped keys queued for purging."""

    def __init__(self) -> None:
        self._keys: dict[str, set[Hashable]] = {}
        # Detached key sets, each iterated once by purgeable(); nothing else touches them.
        self._detached: deque[Iterator[Hashable]] = deque()

    def add(self, key: Hashable) -> None:
        model = cache_model(key)
        if model is not None:
            self._keys.setdefault(model, set()).add(key)

    def discard(self, key: Hashable) -> None:
        model = cache_model(key)
        keys = self._keys.get(model) if model is not None else None
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._keys[model]

    def holds(self, key: Hashable) -> bool:
        """Whether ``key`` names a live entry: keys of no model always do (never dropped)."""
        model = cache_model(key)
        return model is None or key in self._keys.get(model, ())

    def drop(self, models: Iterable[str]) -> int:
        """Detach the keys of ``models`` in O(1) per model; returns how many were detached."""
        dropped = 0
        for model in models:
            keys = self._keys.pop(model, None)
            if keys:
                self._detached.append(iter(keys))
                dropped += len(keys)
        return dropped

    def purgeable(self, limit: int) -> list[Hashable]:
        """Up to ``limit`` dropped keys the LRU should now delete (those not added again since)."""
        found: list[Hashable] = []
        while len(found) < limit and self._detached:
            key = next(self._detached[0], None)
            if key is None:
                self._detached.popleft()
            elif not self.holds(key):
                found.append(key)
        return found

    def clear(self) -> None:
        self._keys.clear()
        self._detached.clear()

    def __len__(self) -> int:
        """How many live keys there are: the entries the LRU serves."""
        return sum(len(keys) for keys in self._keys.values())
