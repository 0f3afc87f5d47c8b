"""Coherent ``ormcache`` on every Odoo server process.

Each process (threaded server, every prefork worker, cron workers) follows its databases'
relay channel in Redis with the bus library's ``ThreadedBusSubscriber`` and drops entries of
its *own* caches: those of the changed model on a change (an ``ormcache`` key starts with the
model name), everything on a flush, a sequence gap or a reconnect. It never goes through
``registry.clear_cache()``, which would mark the caches for Odoo's database signaling and make
every worker clear everything again (a feedback loop). While Redis is unreachable, writers fall
back to ``registry.clear_cache()`` (see the change-event mixin): coarse, but correct.

Stale values are kept out by :class:`~.stale_guard.StaleGuard` (see there).
"""

import logging
import os
import threading
import time
from collections.abc import Iterable

from zero_sudo_bus.protocol import BusMessage, model_key
from zero_sudo_bus.redis_clients import RedisTarget
from zero_sudo_bus.subscriber import ThreadedBusSubscriber

from odoo.modules.registry import Registry
from odoo.tools.lru import LRU

from .model_index import ModelIndex, cache_model
from .per_process import PerProcess
from .settings import settings_from_odoo_conf
from .stale_guard import StaleGuard

_logger = logging.getLogger(__name__)

guard: PerProcess[StaleGuard] = PerProcess(StaleGuard)


# Dropped entries each insertion deletes: two per insertion empty the purge queue by the
# time the dropped entries have been cached again, and cost ~1 µs on a miss that ran a query.
PURGE_PER_INSERTION = 2


class CoherentLRU(LRU):
    """Odoo's LRU that drops possibly stale values with their transactions, and a model's
    entries in O(1) (:class:`~.model_index.ModelIndex`, kept in step with every insertion,
    deletion and eviction): a dropped entry is absent to every lookup at once, and deleted
    a few at a time by later insertions."""

    def __init__(self, count: int, pairs=()):
        self._index = ModelIndex()
        super().__init__(count, pairs)

    def __getitem__(self, key):
        with self._lock:
            value = self.d[key]
            if not self._index.holds(key):
                raise KeyError(key)
            self.d.move_to_end(key, last=False)
            return value

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self.d and self._index.holds(key)

    def __iter__(self):
        with self._lock:
            return iter([key for key in self.d if self._index.holds(key)])

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for key in self.d if self._index.holds(key))

    def __setitem__(self, key, value):
        with self._lock:
            self.d[key] = value
            self.d.move_to_end(key, last=False)
            self._index.add(key)
            for dropped in self._index.purgeable(PURGE_PER_INSERTION):
                self.d.pop(dropped, None)
            while len(self.d) > self.count:
                evicted, _value = self.d.popitem(last=True)
                self._index.discard(evicted)
            model = cache_model(key)
            if model is not None:
                guard.get().taint(model, lambda: self._discard(key, value))

    def __delitem__(self, key):
        with self._lock:
            del self.d[key]
            self._index.discard(key)

    def pop(self, key):
        with self._lock:
            value = self.d.pop(key)
            self._index.discard(key)
            return value

    def clear(self):
        with self._lock:
            self.d.clear()
            self._index.clear()

    def _discard(self, key, value) -> None:
        """Drop a tainted entry, unless a fresh value has replaced it meanwhile."""
        with self._lock:
            if key in self.d and self.d[key] is value:
                del self[key]

    def drop_models(self, models: set[str]) -> int:
        """Make the entries of ``models`` absent, in O(1) per model; returns how many went."""
        with self._lock:
            return self._index.drop(models)


def make_coherent(registry: Registry) -> None:
    """Give ``registry`` coherent caches (empty: a cache may always be emptied)."""
    caches = registry._Registry__caches
    for name, cache in caches.items():
        if not isinstance(cache, CoherentLRU):
            caches[name] = CoherentLRU(cache.count)


def _caches(registry: Registry) -> Iterable[LRU]:
    return registry._Registry__caches.values()


def invalidate_models(registry: Registry, models: set[str]) -> None:
    """Drop this process's cache entries of ``models``; no database signaling."""
    guard.get().invalidate(models)
    for cache in _caches(registry):
        if isinstance(cache, CoherentLRU):
            cache.drop_models(models)
        else:
            cache.clear()


def invalidate_everything(registry: Registry) -> None:
    """Drop every cache entry of this process for ``registry``; no database signaling."""
    guard.get().invalidate_all()
    for cache in _caches(registry):
        cache.clear()


class Follower:
    """Follows one database's relay channel in this process."""

    def __init__(self, db_name: str, redis_url: str | RedisTarget) -> None:
        self.db_name = db_name
        self.live = False
        self._names: dict[int, str] = {}
        # When each model's entries were last dropped on an event (wall clock): what a
        # benchmark or a health check reads to see how far behind this process is.
        self.invalidated_at: dict[str, float] = {}
        # When everything was last dropped (a relay's new epoch, a gap, a reconnect), and why.
        self.flushed_at: float | None = None
        self.flush_reason: str | None = None
        self.subscriber = ThreadedBusSubscriber(
            redis_url,
            db_name,
            self._on_change,
            self._on_flush,
            on_connection_change=self._on_connection_change,
            client_name="zero_sudo_cache_%d" % os.getpid(),
        )

    def _registry(self) -> Registry | None:
        return Registry.registries.get(self.db_name)

    def _model_name(self, registry: Registry, key: int) -> str | None:
        name = self._names.get(key)
        if name is None and len(self._names) != len(registry.models):
            self._names = {model_key(model): model for model in registry.models}
            name = self._names.get(key)
        return name

    def _on_change(self, message: BusMessage) -> None:
        registry = self._registry()
        if registry is None:
            return
        name = self._model_name(registry, message.model_key)
        if name is not None:
            invalidate_models(registry, {name})
            self.invalidated_at[name] = time.time()

    def _on_flush(self, reason: str) -> None:
        registry = self._registry()
        if registry is not None:
            _logger.info("cache coherence: flushing the caches of %s (reason=%s)", self.db_name, reason)
            invalidate_everything(registry)
            self.flushed_at, self.flush_reason = time.time(), reason

    def _on_connection_change(self, connected: bool) -> None:
        self.live = connected
        if connected:
            _logger.info("cache coherence: following %s's relay channel in Redis", self.db_name)
        else:
            _logger.warning(
                "cache coherence: Redis unreachable for %s; writes invalidate through database signaling until it is back",
                self.db_name,
            )


class _Followers:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_db: dict[str, Follower] = {}


_followers: PerProcess[_Followers] = PerProcess(_Followers)


def follow(db_name: str) -> Follower | None:
    """This process's follower of ``db_name``, started on first call (None when disabled)."""
    conf = settings_from_odoo_conf()
    if not conf.cache_coherence:
        return None
    followers = _followers.get()
    follower = followers.by_db.get(db_name)
    if follower is None:
        with followers.lock:
            follower = followers.by_db.get(db_name)
            if follower is None:
                follower = followers.by_db[db_name] = Follower(db_name, RedisTarget.of(conf))
                follower.subscriber.start()
    return follower


def followers() -> dict[str, Follower]:
    """This process's followers by database (a copy: the health page reads them)."""
    return dict(_followers.get().by_db)


def is_live(db_name: str) -> bool:
    """Whether this process currently receives ``db_name``'s invalidations through Redis."""
    follower = _followers.get().by_db.get(db_name)
    return follower is not None and follower.live
