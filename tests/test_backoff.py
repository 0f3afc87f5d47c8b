"""zero_sudo_bus.backoff: jittered exponential backoff with a cap and a reset."""

import random

import pytest

from zero_sudo_bus.backoff import Backoff


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets():
    backoff = Backoff(base=0.1, cap=1.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays[4:])) == 4, "jitter must spread retries"
    backoff.reset()
    assert backoff.next_delay() <= 0.1
    with pytest.raises(ValueError):
        Backoff(base=0)
