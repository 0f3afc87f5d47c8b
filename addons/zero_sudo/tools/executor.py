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
            future = self._executor._pool.submit(self._executor._counted, fn, *args)
        except BaseException:
            self._executor._free_slot()
            raise
        future.add_done_callback(lambda _future: self._executor._free_slot())
        return future

    def release(self) -> None:
        """Give the slot back unused (the caller failed before it could submit)."""
        if not self._used:
            self._used = True
            self._executor._free_slot()


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
        # What the health page shows: slots taken, and tasks running right now.
        self._counts_lock = threading.Lock()
        self._taken = 0
        self._running = 0

    def reserve(self) -> Slot:
        """A slot for one task, or :class:`ExecutorFull` at once (never blocks)."""
        if not self._slots.acquire(blocking=False):
            raise self._full()
        with self._counts_lock:
            self._taken += 1
        return Slot(self)

    def check_room(self) -> None:
        """:class:`ExecutorFull` unless a slot is free now; takes none.

        For work that asks for its slot later, at a commit: the caller hears now that the
        executor is full, and holds no slot while its transaction runs.
        """
        with self._counts_lock:
            if self._taken >= self.max_workers + self.max_queued:
                raise self._full()

    def _full(self) -> ExecutorFull:
        return ExecutorFull(
            "%d tasks running and %d queued: the bound is reached" % (self.max_workers, self.max_queued), self.retry_after
        )

    def counts(self) -> tuple[int, int]:
        """(running, queued): tasks running now, and slots taken by tasks not running yet
        (waiting for a thread, or reserved and about to be submitted)."""
        with self._counts_lock:
            return self._running, self._taken - self._running

    def _free_slot(self) -> None:
        with self._counts_lock:
            self._taken -= 1
        self._slots.release()

    def _counted(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._counts_lock:
            self._running += 1
        try:
            return fn(*args)
        finally:
            with self._counts_lock:
                self._running -= 1

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Reserve and submit in one go."""
        return self.reserve().submit(fn, *args)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)
