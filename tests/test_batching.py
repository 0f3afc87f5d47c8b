"""zero_sudo_daemons.batching: the landing window, closed by count or by time."""

import pytest

from zero_sudo_daemons.batching import BatchWindow


def test_batch_window_by_count_and_by_time():
    window = BatchWindow(max_size=3, max_wait=0.05)
    assert window.remaining(now=10.0) is None
    window.add("a", now=10.0)
    window.add("b", now=10.04)
    assert window.remaining(now=10.04) == pytest.approx(0.01)
    assert window.remaining(now=11.0) == 0.0
    window.add("c", now=10.045)
    assert window.full
    assert window.take() == ["a", "b", "c"]
    assert not window.items and window.remaining(now=12.0) is None
