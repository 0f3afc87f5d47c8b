"""zero_sudo_daemons.gateway_protocol, without I/O: grants, commands, rate limits, origins, cookies,
server messages."""

import json

import pytest
from websockets.frames import CloseCode

from zero_sudo_bus.channels import parse_channel
from zero_sudo_bus.protocol import Op
from zero_sudo_daemons.gateway_protocol import (
    MAX_SUBSCRIPTIONS,
    AuthMethod,
    Command,
    CommandOp,
    Principal,
    ProtocolViolation,
    TokenBucket,
    encode_event,
    encode_hello,
    encode_reply,
    encode_resync,
    origin_allowed,
    parse_command,
    parse_origins,
    plan_subscribe,
    session_id_from_cookie,
)


def test_a_session_may_subscribe_to_its_granted_models_and_its_own_user_channel_only():
    session = Principal(7, "prod", AuthMethod.SESSION, frozenset({"user:7", "model:res.partner"}))
    assert session.may_subscribe(parse_channel("model:res.partner"))
    assert not session.may_subscribe(parse_channel("model:hr.employee"))
    assert session.may_subscribe(parse_channel("user:7"))
    assert not session.may_subscribe(parse_channel("user:8"))


def test_a_token_grants_exactly_its_channels_and_model_star_every_model():
    token = Principal(7, "prod", AuthMethod.TOKEN, frozenset({"model:res.partner", "user:7"}))
    assert token.may_subscribe(parse_channel("model:res.partner"))
    assert not token.may_subscribe(parse_channel("model:res.users"))
    assert token.may_subscribe(parse_channel("user:7"))
    every_model = Principal(7, "prod", AuthMethod.TOKEN, frozenset({"model:*", "user:8"}))
    assert every_model.may_subscribe(parse_channel("model:res.users"))
    assert not every_model.may_subscribe(parse_channel("user:8")), "a user channel is its owner's, whatever the grant"


def test_plan_subscribe_accepts_refuses_and_caps():
    token = Principal(7, "prod", AuthMethod.TOKEN, frozenset({"model:*"}))
    plan = plan_subscribe(token, ["model:a"], ["model:a", "model:b", "user:7", "bad name"])
    assert [c.name for c in plan.accepted] == ["model:a", "model:b"]
    assert plan.refused == (("user:7", "forbidden"), ("bad name", "invalid"))
    full = ["model:m%d" % i for i in range(MAX_SUBSCRIPTIONS)]
    plan = plan_subscribe(token, full, ["model:m0", "model:one_more"])
    assert [c.name for c in plan.accepted] == ["model:m0"]
    assert plan.refused == (("model:one_more", "limit"),)


# -- commands ------------------------------------------------------------------------------------


def test_parse_commands():
    assert parse_command('{"op":"auth","token":"v1.x.y"}') == Command(CommandOp.AUTH, token="v1.x.y")
    assert parse_command('{"op":"sub","ch":"model:a","id":3}') == Command(CommandOp.SUB, 3, ("model:a",))
    assert parse_command('{"op":"unsub","ch":["model:a","model:a","model:b"],"id":"x"}') == Command(
        CommandOp.UNSUB, "x", ("model:a", "model:b")
    )


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"{}", CloseCode.UNSUPPORTED_DATA),
        ("", CloseCode.POLICY_VIOLATION),
        ("{", CloseCode.POLICY_VIOLATION),
        ("[" * 100_000, CloseCode.POLICY_VIOLATION),
        ("null", CloseCode.POLICY_VIOLATION),
        ('{"op":"sub"}', CloseCode.POLICY_VIOLATION),
        ('{"op":"sub","ch":[]}', CloseCode.POLICY_VIOLATION),
        ('{"op":"sub","ch":[1]}', CloseCode.POLICY_VIOLATION),
        ('{"op":"sub","ch":"model:a","id":{}}', CloseCode.POLICY_VIOLATION),
        ('{"op":"sub","ch":"model:a","id":"%s"}' % ("x" * 65), CloseCode.POLICY_VIOLATION),
        ('{"op":"auth"}', CloseCode.POLICY_VIOLATION),
        ('{"op":"auth","token":1}', CloseCode.POLICY_VIOLATION),
        ('{"op":"AUTH","token":"x"}', CloseCode.POLICY_VIOLATION),
        ('{"op":["sub"],"ch":"model:a"}', CloseCode.POLICY_VIOLATION),
        ('{"op":null,"ch":"model:a"}', CloseCode.POLICY_VIOLATION),
        (json.dumps({"op": "sub", "ch": ["model:m%d" % i for i in range(MAX_SUBSCRIPTIONS + 1)]}), CloseCode.POLICY_VIOLATION),
    ],
)
def test_malformed_commands_are_violations_with_a_close_code(frame, code):
    with pytest.raises(ProtocolViolation) as info:
        parse_command(frame)
    assert info.value.code is code


# -- rate limit ----------------------------------------------------------------------------------


def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.4) is False  # 0.8 token refilled
    assert bucket.take(0.5) is True  # 1 token
    assert bucket.take(100.0) and bucket.tokens == 2  # refill capped at the burst


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0.5)])
def test_token_bucket_refuses_nonsense(rate, burst):
    with pytest.raises(ValueError):
        TokenBucket(rate, burst, 0.0)


# -- origins, cookies ---------------------------------------------------------------------------


def test_origin_allow_list():
    allowed = parse_origins(" https://erp.example.com/ ,http://localhost:8069,")
    assert allowed == {"https://erp.example.com", "http://localhost:8069"}
    assert origin_allowed("https://ERP.example.com", allowed)
    assert not origin_allowed("https://erp.example.com.evil.net", allowed)
    assert not origin_allowed("null", allowed)
    assert origin_allowed(None, allowed), "no Origin: not a browser, so no hijackable cookie"
    assert origin_allowed("https://anything", parse_origins("*"))


def test_session_id_from_cookie_header():
    assert session_id_from_cookie("frontend_lang=en_US; session_id=abc123; tz=UTC") == "abc123"
    assert session_id_from_cookie("tz=UTC") is None
    assert session_id_from_cookie("session_id=") is None
    assert session_id_from_cookie(None) is None


# -- server messages ---------------------------------------------------------------------------


def test_server_messages():
    event = json.loads(encode_event("model:res.partner", "res.partner", Op.UNLINK, (3, 4), "ep", 9))
    assert event == {
        "t": "event",
        "ch": "model:res.partner",
        "model": "res.partner",
        "op": "unlink",
        "ids": [3, 4],
        "epoch": "ep",
        "seq": 9,
    }
    assert json.loads(encode_resync("gap")) == {"t": "resync", "reason": "gap"}
    hello = json.loads(encode_hello(Principal(7, "prod", AuthMethod.TOKEN, frozenset({"user:7", "model:*"}))))
    assert hello == {"t": "hello", "uid": 7, "db": "prod", "auth": "token", "grants": ["model:*", "user:7"]}
    reply = json.loads(encode_reply(Command(CommandOp.SUB, 5), ["model:a"], [("user:9", "forbidden")]))
    assert reply == {"t": "subscribed", "ch": ["model:a"], "refused": [{"ch": "user:9", "reason": "forbidden"}], "id": 5}
