import base64

from zero_sudo_bus.protocol import user_channel

from odoo.tests import TransactionCase, tagged

from ..tools.exceptions import PushRefused
from ..tools.push import MAX_PUSH_BYTES
from .common import UserChannels, real_env, wait_until


@tagged("post_install", "-at_install", "zero_sudo")
class TestPushToUsers(TransactionCase):
    """Pushes reach the users' Redis channels, which every gateway follows, only at commit."""

    def setUp(self):
        super().setUp()
        # Background tasks and real commits see committed users only: Odoo's own two.
        self.alice = self.env.ref("base.user_admin")
        self.bob = self.env.ref("base.user_root")
        db = self.env.cr.dbname
        self.channels = UserChannels([user_channel(db, uid) for uid in (self.alice.id, self.bob.id)])
        self.addCleanup(self.channels.close)
        self.alice_channel = user_channel(db, self.alice.id)

    def test_bad_pushes_are_refused_at_the_call_and_nothing_is_queued(self):
        live = self.env["zero_sudo.live"]
        self.ghost = self.env["res.users"].create({"name": "Ghost", "login": "live_ghost"})
        self.ghost.unlink()
        cases = {
            "no such user: 999999": lambda: live._push([self.alice.id, 999999], {"message": "hi"}),
            "positive integers": lambda: live._push(["7"], {"message": "hi"}),
            "res.users records": lambda: live._push(self.env["res.partner"].browse(1), {"message": "hi"}),
            "JSON object": lambda: live._push(self.alice, ["not", "an", "object"]),
            "must be JSON": lambda: live._push(self.alice, {"when": object()}),
            "at most %d bytes" % MAX_PUSH_BYTES: lambda: live._push(self.alice, {"blob": "x" * MAX_PUSH_BYTES}),
            "needs a message": lambda: live._notify(self.alice, ""),
            "no such user: %d" % self.ghost.id: lambda: live._push(self.ghost, {"message": "hi"}),
        }
        for expected, call in cases.items():
            with self.subTest(expected), self.assertRaisesRegex(PushRefused, expected):
                call()
        self.assertNotIn("zero_sudo_live.pushes", self.env.cr.postcommit.data)

    def test_a_push_reaches_its_users_only_and_only_once_committed(self):
        env_ = real_env(self.registry)
        self.addCleanup(env_.cr.close)
        env_["zero_sudo.live"]._notify(env_["res.users"].browse(self.alice.id), "rolled back")
        env_.cr.rollback()
        env_["zero_sudo.live"]._notify([self.alice.id], "Your report is ready", title="Reports", level="success")
        self.assertEqual(self.channels.drain(), [], "sent before the commit")
        env_.cr.commit()
        received = wait_until(lambda: self.channels.drain(), what="the push in Redis")
        self.assertEqual(
            received,
            [
                (
                    self.alice_channel,
                    {
                        "type": "notification",
                        "message": "Your report is ready",
                        "level": "success",
                        "sticky": False,
                        "title": "Reports",
                    },
                )
            ],
        )

    def test_a_finished_background_task_notifies_the_user_who_started_it_and_nobody_else(self):
        env_ = real_env(self.registry, uid=self.alice.id)
        self.addCleanup(env_.cr.close)
        content = base64.b64encode(b"id,name\n").decode()
        task = env_["zero_sudo.task"]._submit(
            env_["ir.attachment"], "create", [{"name": "live.csv", "datas": content}], name="Export contacts"
        )
        self.addCleanup(self._delete, task.id)
        ((channel, payload),) = wait_until(lambda: self.channels.drain(), what="the task's notification")
        self.assertEqual(channel, self.alice_channel)
        self.assertEqual((payload["message"], payload["level"]), ("Export contacts is done.", "success"))
        attachment_id = int(payload["url"].split("/")[3].split("?")[0])
        self.addCleanup(self._delete_attachment, attachment_id)
        with self.registry.cursor() as cr:  # committed after this test's snapshot began
            cr.execute("SELECT name, create_uid FROM ir_attachment WHERE id = %s", [attachment_id])
            self.assertEqual(cr.fetchone(), ("live.csv", self.alice.id))
        self.assertEqual((payload["url"], payload["url_label"]), ("/web/content/%d?download=true" % attachment_id, "Download"))
        self.assertEqual(self.channels.drain(timeout=0.5), [(channel, payload)], "someone else was notified")

    def test_a_failed_background_task_says_why(self):
        env_ = real_env(self.registry, uid=self.bob.id)
        self.addCleanup(env_.cr.close)
        task = env_["zero_sudo.task"]._submit(env_["res.partner"], "create", [{"no_such_field": 1}], name="Import")
        self.addCleanup(self._delete, task.id)
        ((channel, payload),) = wait_until(lambda: self.channels.drain(), what="the task's notification")
        self.assertEqual(channel, user_channel(self.env.cr.dbname, self.bob.id))
        self.assertEqual(payload["level"], "danger")
        self.assertIn("Import failed: ValueError", payload["message"])

    def _delete(self, task_id):
        with self.registry.cursor() as cr:
            cr.execute("DELETE FROM zero_sudo_task WHERE id = %s", [task_id])

    def _delete_attachment(self, attachment_id):
        with self.registry.cursor() as cr:
            cr.execute("DELETE FROM ir_attachment WHERE id = %s", [attachment_id])
