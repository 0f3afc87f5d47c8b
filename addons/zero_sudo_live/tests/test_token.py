import os
import time
from unittest.mock import patch

from zero_sudo_bus.sessions import SESSION_GRANTS_KEY, granted_channels
from zero_sudo_bus.tokens import MAX_TOKEN_TTL_S, TokenError, verify_token

from odoo.http import root
from odoo.tests import HttpCase, TransactionCase, new_test_user, tagged
from odoo.tests.common import JsonRpcException
from odoo.tools import config as odoo_config

from ..tools.config import gateway_token_secret
from ..tools.grants import TOKEN_TTL_S

SECRET = "live-test-secret"
SECRET_SOURCE = "odoo.addons.zero_sudo_live.models.zero_sudo_live.gateway_token_secret"


class LoggedInUserCase(HttpCase):
    """An internal user logged in, partners and crons published (crons: no internal user may
    read them)."""

    def setUp(self):
        super().setUp()
        self.user = new_test_user(self.env, "live_user", password="live_user_pw1", groups="base.group_user")
        models = self.env["ir.model"]
        models._get("res.partner").zero_sudo_live_publish = True
        models._get("ir.cron").zero_sudo_live_publish = True
        self.authenticate("live_user", "live_user_pw1")


@tagged("post_install", "-at_install", "zero_sudo")
class TestGatewayToken(LoggedInUserCase):
    """/my/gateway/token: what a logged-in user's browser gets, and what it is refused."""

    def setUp(self):
        super().setUp()
        secret = patch(SECRET_SOURCE, return_value=SECRET)
        secret.start()
        self.addCleanup(secret.stop)

    def _get(self, query=""):
        return self.url_open("/my/gateway/token" + query)

    def _claims(self, response):
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.headers["Cache-Control"], "no-store")
        return verify_token(SECRET, response.text, time.time())

    def test_the_default_token_grants_the_own_channel_and_the_readable_published_models(self):
        claims = self._claims(self._get())
        self.assertEqual((claims.uid, claims.db), (self.user.id, self.env.cr.dbname))
        self.assertIn("user:%d" % self.user.id, claims.channels)
        self.assertIn("model:res.partner", claims.channels)
        self.assertIn("model:zero_sudo.task", claims.channels, "published by code, readable by its users")
        self.assertNotIn("model:ir.cron", claims.channels, "the user cannot read it")
        self.assertNotIn("model:res.partner.category", claims.channels, "not published")
        self.assertTrue(all(c.startswith("model:") or c == "user:%d" % self.user.id for c in claims.channels))
        self.assertLessEqual(claims.expires_at, time.time() + TOKEN_TTL_S + 1)
        self.assertLess(TOKEN_TTL_S, MAX_TOKEN_TTL_S)

    def test_asked_channels_are_granted_exactly(self):
        claims = self._claims(self._get("?channels=model:res.partner,user:%d" % self.user.id))
        self.assertEqual(claims.channels, {"model:res.partner", "user:%d" % self.user.id})

    def test_a_channel_the_user_may_not_have_is_refused_with_its_reason_and_no_token(self):
        cases = {
            "model:ir.cron": "not_readable",
            "model:res.partner.category": "not_published",
            "model:no.such.model": "unknown_model",
            "user:%d" % self.env.ref("base.user_admin").id: "foreign_user",
            "nonsense": "invalid",
        }
        for channel, reason in cases.items():
            with self.subTest(channel):
                response = self._get("?channels=model:res.partner," + channel)
                self.assertEqual(response.status_code, 403)
                body = response.json()
                self.assertEqual(body["refused"], [{"ch": channel, "reason": reason}])
                self.assertIn("%s (%s)" % (channel, reason), body["message"])

    def test_a_token_is_signed_with_the_secret_only(self):
        with self.assertRaisesRegex(TokenError, "bad_signature"):
            verify_token("another-secret", self._get().text, time.time())

    def test_without_a_secret_tokens_are_disabled(self):
        with patch(SECRET_SOURCE, return_value=""):
            response = self._get()
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.json()["error"], "tokens_disabled")

    def test_an_anonymous_visitor_gets_no_token(self):
        self.logout()
        response = self.url_open("/my/gateway/token", allow_redirects=False)
        self.assertIn(response.status_code, (303, 302))
        self.assertIn("/web/login", response.headers["Location"])

    def test_the_web_client_learns_where_the_gateway_is(self):
        info = self.make_jsonrpc_request("/web/session/get_session_info")["zero_sudo_live"]
        self.assertEqual(
            info,
            {
                "gateway_url": "/ws",
                "token_url": "/my/gateway/token",
                "grants_url": "/my/gateway/grants",
                "coalesce_ms": 500,
                "uid": self.user.id,
            },
        )


@tagged("post_install", "-at_install", "zero_sudo")
class TestSessionGrants(LoggedInUserCase):
    """What a logged-in user's session cookie grants at the gateway: what a token would."""

    def _stored_grants(self):
        """The session as the gateway reads it, and the channels it grants now."""
        session = root.session_store.get(self.session.sid)
        return session.get(SESSION_GRANTS_KEY), granted_channels(session, self.user.id, time.time())

    def test_loading_the_web_client_stores_the_users_channels_in_its_session(self):
        self.assertIsNone(self._stored_grants()[0], "nothing before the web client loads")
        self.make_jsonrpc_request("/web/session/get_session_info")
        stored, granted = self._stored_grants()
        self.assertIn("user:%d" % self.user.id, granted)
        self.assertIn("model:res.partner", granted)
        self.assertNotIn("model:ir.cron", granted, "the user cannot read it")
        self.assertNotIn("model:res.partner.category", granted, "not published")
        self.assertLessEqual(stored["exp"], time.time() + TOKEN_TTL_S + 1)

    def test_renewing_picks_up_a_model_published_since(self):
        self.make_jsonrpc_request("/web/session/get_session_info")
        self.assertNotIn("model:res.partner.category", self._stored_grants()[1])
        self.env["ir.model"]._get("res.partner.category").zero_sudo_live_publish = True
        renewed = self.make_jsonrpc_request("/my/gateway/grants")
        self.assertIn("model:res.partner.category", renewed["channels"])
        self.assertEqual(self._stored_grants()[0], renewed)

    def test_an_anonymous_visitor_renews_nothing(self):
        self.logout()
        with self.assertRaisesRegex(JsonRpcException, "SessionExpiredException"):
            self.make_jsonrpc_request("/my/gateway/grants")


@tagged("post_install", "-at_install", "zero_sudo")
class TestTokenSecret(TransactionCase):
    """Where Odoo finds the secret: the gateway's order, environment before odoo.conf."""

    def test_the_environment_comes_before_odoo_conf_and_blank_means_disabled(self):
        cases = [
            ({"ZERO_SUDO_GATEWAY_TOKEN_SECRET": "from-env"}, {"gateway_token_secret": "from-conf"}, "from-env"),
            ({}, {"gateway_token_secret": "from-conf"}, "from-conf"),
            ({"ZERO_SUDO_GATEWAY_TOKEN_SECRET": "  "}, {"gateway_token_secret": "False"}, ""),
            ({}, {}, ""),
        ]
        for environ, section, expected in cases:
            with (
                self.subTest(environ=environ, section=section),
                patch.dict(os.environ, environ),
                patch.dict(odoo_config.misc, {"zero_sudo": section}),
            ):
                if not environ:
                    os.environ.pop("ZERO_SUDO_GATEWAY_TOKEN_SECRET", None)
                self.assertEqual(gateway_token_secret(), expected)
