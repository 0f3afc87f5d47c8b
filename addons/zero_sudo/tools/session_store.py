"""Odoo's HTTP sessions in Redis instead of the filesystem, so any web node serves any user.

Layout and codec come from ``zero_sudo_bus.sessions`` (the gateway reads the same keys). JSON,
never pickle. Every read refreshes the TTL (``GETEX``), so an active user stays logged in and an
idle one expires after ``session_ttl`` seconds. Redis being unreachable logs the user out
(a fresh anonymous session) instead of failing the request.

With Sentinels (``redis_sentinels``), a replica exists, and Redis replicates asynchronously:
each session write is followed by ``WAIT 1`` (at most ``session_replica_wait_ms``) on the
same connection, so a login the user saw succeed is on the replica a failover promotes.
"""

import logging
import re

import redis
from zero_sudo_bus.sessions import (
    all_user_sessions,
    decode_session,
    encode_session,
    session_key,
    session_uid,
    sessions_starting_with,
    user_sessions_key,
)

from odoo import http

from .pools import redis_client
from .settings import settings_from_odoo_conf

_logger = logging.getLogger(__name__)

REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

# SCAN batch size when revoking devices or pruning indexes: large enough to walk a million keys
# in a few hundred round trips, small enough that one call never blocks Redis noticeably.
SCAN_COUNT = 1000

# The write of one session and of its user index, atomic as MULTI/EXEC was, but one command,
# so that WAIT can follow it on the same connection in a plain pipeline (WAIT counts what
# its own connection wrote; inside MULTI it would not block). KEYS: session, user index (or
# none); ARGV: session JSON, TTL, sid.
SAVE_SESSION = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if KEYS[2] then
    redis.call('SADD', KEYS[2], ARGV[3])
    redis.call('EXPIRE', KEYS[2], ARGV[2])
end
"""
REPLICAS_TO_WAIT_FOR = 1  # Sentinel promotes one replica: the session must be on one

_IDENTIFIER_RE = re.compile(r"^[A-Za-z0-9_-]{42}$")  # Odoo's res.device session identifier


class RedisSessionStore:
    """Drop-in replacement of ``odoo.http.FilesystemSessionStore`` (the methods Odoo calls)."""

    # Odoo's own sid format, validation and rotation are kept as they are.
    generate_key = http.FilesystemSessionStore.generate_key
    is_valid_key = http.FilesystemSessionStore.is_valid_key
    rotate = http.FilesystemSessionStore.rotate

    def __init__(self, session_class: type = http.Session) -> None:
        conf = settings_from_odoo_conf()
        self.session_class = session_class
        self.prefix = conf.session_prefix
        self.ttl = conf.session_ttl
        # Only with Sentinels is there a replica a failover would promote.
        self.replica_wait_ms = conf.session_replica_wait_ms if conf.redis_sentinels else 0

    def new(self) -> http.Session:
        return self.session_class({}, self.generate_key(), True)

    def get(self, sid: str) -> http.Session:
        """The stored session (its TTL refreshed), or a new empty one."""
        try:
            data = decode_session(redis_client().getex(session_key(self.prefix, sid), ex=self.ttl))
        except REDIS_ERRORS as exc:
            _logger.warning("session store: Redis unreachable, serving a fresh session: %s", exc)
            data = None
        if data is None:
            return self.session_class({}, sid, True)
        return self.session_class(data, sid, False)

    def save(self, session: http.Session) -> None:
        """Store the session for ``session_ttl`` seconds, and index it under its user."""
        key = session_key(self.prefix, session.sid)
        uid = session_uid(session)
        keys = [key]
        if uid is not None and session.get("db"):
            keys.append(user_sessions_key(self.prefix, session["db"], uid))
        try:
            with redis_client().pipeline(transaction=False) as pipe:
                pipe.eval(SAVE_SESSION, len(keys), *keys, encode_session(session), self.ttl, session.sid)
                if self.replica_wait_ms:
                    pipe.wait(REPLICAS_TO_WAIT_FOR, self.replica_wait_ms)
                replies = pipe.execute()
        except REDIS_ERRORS as exc:
            _logger.warning("session store: Redis unreachable, session %s... not saved: %s", session.sid[:8], exc)
            return
        if self.replica_wait_ms and replies[-1] < REPLICAS_TO_WAIT_FOR:
            _logger.warning(
                "session store: no replica acknowledged session %s... within %d ms: a failover now would lose it",
                session.sid[:8],
                self.replica_wait_ms,
            )

    def delete(self, session: http.Session) -> None:
        try:
            redis_client().delete(session_key(self.prefix, session.sid))
        except REDIS_ERRORS as exc:
            _logger.warning("session store: Redis unreachable, session %s... not deleted: %s", session.sid[:8], exc)

    def logout_everywhere(self, db: str, uid: int) -> int:
        """Delete every session of user ``uid`` of ``db``; returns how many existed."""
        client = redis_client()
        index = user_sessions_key(self.prefix, db, uid)
        sids = [sid.decode() for sid in client.smembers(index)]
        keys = [session_key(self.prefix, sid) for sid in sids]
        with client.pipeline(transaction=True) as pipe:
            if keys:
                pipe.delete(*keys)
            pipe.delete(index)
            deleted = pipe.execute()[0] if keys else 0
        _logger.info("session store: logged out user %d of %s everywhere (%d sessions)", uid, db, deleted)
        return deleted

    def delete_from_identifiers(self, identifiers: list[str]) -> None:
        """Revoke the sessions whose sid starts with one of ``identifiers`` (res.device)."""
        client = redis_client()
        for identifier in identifiers:
            if not _IDENTIFIER_RE.match(identifier):
                continue  # as Odoo: never let a crafted identifier match other sessions
            keys = list(client.scan_iter(match=sessions_starting_with(self.prefix, identifier), count=SCAN_COUNT))
            if keys:
                client.delete(*keys)

    def vacuum(self, max_lifetime: int | None = None) -> None:
        """Sessions expire by TTL; only the user indexes lose the sids of expired sessions."""
        client = redis_client()
        for index in client.scan_iter(match=all_user_sessions(self.prefix), count=SCAN_COUNT):
            sids = [sid.decode() for sid in client.smembers(index)]
            with client.pipeline(transaction=False) as pipe:
                for sid in sids:
                    pipe.exists(session_key(self.prefix, sid))
                alive = pipe.execute()
            dead = [sid for sid, exists in zip(sids, alive, strict=True) if not exists]
            if dead:
                client.srem(index, *dead)
