"""zero_sudo_bus.tokens: signed gateway tokens, their claims, and every way one is refused."""

import pytest

from zero_sudo_bus.tokens import MAX_TOKEN_CHARS, MAX_TOKEN_TTL_S, TokenError, sign_token, verify_token

NOW = 1_800_000_000


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
