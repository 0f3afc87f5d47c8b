"""zero_sudo_bus.subscriber: the one subscribe-and-listen logic, sequence tracking, dispatch."""

import pytest
import redis

from zero_sudo_bus.subscriber import SUBSCRIBE_TIMEOUT_S, TRANSIENT_REDIS_ERRORS, Subscription


def _subscription(pattern=False, idle_timeout=1.5):
    calls = []
    subscription = Subscription(
        "chan*" if pattern else "chan",
        lambda: calls.append("confirmed"),
        lambda channel, data: calls.append((channel, data)),
        pattern=pattern,
        idle_timeout=idle_timeout,
    )
    return subscription, calls


def test_a_subscription_is_live_once_redis_confirms_then_hands_over_data_only():
    subscription, calls = _subscription()
    assert subscription.timeout == SUBSCRIBE_TIMEOUT_S, "the first wait is for the confirmation"
    subscription.handle({"type": "subscribe", "channel": b"chan", "data": 1})
    assert subscription.confirmed and calls == ["confirmed"]
    assert subscription.timeout == 1.5
    subscription.handle(None)  # nothing within the idle timeout: the loop just waits again
    subscription.handle({"type": "pong", "channel": None, "data": b""})
    subscription.handle({"type": "message", "channel": b"chan", "data": b"x"})
    assert calls == ["confirmed", (b"chan", b"x")]


def test_a_pattern_subscription_confirms_with_psubscribe_and_reads_pmessages():
    subscription, calls = _subscription(pattern=True)
    subscription.handle({"type": "psubscribe", "channel": b"chan*", "data": 1})
    subscription.handle({"type": "message", "channel": b"chan7", "data": b"not for a pattern"})
    subscription.handle({"type": "pmessage", "pattern": b"chan*", "channel": b"chan7", "data": b"y"})
    assert calls == ["confirmed", (b"chan7", b"y")]


@pytest.mark.parametrize("first", [None, {"type": "message", "channel": b"chan", "data": b"early"}])
def test_no_confirmation_first_is_a_transient_redis_error(first):
    subscription, calls = _subscription()
    with pytest.raises(redis.exceptions.TimeoutError) as info:
        subscription.handle(first)
    assert isinstance(info.value, TRANSIENT_REDIS_ERRORS), "the owner reconnects with backoff"
    assert calls == [] and not subscription.confirmed
