"""A module-level object that each OS process builds for itself (pure; no Odoo).

Odoo's prefork server forks workers from a master that may already have built pools or
threads: sockets shared across a fork interleave bytes, and threads do not survive it. A
:class:`PerProcess` forgets its value in the forked child, which builds its own on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """Lazily built once per process by ``factory``; rebuilt in a forked child."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._value: T | None = None
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        # The parent's value (its sockets, its threads) is not ours; a lock held by another
        # thread at fork time would stay locked forever in the child.
        self._lock = threading.Lock()
        self._value = None

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                value = self._value
                if value is None:
                    value = self._value = self._factory()
        return value

    def built(self) -> T | None:
        """The value if this process built it already, without building it."""
        return self._value
