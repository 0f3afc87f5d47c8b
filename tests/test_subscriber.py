"""zero_sudo_bus.subscriber: the one subscribe-and-listen logic, sequence tracking, dispatch."""

import pytest
import redis

from zero_sudo_bus.protocol import BusMessage, FlushReason, MessageKind, Op
from zero_sudo_bus.subscriber import SUBSCRIBE_TIMEOUT_S, TRANSIENT_REDIS_ERRORS, BusDispatcher, SequenceTracker, Subscription


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


def _msg(epoch, seq, kind="change"):
    if kind == "flush":
        return BusMessage(epoch, seq, MessageKind.FLUSH, reason=FlushReason.START)
    return BusMessage(epoch, seq, MessageKind.CHANGE, 1, Op.WRITE, (1,))


def test_sequence_tracker_detects_gaps_and_epoch_changes():
    tracker = SequenceTracker()
    assert tracker.observe(_msg("a", 5)) is None  # first message after subscribing
    assert tracker.observe(_msg("a", 6)) is None
    assert tracker.observe(_msg("a", 8)) is FlushReason.GAP
    assert tracker.observe(_msg("a", 9)) is None
    assert tracker.observe(_msg("b", 3)) is FlushReason.EPOCH
    assert tracker.observe(_msg("c", 0, "flush")) is FlushReason.START
    assert tracker.observe(_msg("c", 1)) is None
    assert tracker.observe(_msg("c", 1)) is FlushReason.GAP  # a replay is not "in order" either


def test_dispatcher_counts_garbage_and_flushes_before_applying():
    calls = []
    dispatcher = BusDispatcher(lambda m: calls.append(("change", m.seq)), lambda r: calls.append(("flush", r)))
    dispatcher.resubscribed()
    dispatcher.dispatch(b"not json")
    dispatcher.dispatch(b'{"v":1,"epoch":"e","seq":4,"kind":"change","model":1,"op":2,"ids":[1]}')
    dispatcher.dispatch(b'{"v":1,"epoch":"e","seq":6,"kind":"change","model":1,"op":2,"ids":[1]}')
    assert calls == [("flush", "reconnect"), ("change", 4), ("flush", "gap"), ("change", 6)]
    assert (dispatcher.received, dispatcher.rejected, dispatcher.flushes) == (2, 1, 2)
