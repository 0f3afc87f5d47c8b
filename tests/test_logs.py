"""zero_sudo_daemons.logs: the log throttle (one line per interval, the rest counted)."""

from zero_sudo_daemons.logs import LogThrottle


def test_log_throttle_lets_one_line_per_interval_and_counts_the_rest():
    throttle = LogThrottle(interval=1.0)
    assert throttle.allow("x", now=0.0) == 0
    assert throttle.allow("x", now=0.5) is None
    assert throttle.allow("x", now=0.6) is None
    assert throttle.allow("y", now=0.7) == 0
    assert throttle.allow("x", now=1.2) == 2
