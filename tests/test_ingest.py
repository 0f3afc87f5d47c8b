"""zero_sudo_bus.ingest: the ingestion message format, its decoder's rejections, stream codes."""

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
