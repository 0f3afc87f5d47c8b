import functools
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import redis
from zero_sudo_bus.protocol import user_channel
from zero_sudo_bus.sessions import SESSION_GRANTS_KEY, session_grants
from zero_sudo_bus.tokens import sign_token

from odoo import api, models
from odoo.http import request

from odoo.addons.zero_sudo.tools.pools import redis_client

from ..tools.config import gateway_token_secret
from ..tools.exceptions import PushRefused, TokensDisabled
from ..tools.grants import TOKEN_TTL_S, GrantPlan, plan_grants
from ..tools.push import Level, check_user_ids, encode_push, notification

_logger = logging.getLogger(__name__)

# Key of the cursor's postcommit data: [(Redis channel, payload bytes)] of the transaction.
PUSHES = "zero_sudo_live.pushes"
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

# System parameter: where browsers open the gateway's WebSocket. A path ("/ws", the default)
# means this Odoo's own origin behind the reverse proxy (docker/nginx.conf), authenticated by
# the session cookie; a full ws:// or wss:// URL on another origin authenticates with a token
# from /my/gateway/token; an empty value turns the web client's live updates off.
GATEWAY_URL_PARAM = "zero_sudo_live.gateway_url"
DEFAULT_GATEWAY_URL = "/ws"
TOKEN_ROUTE = "/my/gateway/token"
GRANTS_ROUTE = "/my/gateway/grants"
# Reloads of one view are at most one per this many milliseconds (bursts are coalesced).
COALESCE_MS = 500


def _publish(db_name: str, pushes: list[tuple[str, bytes]]) -> None:
    """Postcommit hook: publish the transaction's pushes in one round trip.

    The transaction is committed already: a Redis failure is logged, never raised (the user
    misses a notification, nothing else).
    """
    try:
        with redis_client().pipeline(transaction=False) as pipe:
            for channel, data in pushes:
                pipe.publish(channel, data)
            pipe.execute()
    except REDIS_ERRORS as exc:
        _logger.warning("live pushes: Redis unreachable, %d pushes of %s lost: %s", len(pushes), db_name, exc)


class Live(models.AbstractModel):
    """Server-side API of live updates: gateway tokens and pushes to users.

    Every method is private (server code only): an RPC-reachable push would let any user
    notify any other.
    """

    _name = "zero_sudo.live"
    _description = "zero_sudo: live updates"

    # -- pushes to users -------------------------------------------------------------------
    @api.model
    def _push(self, users: models.BaseModel | Iterable[int], payload: Mapping[str, Any]) -> list[int]:
        """Send ``payload`` (a JSON object) to ``users`` once this transaction commits.

        Checked now, sent later: :class:`PushRefused` for a user that does not exist or a
        payload the gateways would drop; nothing is sent if the transaction rolls back. It
        travels through the process's Redis pool to every gateway, which hands it to the
        ``user:<uid>`` subscribers of those users only. Returns the user IDs.
        """
        if isinstance(users, models.BaseModel):
            if users._name != "res.users":
                raise PushRefused("push to res.users records, not %s" % users._name)
            requested = list(users._ids)
        else:
            requested = list(users)
        valid = [uid for uid in requested if type(uid) is int and uid > 0]
        all_users = self.env["res.users"].sudo()  # only whether recipients exist: server code may notify anyone
        existing = all_users.with_context(active_test=False).browse(valid).exists()._ids
        ids = check_user_ids(requested, existing)
        data = encode_push(payload)
        cr = self.env.cr
        pushes = cr.postcommit.data.get(PUSHES)
        if pushes is None:
            pushes = cr.postcommit.data[PUSHES] = []
            cr.postcommit.add(functools.partial(_publish, cr.dbname, pushes))
        pushes.extend((user_channel(cr.dbname, uid), data) for uid in ids)
        return ids

    @api.model
    def _notify(
        self,
        users: models.BaseModel | Iterable[int],
        message: str,
        title: str | None = None,
        level: Level = Level.INFO,
        sticky: bool = False,
        url: str | None = None,
        url_label: str | None = None,
    ) -> list[int]:
        """Show ``message`` to ``users`` through the web client's notification service, once
        this transaction commits (see :meth:`_push`); ``url`` makes a button of it."""
        return self._push(users, notification(message, title, level, sticky, url, url_label))

    # -- gateway tokens ----------------------------------------------------------------------
    @api.model
    def _grant_plan(self, requested: list[str] | None = None) -> GrantPlan:
        """What a token of the current user may grant (see ``tools.grants.plan_grants``)."""
        published = self.env["ir.model"]._zero_sudo_live_published().all
        env = self.env

        def readable(model: str) -> bool:
            return env[model].browse().has_access("read")

        return plan_grants(env.uid, requested, published, lambda model: model in env, readable)

    @api.model
    def _gateway_token(self, channels: list[str]) -> tuple[str, int]:
        """A token of the current user granting ``channels``, and its expiry (Unix s)."""
        secret = gateway_token_secret()
        if not secret:
            raise TokensDisabled("no gateway_token_secret in odoo.conf's [zero_sudo] section")
        expires_at = int(time.time()) + TOKEN_TTL_S
        return sign_token(secret, self.env.uid, self.env.cr.dbname, channels, expires_at), expires_at

    @api.model
    def _store_session_grants(self) -> dict[str, Any] | None:
        """Write in the current user's Odoo session the channels its cookie grants at the
        gateway (what a default token would grant, for as long), and return them.

        Called when the web client loads (``session_info``) and before it reconnects
        (``GRANTS_ROUTE``); the session store saves the session to Redis at the end of the
        request, where the gateway reads it. None outside a request of this user.
        """
        if request is None or request.session.uid != self.env.uid:
            return None
        grants = session_grants(self._grant_plan(None).granted, int(time.time()) + TOKEN_TTL_S)
        request.session[SESSION_GRANTS_KEY] = grants
        return grants

    @api.model
    def _client_config(self) -> dict[str, Any]:
        """What the web client needs to connect (sent in the session info)."""
        parameters = self.env["ir.config_parameter"].sudo()  # the gateway's address: every browser needs it
        url = parameters.get_param(GATEWAY_URL_PARAM, DEFAULT_GATEWAY_URL)
        return {
            "gateway_url": (url or "").strip(),
            "token_url": TOKEN_ROUTE,
            "grants_url": GRANTS_ROUTE,
            "coalesce_ms": COALESCE_MS,
            "uid": self.env.uid,
        }
