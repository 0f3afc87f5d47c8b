import logging

from odoo import http
from odoo.http import request

from ..models.zero_sudo_live import GRANTS_ROUTE, TOKEN_ROUTE
from ..tools.exceptions import TokensDisabled
from ..tools.grants import parse_requested

_logger = logging.getLogger(__name__)


class LiveController(http.Controller):
    @http.route(TOKEN_ROUTE, type="http", auth="user", methods=["GET"], readonly=True)
    def gateway_token(self, channels=None, **_kw):
        """A short-lived gateway token of the logged-in user (text/plain), as docs/gateway.md
        tells browsers to fetch it.

        Without ``channels`` it grants the user's own channel and the channel of every
        published model the user may read. ``channels=model:a,user:7`` asks for those only:
        if any is not allowed (another user's, a model the user cannot read, not published,
        not a channel) the answer is 403 with every refusal and its reason, and no token.
        503 when no ``gateway_token_secret`` is configured.
        """
        live = request.env["zero_sudo.live"]
        plan = live._grant_plan(parse_requested(channels))
        if plan.refused:
            _logger.info("gateway token refused uid=%d refused=%s", request.env.uid, plan.refused)
            return request.make_json_response(
                {
                    "error": "forbidden",
                    "message": "channels refused: %s" % ", ".join("%s (%s)" % (name, reason) for name, reason in plan.refused),
                    "refused": [{"ch": name, "reason": str(reason)} for name, reason in plan.refused],
                },
                status=403,
            )
        try:
            token, expires_at = live._gateway_token(list(plan.granted))
        except TokensDisabled as exc:
            return request.make_json_response({"error": "tokens_disabled", "message": str(exc)}, status=503)
        return request.make_response(
            token,
            headers=[
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Cache-Control", "no-store"),
                ("X-Gateway-Token-Expires", str(expires_at)),
                ("X-Gateway-Channels", ",".join(plan.granted)),
            ],
        )

    @http.route(GRANTS_ROUTE, type="json", auth="user")
    def gateway_grants(self):
        """Renew the channels the session cookie grants at the gateway (the web client calls
        it before reconnecting) and return them: ``{"channels": [...], "exp": <Unix s>}``."""
        return request.env["zero_sudo.live"]._store_session_grants()
