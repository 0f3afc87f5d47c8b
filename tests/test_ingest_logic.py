"""Ingestion's pure parts: the message format, batching, landing plans, polling decisions."""

import json
import random

import pamqp.encode
import pytest

from zero_sudo_bus.ingest import (
    MAX_MESSAGE_BYTES,
    IngestMessage,
    check_stream_code,
    decode_ingest_message,
    encode_ingest_message,
    routing_key,
)
from zero_sudo_bus.protocol import Rejected
from zero_sudo_daemons.batching import BatchWindow
from zero_sudo_daemons.errors import ConfigurationError
from zero_sudo_daemons.landing_plan import (
    LandingRow,
    RedeliveryLedger,
    decode_batch,
    encodable_headers,
    is_row_fault,
    plan_landing,
    stream_codes,
)
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


def test_ingest_message_round_trip_keeps_unicode():
    message = IngestMessage("orders", "A-17", {"name": "Zoë", "n": [1, 2]})
    assert decode_ingest_message(encode_ingest_message(message)) == message
    assert routing_key("prod", "orders") == "prod.orders"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff", "not_json"),
        (b"[]", "not_object"),
        (b'{"v":2,"stream":"s","external_id":"1","data":{}}', "bad_version"),
        (b'{"v":1,"stream":"s","external_id":"1","data":[]}', "bad_data"),
        (b'{"v":1,"stream":"S!","external_id":"1","data":{}}', "bad_envelope"),
        (b'{"v":1,"stream":"s","external_id":"","data":{}}', "bad_envelope"),
        (b'{"v":1,"stream":"s","external_id":true,"data":{}}', "bad_envelope"),
        (b'{"v":1,"stream":"s","data":{}}', "bad_envelope"),
        (b'{"v":1,"stream":"s","external_id":"\\ud800","data":{}}', "bad_envelope"),
        (b'{"v":1,"stream":"s","external_id":"1","data":{"n":1e400}}', "not_json"),
        (b'{"v":1,"stream":"s","external_id":"1","data":{"n":NaN}}', "not_json"),
        (b'{"v":1,"stream":"s","external_id":"1","data":{"n":-Infinity}}', "not_json"),
        (b'{"v":1,"stream":"s","external_id":"1","data":' + b"[" * 10**5 + b"]" * 10**5 + b"}", "not_json"),
        (b" " * (MAX_MESSAGE_BYTES + 1), "too_large"),
    ],
)
def test_ingest_decoder_rejects(body, reason):
    result = decode_ingest_message(body)
    assert isinstance(result, Rejected) and result.reason == reason


@pytest.mark.parametrize("code", ["", "A", "a.b", "a/b", "-a", "x" * 65])
def test_stream_codes_are_safe_in_routing_keys_and_urls(code):
    with pytest.raises(ValueError):
        check_stream_code(code)


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


def test_plan_lands_good_messages_and_dead_letters_the_rest():
    bodies = [
        ("m1", encode_ingest_message(IngestMessage("orders", "1", {"x": 1}))),
        ("m2", b"garbage"),
        ("m3", encode_ingest_message(IngestMessage("gone", "2", {}))),
        ("m4", encode_ingest_message(IngestMessage("orders", "3", {"s": "a\u0000b"}))),
    ]
    decoded = decode_batch(bodies)
    assert stream_codes(decoded) == ["gone", "orders"]
    plan = plan_landing(decoded, {"orders": 7})
    assert plan.rows == [LandingRow(7, "1", '{"x":1}')]
    assert plan.row_messages == ["m1"]
    assert [(m, r.split(":")[0]) for m, r in plan.dead] == [("m2", "malformed"), ("m3", "unknown stream"), ("m4", "malformed")]


def test_plan_dead_letters_text_postgresql_cannot_store():
    decoded = decode_batch([("m1", b'{"v":1,"stream":"orders","external_id":"1","data":{"s":"\\udfff"}}')])
    plan = plan_landing(decoded, {"orders": 7})
    assert plan.rows == [] and plan.dead[0][1].startswith("malformed: text with a lone UTF-16 surrogate")


@pytest.mark.parametrize(
    ("sqlstate", "row_fault"),
    [("22P02", True), ("23514", True), ("54001", True), ("08006", False), ("40001", False), ("42P01", False), (None, False)],
)
def test_only_data_errors_are_the_rows_fault(sqlstate, row_fault):
    assert is_row_fault(sqlstate) is row_fault


def test_headers_that_are_not_utf8_are_republished_byte_for_byte():
    headers = {"raw": b"\xff\xfe", "nested": {"list": [b"\xc3\x28", 1]}, "n": 1, "s": "é"}
    encodable = encodable_headers(headers)
    assert encodable == {"raw": bytearray(b"\xff\xfe"), "nested": {"list": [bytearray(b"\xc3\x28"), 1]}, "n": 1, "s": "é"}
    pamqp.encode.field_table(encodable)  # what the broker client does; raw bytes made it raise


def test_a_message_redelivered_too_often_is_given_up_on_and_memory_stays_bounded():
    ledger = RedeliveryLedger(limit=3, memory=2)
    assert [ledger.redelivered("db.orders", b"poison") for _ in range(2)] == [False, True]
    assert not ledger.redelivered("db.prices", b"poison"), "another routing key is another message"
    ledger.redelivered("db.x", b"third")  # the oldest is forgotten
    assert not ledger.redelivered("db.orders", b"poison")


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
