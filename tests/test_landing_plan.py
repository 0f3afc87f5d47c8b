"""zero_sudo_daemons.landing_plan, without I/O: which rows land, which messages are dead-lettered."""

import pamqp.encode
import pytest

from zero_sudo_bus.ingest import (
    IngestMessage,
    encode_ingest_message,
)
from zero_sudo_daemons.landing_plan import (
    LandingRow,
    RedeliveryLedger,
    decode_batch,
    encodable_headers,
    is_row_fault,
    plan_landing,
    stream_codes,
)


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
