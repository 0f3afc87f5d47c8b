"""The gateway's pure parts: tokens, channels, grants, commands, rate limits, origins, messages."""

import json

import pytest
from websockets.frames import CloseCode

from zero_sudo_bus.channels import parse_channel
from zero_sudo_bus.protocol import Op, user_channel, user_channel_prefix
from zero_sudo_bus.tokens import MAX_TOKEN_CHARS, MAX_TOKEN_TTL_S, TokenError, sign_token, verify_token
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
from zero_sudo_daemons.launcher import DAEMONS
from zero_sudo_daemons.settings import resolve_settings

NOW = 1_800_000_000


# -- tokens ----------------------------------------------------------------------------------


def test_a_signed_token_verifies_to_its_claims():
    token = sign_token("s3cret", 7, "prod", ["model:res.partner", "user:7", "user:7"], NOW + 60)
    claims = verify_token("s3cret", token, NOW)
    assert (claims.uid, claims.db, claims.channels, claims.expires_at) == (7, "prod", {"model:res.partner", "user:7"}, NOW + 60)
    assert token.startswith("v1.") and token.isascii()


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), "bad_signature"),
        (
            lambda t: "v1." + sign_token("s3cret", 1, "prod", ["model:*"], NOW + 60).split(".")[1] + "." + t.split(".")[2],
            "bad_signature",
        ),
        (lambda t: "v2." + t[3:], "malformed"),
        (lambda t: t + ".x", "malformed"),
        (lambda t: "", "malformed"),
        (lambda t: "é" * 10, "malformed"),
        (lambda t: "x" * (MAX_TOKEN_CHARS + 1), "malformed"),
        (lambda t: t.rsplit(".", 1)[0] + ".!!!", "malformed"),
    ],
    ids=["flipped-signature", "swapped-claims", "version", "extra-part", "empty", "non-ascii", "too-long", "bad-base64"],
)
def test_tampered_or_malformed_tokens_are_refused(mutate, reason):
    token = sign_token("s3cret", 7, "prod", ["model:res.partner"], NOW + 60)
    with pytest.raises(TokenError) as info:
        verify_token("s3cret", mutate(token), NOW)
    assert info.value.reason == reason


def test_a_token_signed_with_another_secret_is_refused():
    with pytest.raises(TokenError, match="bad_signature"):
        verify_token("s3cret", sign_token("other", 7, "prod", ["model:*"], NOW + 60), NOW)


def test_expiry_is_checked_against_the_given_clock():
    token = sign_token("s3cret", 7, "prod", ["model:*"], NOW + 60)
    assert verify_token("s3cret", token, NOW + 59).uid == 7
    with pytest.raises(TokenError, match="expired"):
        verify_token("s3cret", token, NOW + 60)


def test_a_token_living_longer_than_a_day_is_refused():
    token = sign_token("s3cret", 7, "prod", ["model:*"], NOW + MAX_TOKEN_TTL_S + 1)
    with pytest.raises(TokenError, match="lifetime_too_long"):
        verify_token("s3cret", token, NOW)


def test_no_secret_means_no_token_at_all():
    with pytest.raises(TokenError, match="no_secret"):
        verify_token("", "v1.a.b", NOW)
    with pytest.raises(TokenError, match="no_secret"):
        sign_token(b"", 7, "prod", [], NOW)


@pytest.mark.parametrize("uid", [0, -1, "7", None, True])
def test_sign_token_refuses_a_bad_uid(uid):
    with pytest.raises(ValueError):
        sign_token("s3cret", uid, "prod", [], NOW)


# -- channels and grants -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "model", "uid"),
    [("model:res.partner", "res.partner", None), ("model:sale.order.line", "sale.order.line", None), ("user:42", None, 42)],
)
def test_valid_channel_names(name, model, uid):
    channel = parse_channel(name)
    assert (channel.name, channel.model, channel.uid) == (name, model, uid)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "model:",
        "model:Res.Partner",
        "model:res..partner",
        "model:*",
        "model:" + "a" * 129,
        "user:0",
        "user:07",
        "user:x",
        "users:1",
        5,
    ],
)
def test_invalid_channel_names(name):
    assert parse_channel(name) is None


def test_a_session_may_subscribe_to_any_model_and_its_own_user_channel_only():
    session = Principal(7, "prod", AuthMethod.SESSION)
    assert session.may_subscribe(parse_channel("model:hr.employee"))
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


def test_user_channels_of_the_event_protocol():
    assert user_channel("prod", 7) == "zero_sudo:prod:user:7"
    assert user_channel("prod", 7).startswith(user_channel_prefix("prod"))
    with pytest.raises(ValueError):
        user_channel("prod", 0)


# -- wiring ----------------------------------------------------------------------------------------


def test_gateway_settings_and_launcher_entry():
    settings = resolve_settings([], {"ZERO_SUDO_GATEWAY_TOKEN_SECRET": "x"})
    assert (settings.gateway_port, settings.gateway_token_secret, settings.session_prefix) == (9104, "x", "zero_sudo:")
    assert DAEMONS["gateway"] == "zero_sudo_daemons.gateway"
