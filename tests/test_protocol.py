"""The event protocol, pure: payload boundaries, round trips and every kind of rejection."""

import json

import pytest

from conftest import ids_for_payload_of
from zero_sudo_bus.protocol import (
    MAX_IDS_PER_BUS_MESSAGE,
    MAX_PAYLOAD_BYTES,
    MAX_RECORD_ID,
    BusMessage,
    ChangeBatch,
    FlushReason,
    MessageKind,
    Op,
    Rejected,
    bus_channel,
    chunk_ids,
    decode_bus_message,
    decode_notify_payload,
    encode_change_message,
    encode_flush_message,
    encode_notify_payloads,
    model_key,
    user_channel,
    user_channel_prefix,
)

KEY = model_key("res.partner")


def _decode_all(payloads):
    ids = []
    for payload in payloads:
        batch = decode_notify_payload(payload)
        assert isinstance(batch, ChangeBatch), batch
        assert batch.model_key == KEY and batch.op is Op.WRITE
        ids.extend(batch.ids)
    return ids


def test_max_payload_is_just_below_postgres_limit():
    assert MAX_PAYLOAD_BYTES == 7999


def test_round_trip_small():
    payloads = list(encode_notify_payloads("res.partner", Op.WRITE, [1, 2, 3]))
    assert payloads == ["[%d,2,1,2,3]" % KEY]
    assert _decode_all(payloads) == [1, 2, 3]


def test_empty_ids_give_no_payload():
    assert list(encode_notify_payloads("res.partner", Op.CREATE, [])) == []


def test_payload_of_exactly_the_limit_stays_whole():
    ids = ids_for_payload_of(MAX_PAYLOAD_BYTES)
    payloads = list(encode_notify_payloads(KEY, Op.WRITE, ids))
    assert len(payloads) == 1
    assert len(payloads[0].encode()) == MAX_PAYLOAD_BYTES
    assert _decode_all(payloads) == ids


def test_one_byte_over_the_limit_splits_in_two():
    ids = ids_for_payload_of(MAX_PAYLOAD_BYTES + 1)
    payloads = list(encode_notify_payloads(KEY, Op.WRITE, ids))
    assert len(payloads) == 2
    assert all(len(p.encode()) <= MAX_PAYLOAD_BYTES for p in payloads)
    assert _decode_all(payloads) == ids


def test_one_huge_id():
    payloads = list(encode_notify_payloads(KEY, Op.WRITE, [MAX_RECORD_ID]))
    assert _decode_all(payloads) == [MAX_RECORD_ID]


def test_a_million_ids_round_trip_in_bounded_payloads():
    ids = list(range(1, 1_000_001))
    payloads = list(encode_notify_payloads(KEY, Op.WRITE, ids))
    assert all(len(p.encode()) <= MAX_PAYLOAD_BYTES for p in payloads)
    # greedy packing: every payload but the last could not take one more ID
    assert all(len(p) + 1 + len(str(ids[-1])) > MAX_PAYLOAD_BYTES for p in payloads[:-1])
    assert _decode_all(payloads) == ids


@pytest.mark.parametrize("bad", [0, -1, MAX_RECORD_ID + 1, 1.0, "1", True, None])
def test_encoder_refuses_non_ids(bad):
    with pytest.raises(ValueError):
        list(encode_notify_payloads(KEY, Op.WRITE, [1, bad]))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("", "empty"),
        ("garbage", "not_json"),
        ("[1,2,", "not_json"),
        ("{}", "not_array"),
        ('{"ids":[1]}', "not_array"),
        ("42", "not_array"),
        ("[]", "too_short"),
        ("[1,2]", "too_short"),
        ("[1,2,3.5]", "not_integer"),
        ('[1,2,"3"]', "not_integer"),
        ("[1,2,[3]]", "not_integer"),
        ("[1,2,true]", "not_integer"),
        ("[1,2,null]", "not_integer"),
        ("[1,9,3]", "bad_op"),
        ("[1,2,0]", "bad_id"),
        ("[1,2,-5]", "bad_id"),
        ("[1,2,%d]" % (MAX_RECORD_ID + 1), "bad_id"),
        ("[%d,2,1]" % 2**63, "bad_model_key"),
        ("[1,2,1" + ",1" * 4000 + "]", "oversize"),
        ("[" * 9000, "oversize"),
        ("[" * 3000, "not_json"),
        ("[1,2,1e400]", "not_integer"),
        ("NaN", "not_array"),
        ("\x00\xff", "not_json"),
        (b"\xff\xfe", "not_json"),
    ],
)
def test_decoder_rejects_everything_off_format(payload, reason):
    result = decode_notify_payload(payload)
    assert isinstance(result, Rejected)
    assert result.reason == reason


def test_decoder_never_raises_on_odd_inputs():
    for odd in (None, 12, ["x"], "\ud800", "[" * 100000):
        assert isinstance(decode_notify_payload(odd), Rejected)


def test_bus_messages_round_trip():
    change = decode_bus_message(encode_change_message("ep", 3, KEY, Op.UNLINK, [5, 6]))
    assert change == BusMessage("ep", 3, MessageKind.CHANGE, KEY, Op.UNLINK, (5, 6))
    flush = decode_bus_message(encode_flush_message("ep", 0, FlushReason.START))
    assert flush == BusMessage("ep", 0, MessageKind.FLUSH, reason=FlushReason.START)
    assert change.kind is MessageKind.CHANGE and flush.kind is MessageKind.FLUSH and flush.reason is FlushReason.START
    # A reason this version does not know is kept as text: still a flush, and still said why.
    unknown = decode_bus_message(b'{"v":1,"epoch":"ep","seq":0,"kind":"flush","reason":"rebalance"}')
    assert unknown == BusMessage("ep", 0, MessageKind.FLUSH, reason="rebalance")


def test_bus_message_size_is_bounded():
    with pytest.raises(ValueError):
        encode_change_message("ep", 1, KEY, Op.WRITE, list(range(1, MAX_IDS_PER_BUS_MESSAGE + 2)))
    chunks = list(chunk_ids(tuple(range(1, 2 * MAX_IDS_PER_BUS_MESSAGE + 2))))
    assert [len(c) for c in chunks] == [MAX_IDS_PER_BUS_MESSAGE, MAX_IDS_PER_BUS_MESSAGE, 1]


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage",
        b"[]",
        json.dumps({"v": 2, "epoch": "e", "seq": 1, "kind": "flush"}),
        json.dumps({"v": 1, "epoch": "", "seq": 1, "kind": "flush"}),
        json.dumps({"v": 1, "epoch": "e", "seq": -1, "kind": "flush"}),
        json.dumps({"v": 1, "epoch": "e", "seq": 1, "kind": "other"}),
        json.dumps({"v": 1, "epoch": "e", "seq": 1, "kind": "change", "model": 1, "op": 2, "ids": []}),
        json.dumps({"v": 1, "epoch": "e", "seq": 1, "kind": "change", "model": 1, "op": 2, "ids": ["1"]}),
        json.dumps({"v": 1, "epoch": "e", "seq": 1, "kind": "change", "model": 1, "op": 7, "ids": [1]}),
        json.dumps({"v": 1, "epoch": "e", "seq": 1, "kind": "change", "model": "x", "op": 2, "ids": [1]}),
    ],
)
def test_bus_decoder_rejects_off_format(raw):
    assert isinstance(decode_bus_message(raw), Rejected)


def test_model_keys_and_channels():
    assert model_key("res.partner") != model_key("res.users")
    assert bus_channel("prod") == "zero_sudo:prod:events"
    with pytest.raises(ValueError):
        model_key("")


def test_user_channels_of_the_event_protocol():
    assert user_channel("prod", 7) == "zero_sudo:prod:user:7"
    assert user_channel("prod", 7).startswith(user_channel_prefix("prod"))
    with pytest.raises(ValueError):
        user_channel("prod", 0)
