"""Odoo HTTP sessions in Redis: the key layout and the JSON codec, shared by the ``zero_sudo``
addon (which writes sessions) and the gateway (which reads ``uid``/``db`` to authenticate a
``session_id`` cookie).

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

import json
import re
from collections.abc import Mapping
from typing import Any

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
