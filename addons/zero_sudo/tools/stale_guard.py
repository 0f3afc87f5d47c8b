"""Keeps stale values from outliving the transactions that could have read them (pure; no Odoo).

The trap: a transaction that began before another one committed a change reads the old value
(PostgreSQL snapshots), and may store it in the cache *after* the invalidation for that change
arrived; nothing would ever remove it. So every transaction is stamped with the guard's clock
when it begins, and every invalidation of a model advances the clock. A value of a model
stored while the thread has transactions older than the model's last invalidation is
*tainted*: it stays cached (that transaction may well hit it again), but it is dropped as soon
as one of those transactions ends, so it cannot survive the requests that were in flight when
the invalidation arrived. A cursor's creation or last commit/rollback is taken as the
beginning, never later than PostgreSQL's real snapshot, so the guard errs on the safe side.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable


class StaleGuard:
    """Clock of invalidations, the open transactions' start stamps, and the drops they owe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clock = 0
        self._flushed_at = 0
        self._model_stamps: dict[str, int] = {}
        self._open: dict[int, tuple[int, int]] = {}  # transaction token -> (thread ident, start stamp)
        self._on_end: dict[int, list[Callable[[], None]]] = {}  # token -> drops owed when it ends

    def begin(self, token: int) -> None:
        """The transaction ``token`` (re)starts now on this thread; a previous one has ended."""
        with self._lock:
            self._open[token] = (threading.get_ident(), self._clock)
            owed = self._on_end.pop(token, ())
        for drop in owed:
            drop()

    def end(self, token: int) -> None:
        """The transaction ``token`` is over (its cursor closed)."""
        with self._lock:
            self._open.pop(token, None)
            owed = self._on_end.pop(token, ())
        for drop in owed:
            drop()

    def invalidate(self, models: Iterable[str]) -> None:
        """Values of ``models`` read by transactions open now may be stale."""
        with self._lock:
            self._clock += 1
            for model in models:
                self._model_stamps[model] = self._clock

    def invalidate_all(self) -> None:
        """Like :meth:`invalidate` for every model (a flush)."""
        with self._lock:
            self._clock += 1
            self._flushed_at = self._clock

    def taint(self, model: str, drop: Callable[[], None]) -> bool:
        """Register ``drop`` to run when the thread's transactions older than ``model``'s last
        invalidation end; True when there are such transactions (the value is tainted)."""
        thread = threading.get_ident()
        with self._lock:
            last = max(self._model_stamps.get(model, 0), self._flushed_at)
            older = [token for token, (owner, start) in self._open.items() if owner == thread and start < last]
            for token in older:
                self._on_end.setdefault(token, []).append(drop)
        return bool(older)
