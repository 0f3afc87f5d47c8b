"""zero_sudo_bus.sessions: the session key layout and codec the addon's session store and the
gateway share; the store takes every key from there."""

import ast
import re

import pytest

from conftest import ADDONS
from zero_sudo_bus.channels import MAX_SUBSCRIPTIONS
from zero_sudo_bus.sessions import (
    SESSION_GRANTS_KEY,
    all_user_sessions,
    decode_session,
    encode_session,
    granted_channels,
    grants_are_stale,
    session_grants,
    session_key,
    session_uid,
    sessions_starting_with,
    user_sessions_key,
)


def test_session_codec_is_json_and_refuses_what_json_cannot_hold():
    data = {"uid": 2, "db": "prod", "login": "admin", "context": {"lang": "fr_FR"}}
    assert decode_session(encode_session(data)) == data
    assert session_uid(decode_session(encode_session(data))) == 2
    with pytest.raises(TypeError):
        encode_session({"uid": object()})
    for raw in (None, b"\x80\x04pickle", b"[1,2]", b"nope"):
        assert decode_session(raw) is None


NOW = 1_800_000_000


def test_a_session_grants_its_stored_model_channels_until_they_expire():
    session = {
        "uid": 7,
        "db": "prod",
        SESSION_GRANTS_KEY: session_grants(["model:res.partner", "user:7", "model:res.partner"], NOW + 300),
    }
    assert decode_session(encode_session(session)) == session, "stored as JSON in Redis"
    assert granted_channels(session, 7, NOW) == {"user:7", "model:res.partner"}
    assert granted_channels(session, 7, NOW + 300) == {"user:7"}, "expired: the user's own channel only"


@pytest.mark.parametrize(
    "grants",
    [
        None,
        "model:res.partner",
        {"channels": ["model:res.partner"]},
        {"channels": ["model:res.partner"], "exp": str(NOW + 300)},
        {"channels": "model:res.partner", "exp": NOW + 300},
        {"channels": ["model:*", "user:8", "model:Bad Name", 5, None], "exp": NOW + 300},
    ],
    ids=["none", "not-an-object", "no-expiry", "expiry-not-int", "channels-not-list", "star-other-user-garbage"],
)
def test_a_missing_or_malformed_grant_gives_the_users_own_channel_only(grants):
    session = {"uid": 7, "db": "prod"} if grants is None else {"uid": 7, "db": "prod", SESSION_GRANTS_KEY: grants}
    assert granted_channels(session, 7, NOW) == {"user:7"}


def test_stale_means_an_entry_that_grants_nothing_not_a_user_who_reads_no_model():
    assert not grants_are_stale({"uid": 7}, NOW), "no entry: a session older than the addon"
    assert not grants_are_stale({SESSION_GRANTS_KEY: session_grants([], NOW + 300)}, NOW)
    assert grants_are_stale({SESSION_GRANTS_KEY: session_grants([], NOW)}, NOW)
    assert grants_are_stale({SESSION_GRANTS_KEY: "garbage"}, NOW)


def test_a_session_grants_no_more_model_channels_than_a_connection_holds():
    many = ["model:m%d" % number for number in range(3 * MAX_SUBSCRIPTIONS)]
    granted = granted_channels({SESSION_GRANTS_KEY: session_grants(many, NOW + 1)}, 7, NOW)
    assert len(granted) == MAX_SUBSCRIPTIONS + 1 and "user:7" in granted


def test_session_keys():
    assert session_key("zero_sudo:", "abc") == "zero_sudo:session:abc"
    assert user_sessions_key("zero_sudo:", "prod", 7) == "zero_sudo:user_sessions:prod:7"
    with pytest.raises(ValueError):
        user_sessions_key("zero_sudo:", "prod", True)


def test_scan_patterns_match_their_keys_only_whatever_the_prefix(redis_client):
    assert sessions_starting_with("zero_sudo:", "abc") == "zero_sudo:session:abc*"
    assert all_user_sessions("zero_sudo:") == "zero_sudo:user_sessions:*"
    with pytest.raises(ValueError):
        sessions_starting_with("zero_sudo:", "")
    # Glob characters in a prefix are literal: another deployment's keys never match.
    ours, theirs = "zs_glob?[1]*:", "zs_globX1Y:"
    keys = [session_key(p, "abcdef") for p in (ours, theirs)] + [user_sessions_key(p, "prod", 7) for p in (ours, theirs)]
    redis_client.mset(dict.fromkeys(keys, 1))
    try:
        assert list(redis_client.scan_iter(match=sessions_starting_with(ours, "abc"), count=1000)) == [keys[0].encode()]
        assert list(redis_client.scan_iter(match=all_user_sessions(ours), count=1000)) == [keys[2].encode()]
    finally:
        redis_client.delete(*keys)


def test_the_session_store_hard_codes_no_key():
    """Every key the addon's store reads or scans comes from zero_sudo_bus.sessions."""
    source = (ADDONS / "zero_sudo" / "tools" / "session_store.py").read_text()
    texts = [node.value for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Constant) and type(node.value) is str]
    layout = re.compile(r"session:(?! )|user_sessions|:\*")  # a log line says "session: ..."
    assert [text for text in texts if layout.search(text)] == []
    assert "zero_sudo_bus.sessions" in source
