"""Batching by count and by time, as plain data with no I/O (the landing daemon's window)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class BatchWindow(Generic[T]):
    """Collects items until ``max_size`` of them, or ``max_wait`` seconds after the first.

    The clock starts at the first item, not at the last batch: a lone message waits at most
    ``max_wait``, and a steady stream goes out in full batches.
    """

    max_size: int
    max_wait: float
    items: list[T] = field(default_factory=list)
    opened_at: float | None = None

    def add(self, item: T, now: float) -> None:
        if self.opened_at is None:
            self.opened_at = now
        self.items.append(item)

    @property
    def full(self) -> bool:
        return len(self.items) >= self.max_size

    def remaining(self, now: float) -> float | None:
        """Seconds left before the batch is due; None while it is empty (nothing to wait for)."""
        if self.opened_at is None:
            return None
        return max(0.0, self.opened_at + self.max_wait - now)

    def take(self) -> list[T]:
        """The items, in arrival order; the window is empty again."""
        items, self.items, self.opened_at = self.items, [], None
        return items
