"""zero_sudo_daemons.polling, without I/O: sources, retry timing, circuit breaker, answers."""

import json
import random

import pytest

from zero_sudo_daemons.errors import ConfigurationError
from zero_sudo_daemons.polling import (
    MAX_RETRY_DELAY_S,
    AnswerUnusable,
    CircuitBreaker,
    ConditionalState,
    Source,
    decode_answer,
    extract_messages,
    jittered,
    load_sources,
    retry_backoff,
)


def _source(**overrides):
    entry = {"name": "fx", "url": "http://127.0.0.1/x", "stream": "prices", "interval_s": 5}
    entry.update(overrides)
    return entry


def test_sources_file_is_validated_strictly():
    (source,) = load_sources(json.dumps([_source(items_field="items")]))
    assert source == Source("fx", "http://127.0.0.1/x", "prices", 5, "id", "items")
    for bad in [
        "nope",
        "{}",
        json.dumps([_source(url="ftp://x")]),
        json.dumps([_source(interval_s=0)]),
        json.dumps([_source(stream="Bad Stream")]),
        json.dumps([_source(), _source()]),
        json.dumps([_source(extra=1)]),
        json.dumps([{"name": "x"}]),
        json.dumps([_source(interval_s=True)]),
        json.dumps([_source(interval_s="5")]),
        json.dumps([_source(url=["http://x"])]),
        json.dumps([_source(id_field=["id"])]),
        json.dumps([_source(items_field=3)]),
        '[{"name": "fx", "url": "http://x", "stream": "prices", "interval_s": NaN}]',
        '[{"name": "fx", "url": "http://x", "stream": "prices", "interval_s": Infinity}]',
    ]:
        with pytest.raises(ConfigurationError):
            load_sources(bad)


@pytest.mark.parametrize("interval_s", [0.05, 59, 60, 61, 3600, 7 * 86400])
def test_any_interval_gets_a_backoff_from_its_interval_never_beyond_the_larger_of_it_and_the_cap(interval_s):
    (source,) = load_sources(json.dumps([_source(interval_s=interval_s)]))
    backoff = retry_backoff(source.interval_s, random.Random(1))
    delays = [backoff.next_delay() for _ in range(40)]
    assert min(delays) >= interval_s / 2
    assert max(delays) <= max(interval_s, MAX_RETRY_DELAY_S)


def test_jitter_stays_within_ten_percent_and_varies():
    rng = random.Random(1)
    delays = [jittered(10.0, rng) for _ in range(200)]
    assert all(9.0 <= d <= 11.0 for d in delays)
    assert max(delays) - min(delays) > 1.0


def test_circuit_breaker_opens_after_the_threshold_and_half_opens_after_cooldown():
    breaker = CircuitBreaker(threshold=3, cooldown_s=60)
    for t in (0, 1):
        breaker.failure(now=t)
        assert breaker.allows(now=t)
    breaker.failure(now=2)
    assert not breaker.allows(now=30)
    assert breaker.allows(now=62)  # half-open: one trial
    breaker.failure(now=62)
    assert not breaker.allows(now=100)  # the trial failed: a full cool-down again
    breaker.success()
    assert breaker.allows(now=100) and breaker.failures == 0


def test_conditional_state_sends_back_the_validators():
    state = ConditionalState()
    assert state.request_headers() == {}
    state.remember({"ETag": '"v1"', "Last-Modified": "Sun, 29 Nov 2026 00:00:00 GMT"})
    assert state.request_headers() == {"If-None-Match": '"v1"', "If-Modified-Since": "Sun, 29 Nov 2026 00:00:00 GMT"}


def test_extract_messages_keeps_items_with_an_external_id():
    source = Source("fx", "http://x", "prices", 5, id_field="code", items_field="rates")
    extracted = extract_messages(source, {"rates": [{"code": "EUR", "v": 1}, {"v": 2}, "x", {"code": 7}]})
    assert [(m.external_id, m.data) for m in extracted.messages] == [("EUR", {"code": "EUR", "v": 1}), ("7", {"code": 7})]
    assert len(extracted.rejected) == 2
    assert extract_messages(source, {"rates": 3}).rejected == ["the answer holds no list of items"]
    assert [m.external_id for m in extract_messages(Source("one", "http://x", "prices", 5), {"id": 1}).messages] == ["1"]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'[{"id": 1, "v": "\xff"}]', "not usable JSON"),  # invalid UTF-8
        (b'[{"id": 1, "v": ' + b"9" * 5000 + b"}]", "not usable JSON"),  # past int's digit limit
        (b'[{"id": 1, "v": 1e999}]', "out of range"),
        (b'[{"id": 1, "v": NaN}]', "NaN is not a JSON number"),
        (b'[{"id": 1, "v": -Infinity}]', "-Infinity is not a JSON number"),
        (b'[{"id": 1}', "not usable JSON"),  # truncated
        (b"", "not usable JSON"),
    ],
)
def test_a_bad_answer_is_one_clear_error(body, why):
    with pytest.raises(AnswerUnusable, match=why):
        decode_answer(body)


def test_decode_answer_reads_whole_answers():
    assert decode_answer(bytearray(b'{"rates": [{"code": "EUR", "v": 1.5e3}]}')) == {"rates": [{"code": "EUR", "v": 1500.0}]}
    assert decode_answer(b"[" * 500 + b"]" * 500) is not None  # nested, but within reach


def test_an_item_that_cannot_be_encoded_is_rejected_and_the_rest_kept():
    source = Source("fx", "http://x", "prices", 5)
    # A lone surrogate, escaped or UTF-8 encoded (json.loads lets both through to a str).
    for surrogate in (b"\\ud800", b"\xed\xa0\x80"):
        extracted = extract_messages(source, decode_answer(b'[{"id": 1, "v": "%s"}, {"id": 2, "v": "ok"}]' % surrogate))
        assert [m.external_id for m in extracted.messages] == ["2"]
        assert len(extracted.bodies) == 1 and b'"ok"' in extracted.bodies[0]
        assert extracted.rejected[0].startswith("item 0 cannot be encoded")
