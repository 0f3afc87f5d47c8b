"""A thread pool whose running *and* queued tasks are bounded (pure; no Odoo).

``ThreadPoolExecutor`` queues without limit, so a burst of long requests would pile up threads'
work and memory until the process falls over. Here a caller first reserves a slot: when
``max_workers + max_queued`` slots are taken it gets :class:`ExecutorFull` (an HTTP 503 with
``Retry-After``) instead of an unbounded wait; nothing accepted is ever dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .exceptions import ExecutorFull


class Slot:
    """One reserved place in a :class:`BoundedExecutor`: submit one task with it, or release it."""

    def __init__(self, executor: BoundedExecutor) -> None:
        self._executor = executor
        self._used = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args)`` on the pool; the slot is freed when it finishes."""
        if self._used:
            raise RuntimeError("a slot runs one task")
        self._used = True
        try:
            future = self._executor._pool.submit(fn, *args)
        except BaseException:
            self._executor._slots.release()
            raise
        future.add_done_callback(lambda _future: self._executor._slots.release())
        return future

    def release(self) -> None:
        """Give the slot back unused (the caller failed before it could submit)."""
        if not self._used:
            self._used = True
            self._executor._slots.release()


class BoundedExecutor:
    """At most ``max_workers`` tasks run and ``max_queued`` more wait; beyond, callers are refused."""

    def __init__(self, max_workers: int, max_queued: int, retry_after: int, name: str = "zero_sudo_task") -> None:
        if max_workers < 1 or max_queued < 0:
            raise ValueError("need max_workers >= 1 and max_queued >= 0")
        self.max_workers = max_workers
        self.max_queued = max_queued
        self.retry_after = retry_after
        self._slots = threading.BoundedSemaphore(max_workers + max_queued)
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix=name)

    def reserve(self) -> Slot:
        """A slot for one task, or :class:`ExecutorFull` at once (never blocks)."""
        if not self._slots.acquire(blocking=False):
            raise ExecutorFull(
                "%d tasks running and %d queued: the bound is reached" % (self.max_workers, self.max_queued),
                self.retry_after,
            )
        return Slot(self)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Reserve and submit in one go."""
        return self.reserve().submit(fn, *args)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)
