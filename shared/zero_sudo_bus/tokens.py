"""Gateway tokens: short-lived, HMAC-signed grants that Odoo mints and the gateway checks.

One definition for both sides. A token says "user ``uid`` of database ``db`` may subscribe to
these gateway channels until ``exp``"; whoever holds the shared secret (the ``[zero_sudo]``
``gateway_token_secret`` of odoo.conf, or ``ZERO_SUDO_GATEWAY_TOKEN_SECRET``) can mint one, so
the secret never reaches a browser. Format, all ASCII::

    v1.<base64url(claims JSON)>.<base64url(HMAC-SHA256(secret, "v1." + base64url(claims JSON)))>

with claims ``{"uid": int, "db": str, "ch": [str, ...], "exp": int}`` (``exp`` in Unix
seconds). ``ch`` holds exact channel names (``model:res.partner``, ``user:7``) or ``model:*``
for every model channel. Pure functions: the current time is an argument.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass

TOKEN_VERSION = "v1"

# A token travels in one WebSocket command whose size the gateway bounds; 4 KiB holds a
# grant of a hundred channels, and refusing longer input before any decoding or hashing
# keeps a forged token cheap to reject.
MAX_TOKEN_CHARS = 4096

# Grants are meant to live minutes (the page asks Odoo for a fresh one on each reconnect):
# a token valid for longer than a day is a mistake on the minting side.
MAX_TOKEN_TTL_S = 86_400


class TokenError(ValueError):
    """A token was refused; ``reason`` is a stable short code (a metric label)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a valid token grants."""

    uid: int
    db: str
    channels: frozenset[str]
    expires_at: int


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _signature(secret: bytes, signed_part: str) -> bytes:
    return hmac.new(secret, signed_part.encode("ascii"), hashlib.sha256).digest()


def _secret_bytes(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if not key:
        raise TokenError("no_secret")
    return key


def sign_token(secret: str | bytes, uid: int, db: str, channels: Iterable[str], expires_at: int) -> str:
    """Mint a token for ``uid`` of ``db`` granting ``channels`` until ``expires_at`` (Unix s)."""
    if type(uid) is not int or uid < 1 or not db or type(expires_at) is not int:
        raise ValueError("a token needs a positive int uid, a database and an int expiry")
    claims = {"uid": uid, "db": db, "ch": sorted(set(channels)), "exp": expires_at}
    signed_part = "%s.%s" % (TOKEN_VERSION, _b64encode(json.dumps(claims, separators=(",", ":")).encode("utf-8")))
    token = "%s.%s" % (signed_part, _b64encode(_signature(_secret_bytes(secret), signed_part)))
    if len(token) > MAX_TOKEN_CHARS:
        raise ValueError("token longer than %d characters: grant fewer channels" % MAX_TOKEN_CHARS)
    return token


def verify_token(secret: str | bytes, token: object, now: float) -> TokenClaims:
    """The claims of a genuine, unexpired token; :class:`TokenError` otherwise.

    The signature is checked (in constant time) before the claims are even decoded, so
    nothing an attacker writes is parsed unless it was signed with the secret.
    """
    key = _secret_bytes(secret)
    if type(token) is not str or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise TokenError("malformed")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_VERSION:
        raise TokenError("malformed")
    signed_part = "%s.%s" % (parts[0], parts[1])
    try:
        signature = _b64decode(parts[2])
    except (binascii.Error, ValueError):
        raise TokenError("malformed") from None
    if not hmac.compare_digest(signature, _signature(key, signed_part)):
        raise TokenError("bad_signature")
    try:
        claims = json.loads(_b64decode(parts[1]))
    except (binascii.Error, ValueError):
        raise TokenError("malformed") from None
    uid, db, channels, exp = (claims.get(k) for k in ("uid", "db", "ch", "exp")) if type(claims) is dict else (None,) * 4
    if (
        type(uid) is not int
        or uid < 1
        or type(db) is not str
        or not db
        or type(channels) is not list
        or not all(type(c) is str for c in channels)
        or type(exp) is not int
    ):
        raise TokenError("malformed")
    if exp <= now:
        raise TokenError("expired")
    if exp > now + MAX_TOKEN_TTL_S:
        raise TokenError("lifetime_too_long")
    return TokenClaims(uid, db, frozenset(channels), exp)
