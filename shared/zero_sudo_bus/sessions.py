"""Odoo HTTP sessions in Redis: the key layout and the JSON codec, shared by the ``zero_sudo``
addon (which writes sessions) and the gateway (which reads ``uid``/``db`` to authenticate a
``session_id`` cookie, and the live-update channels the session grants).

Layout, under a deployment-wide prefix (``zero_sudo:`` by default):

* ``<prefix>session:<sid>``: the session, a JSON object (``uid``, ``db``, ``login``, ``context``…),
  with a TTL refreshed on every use;
* ``<prefix>user_sessions:<db>:<uid>``: a set of the sids a user logged in with, so that all of
  them can be deleted at once ("log out everywhere"). It expires with the user's last session.

Every key, and every SCAN pattern over them (:func:`sessions_starting_with`,
:func:`all_user_sessions`), comes from here: the addon's session store hard-codes none.

JSON only, never pickle: whoever can write to Redis must not be able to run code in Odoo.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .channels import MAX_SUBSCRIPTIONS, parse_channel, user_channel_name

DEFAULT_PREFIX = "zero_sudo:"

# The two kinds of key, after the prefix: every key and SCAN pattern is built from these.
_SESSION = "session:"
_USER_SESSIONS = "user_sessions:"

# What SCAN MATCH reads as a glob: escaped in the literal parts of a pattern, so a prefix such
# as "erp[1]:" never matches another deployment's keys.
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")


def _glob_literal(text: str) -> str:
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def session_key(prefix: str, sid: str) -> str:
    """The Redis key holding session ``sid``."""
    if not sid:
        raise ValueError("session id must not be empty")
    return "%s%s%s" % (prefix, _SESSION, sid)


def user_sessions_key(prefix: str, db: str, uid: int) -> str:
    """The Redis set of the sids of user ``uid`` of database ``db``."""
    if not db or type(uid) is not int:
        raise ValueError("a user index needs a database name and an int uid")
    return "%s%s%s:%d" % (prefix, _USER_SESSIONS, db, uid)


def sessions_starting_with(prefix: str, sid_start: str) -> str:
    """The SCAN pattern of every session key whose sid starts with ``sid_start``.

    Odoo revokes a device by the first characters of its sids (``res.device``'s identifier).
    """
    if not sid_start:
        raise ValueError("a sid start must not be empty: it would match every session")
    return "%s*" % _glob_literal(session_key(prefix, sid_start))


def all_user_sessions(prefix: str) -> str:
    """The SCAN pattern of every user's set of sids (:func:`user_sessions_key`), all databases."""
    return "%s*" % _glob_literal(prefix + _USER_SESSIONS)


def encode_session(data: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON of the session; a value JSON cannot hold raises ``TypeError``."""
    return json.dumps(dict(data), separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def decode_session(raw: bytes | str | None) -> dict[str, Any] | None:
    """The session stored as ``raw``, or None when it is missing or not a JSON object.

    None means "no session": the caller starts a fresh, logged-out one instead of failing.
    """
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return data if type(data) is dict else None


def session_uid(data: Mapping[str, Any] | None) -> int | None:
    """The logged-in user of a decoded session (None when anonymous or half-logged-in)."""
    uid = data.get("uid") if data else None
    return uid if type(uid) is int else None


# -- live-update grants ------------------------------------------------------------------------
# Key, inside an Odoo session, of the gateway channels that session may subscribe to when its
# cookie authenticates a WebSocket: {"channels": [...], "exp": <Unix s>}. The zero_sudo_live
# addon writes it (the channels a token of the same user would grant), the gateway reads it.
SESSION_GRANTS_KEY = "zero_sudo_live_grants"


def session_grants(channels: Iterable[str], expires_at: int) -> dict[str, Any]:
    """The value stored under :data:`SESSION_GRANTS_KEY`: ``channels`` until ``expires_at``."""
    return {"channels": sorted(set(channels)), "exp": int(expires_at)}


def _valid_grants(data: Mapping[str, Any] | None, now: float) -> list[Any] | None:
    """The stored channel list while its entry is well-formed and unexpired, else None."""
    grants = data.get(SESSION_GRANTS_KEY) if data else None
    if type(grants) is not dict:
        return None
    channels, expires_at = grants.get("channels"), grants.get("exp")
    if type(expires_at) is not int or expires_at <= now or type(channels) is not list:
        return None
    return channels


def grants_are_stale(data: Mapping[str, Any] | None, now: float) -> bool:
    """Whether the session holds a grants entry that no longer grants anything (expired, or
    malformed): the web client should have renewed it before connecting."""
    return bool(data) and SESSION_GRANTS_KEY in data and _valid_grants(data, now) is None


def granted_channels(data: Mapping[str, Any] | None, uid: int, now: float) -> frozenset[str]:
    """The channels a session's cookie grants at ``now``.

    The user's own channel always (the session proves who the user is); the stored model
    channels only while they have not expired and are well-formed, so a stale or tampered
    entry grants nothing more than the user's own channel. Expiry bounds how long a revoked
    read right survives in a session nobody reloaded, exactly as for tokens.
    """
    channels = _valid_grants(data, now) or []
    models = (name for name in channels if (channel := parse_channel(name)) is not None and channel.model)
    return frozenset((user_channel_name(uid), *itertools.islice(models, MAX_SUBSCRIPTIONS)))
