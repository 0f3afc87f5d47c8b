"""Which cache keys belong to which model, kept beside an LRU (pure; no Odoo).

Dropping a model's entries on a change event must cost in proportion to that model's entries,
not to the size of the cache: a worker with full caches (8 192 entries each by default) that
scanned every key for each event would spend a core on invalidation at a few hundred events
per second. The index is updated on every insertion, deletion and eviction of the LRU it
serves, so that it never names a key the LRU no longer holds, nor misses one it does.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable


def cache_model(key: object) -> str | None:
    """The model an ``ormcache`` key belongs to: keys are ``(model._name, method, *args)``."""
    if type(key) is tuple and key and type(key[0]) is str:
        return key[0]
    return None


class ModelIndex:
    """model name → the keys of that model's entries."""

    def __init__(self) -> None:
        self._keys: dict[str, set[Hashable]] = {}

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

    def take(self, models: Iterable[str]) -> list[Hashable]:
        """The keys of ``models``, forgotten here: the caller deletes them from the cache."""
        return [key for model in models for key in self._keys.pop(model, ())]

    def clear(self) -> None:
        self._keys.clear()

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._keys.values())
