"""Jittered exponential backoff, as a plain object the daemons' recovery loops share."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays that double from ``base`` up to ``cap``, each drawn in [d/2, d] ("equal jitter").

    Equal jitter keeps a floor of d/2, so a restarted server is never hammered by replicas
    retrying at once, while the random half spreads them apart.
    """

    base: float = 0.05
    cap: float = 5.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError("backoff needs 0 < base <= cap")

    def next_delay(self) -> float:
        """The delay before the next retry; each call counts one more failure."""
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 32)))
        self.attempt += 1
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        """Called after a success: the next failure starts again from ``base``."""
        self.attempt = 0
