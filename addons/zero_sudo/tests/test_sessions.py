import json

from zero_sudo_bus.sessions import session_key, user_sessions_key

from odoo import http
from odoo.tests import HttpCase, new_test_user, tagged

from ..tools.pools import redis_client
from ..tools.settings import settings_from_odoo_conf


@tagged("post_install", "-at_install", "zero_sudo")
class TestRedisSessions(HttpCase):
    def setUp(self):
        super().setUp()
        self.store = http.root.session_store
        self.redis = redis_client()
        self.user = new_test_user(self.env, "session_user", password="session_user_pw1")
        self.addCleanup(lambda: self.store.logout_everywhere(self.env.cr.dbname, self.user.id))

    def test_a_login_is_a_json_session_in_redis_with_a_ttl(self):
        self.authenticate("session_user", "session_user_pw1")
        raw = self.redis.get(session_key(settings_from_odoo_conf().session_prefix, self.session.sid))
        data = json.loads(raw)  # JSON, never pickle
        self.assertEqual((data["uid"], data["db"], data["login"]), (self.user.id, self.env.cr.dbname, "session_user"))
        self.assertGreater(self.redis.ttl(session_key(settings_from_odoo_conf().session_prefix, self.session.sid)), 0)
        self.assertEqual(
            self.url_open("/web/session/get_session_info", data="{}", headers={"Content-Type": "application/json"}).json()[
                "result"
            ]["uid"],
            self.user.id,
        )

    def test_using_a_session_refreshes_its_ttl(self):
        self.authenticate("session_user", "session_user_pw1")
        key = session_key(settings_from_odoo_conf().session_prefix, self.session.sid)
        self.redis.expire(key, 60)
        self.url_open("/web/session/get_session_info", data="{}", headers={"Content-Type": "application/json"})
        self.assertGreater(self.redis.ttl(key), 60)

    def test_logout_everywhere_ends_every_session_of_the_user(self):
        sids = []
        for _ in range(2):
            self.authenticate("session_user", "session_user_pw1")
            sids.append(self.session.sid)
        prefix = settings_from_odoo_conf().session_prefix
        self.assertEqual(
            {s.decode() for s in self.redis.smembers(user_sessions_key(prefix, self.env.cr.dbname, self.user.id))}, set(sids)
        )
        self.user.with_user(self.env.ref("base.user_admin")).action_zero_sudo_logout_everywhere()
        self.assertEqual(self.redis.exists(*[session_key(prefix, sid) for sid in sids]), 0)
        info = self.url_open("/web/session/get_session_info", data="{}", headers={"Content-Type": "application/json"}).json()
        self.assertIn("error", info, "the last cookie no longer authenticates")

    def test_a_session_that_is_not_json_is_a_fresh_anonymous_one(self):
        sid = self.store.generate_key()
        self.redis.set(session_key(settings_from_odoo_conf().session_prefix, sid), b"\x80\x04\x95 pickle")
        self.addCleanup(self.redis.delete, session_key(settings_from_odoo_conf().session_prefix, sid))
        session = self.store.get(sid)
        self.assertTrue(session.is_new)
        self.assertIsNone(session.get("uid"))
