"""Burst coalescing for the relay, as plain data structures with no I/O.

NOTIFYs are added as they arrive; the relay's single publisher drains everything pending
whenever it is free. At low load a publish is in flight only for a fraction of a millisecond,
so each NOTIFY goes out alone and at once; under a burst, everything that arrives while one
publish is in flight goes out together in the next one. The batch size follows the load
with no timer and no added delay (adaptive batching, as Nagle without the wait).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zero_sudo_bus.protocol import ChangeBatch, Op


@dataclass(frozen=True, slots=True)
class Drained:
    """What a publisher must send now: a flush first if the buffer overflowed, then changes."""

    flush_required: bool
    changes: tuple[tuple[int, Op, tuple[int, ...]], ...]
    oldest_at: float | None

    def __bool__(self) -> bool:
        return self.flush_required or bool(self.changes)


@dataclass
class Coalescer:
    """Pending IDs per (model key, op), deduplicated, in arrival order, bounded in size.

    Past ``max_pending_ids`` the pending IDs are dropped and replaced by one flush: every
    subscriber then drops all it caches, which is coarse but never stale, and memory stays
    bounded while Redis is slow.
    """

    max_pending_ids: int
    _pending: dict[tuple[int, Op], dict[int, None]] = field(default_factory=dict)
    pending_ids: int = 0
    flush_required: bool = False
    oldest_at: float | None = None

    def require_flush(self) -> None:
        """Drop what is pending: the next drain starts with a flush that covers it."""
        self._pending.clear()
        self.pending_ids = 0
        self.flush_required = True

    def add(self, batch: ChangeBatch, now: float) -> bool:
        """Buffer ``batch``; True when this call overflowed the buffer into a flush."""
        if self.oldest_at is None:
            self.oldest_at = now
        if self.flush_required:
            return False  # the flush, published after this moment, covers these IDs
        bucket = self._pending.setdefault((batch.model_key, batch.op), {})
        before = len(bucket)
        for record_id in batch.ids:
            bucket[record_id] = None
        self.pending_ids += len(bucket) - before
        if self.pending_ids > self.max_pending_ids:
            self.require_flush()
            return True
        return False

    def drain(self) -> Drained:
        """Everything pending, emptied out in one step."""
        drained = Drained(
            self.flush_required,
            tuple((key, op, tuple(ids)) for (key, op), ids in self._pending.items()),
            self.oldest_at,
        )
        self._pending = {}
        self.pending_ids = 0
        self.flush_required = False
        self.oldest_at = None
        return drained
