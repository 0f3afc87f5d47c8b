from zero_sudo_bus.protocol import Op, model_key, user_channel

from odoo.exceptions import ValidationError
from odoo.tests import TransactionCase, tagged

from .common import ChangeListener, UserChannels, real_env, wait_until

PARTNER = "res.partner"


@tagged("post_install", "-at_install", "zero_sudo")
class TestPublishLiveChanges(TransactionCase):
    """What an admin's "Publish live changes" switch does, seen by a real LISTEN connection
    after real commits (a TransactionCase never commits, so these tests use their own cursor)."""

    def setUp(self):
        super().setUp()
        self.listener = ChangeListener(self.env.cr.dbname)
        self.addCleanup(self.listener.close)
        self.env_ = real_env(self.registry)
        self.created = self.env_[PARTNER]
        self.addCleanup(self._cleanup)
        self._publish(PARTNER, True)

    def _publish(self, model, flag):
        self.env_["ir.model"]._get(model).zero_sudo_live_publish = flag
        self.env_.cr.commit()

    def _partners(self, *names, **values):
        partners = self.env_[PARTNER].create([{"name": name, **values} for name in names])
        self.created |= partners
        return partners

    def _cleanup(self):
        self.env_.cr.rollback()
        self.env_["ir.model"].search([("zero_sudo_live_publish", "=", True)]).zero_sudo_live_publish = False
        self.created.exists().unlink()
        self.env_.cr.commit()
        self.env_.cr.close()

    def test_create_write_unlink_of_a_published_model_each_publish_their_ids_at_commit(self):
        partners = self._partners("live a", "live b", "live c")
        self.env_.cr.commit()
        partners[0].write({"email": "a@example.com"})
        partners[1:].unlink()
        self.env_.cr.commit()
        self.listener.sync()
        self.assertEqual(self.listener.ids(PARTNER, Op.CREATE), sorted(partners.ids))
        self.assertEqual(self.listener.ids(PARTNER, Op.WRITE), partners[:1].ids)
        self.assertEqual(self.listener.ids(PARTNER, Op.UNLINK), sorted(partners[1:].ids))

    def test_stored_fields_the_orm_recomputes_publish_the_records_they_change(self):
        company = self._partners("Live Corp", is_company=True)
        contact = self._partners("Jane", parent_id=company.id)
        self.env_.cr.commit()
        self.listener.sync()
        self.listener.payloads.clear()
        company.name = "Live Corporation"  # the contact's complete_name is recomputed, not written
        self.env_.cr.commit()
        self.listener.sync()
        self.env_.cr.execute("SELECT complete_name FROM res_partner WHERE id = %s", contact.ids)
        self.assertEqual(self.env_.cr.fetchone()[0], "Live Corporation, Jane")
        self.assertEqual(self.listener.ids(PARTNER, Op.WRITE), sorted((company | contact).ids))

    def test_a_model_nobody_published_sends_nothing(self):
        category = self.env_["res.partner.category"].create({"name": "live unpublished"})
        category.name = "renamed"
        category.unlink()
        self.env_.cr.commit()
        self.listener.sync()
        self.assertNotIn(model_key("res.partner.category"), self.listener.models())

    def test_the_switch_takes_effect_at_once_both_ways(self):
        partner = self._partners("switch")
        self.env_.cr.commit()
        self._publish(PARTNER, False)
        partner.email = "unpublished@example.com"
        self.env_.cr.commit()
        self.listener.sync()
        self.assertEqual(self.listener.ids(PARTNER, Op.WRITE), [])
        self._publish(PARTNER, True)
        partner.email = "published@example.com"
        self.env_.cr.commit()
        self.listener.sync()
        self.assertEqual(self.listener.ids(PARTNER, Op.WRITE), partner.ids)

    def test_changing_the_switch_tells_every_internal_users_web_client_to_renew_its_grants(self):
        admin = self.env.ref("base.user_admin")
        portal = self.env_["res.users"].create(
            {"name": "Live portal", "login": "live_portal", "groups_id": [(6, 0, [self.env.ref("base.group_portal").id])]}
        )
        self.env_.cr.commit()
        self.addCleanup(self._drop_user, portal.id)
        db = self.env.cr.dbname
        channels = UserChannels([user_channel(db, admin.id), user_channel(db, portal.id)])
        self.addCleanup(channels.close)
        self._publish("res.partner.category", True)
        self._publish("res.partner.category", True)  # no change: no push
        self._publish("res.partner.category", False)
        wait_until(lambda: len(channels.drain()) >= 2, what="two grants pushes in Redis")
        push = (user_channel(db, admin.id), {"type": "zero_sudo_live.grants_changed"})
        self.assertEqual(channels.drain(), [push, push], "the admin's tabs twice, the portal user's never")

    def _drop_user(self, uid):
        self.env_.cr.rollback()
        self.env_["res.users"].browse(uid).unlink()
        self.env_.cr.commit()

    def test_a_rolled_back_transaction_sends_nothing(self):
        partner = self._partners("rolled back")
        partner.email = "never@example.com"
        self.env_.cr.flush()  # even after the precommit hook queued the NOTIFY in the transaction
        self.env_.cr.rollback()
        self.created = self.env_[PARTNER]
        self.listener.sync()
        self.assertNotIn(model_key(PARTNER), self.listener.models())

    def test_models_that_publish_by_code_are_shown_as_such(self):
        task_model = self.env["ir.model"]._get("zero_sudo.task")
        self.assertTrue(task_model.zero_sudo_live_by_code)
        self.assertFalse(self.env["ir.model"]._get("res.partner.category").zero_sudo_live_by_code)

    def test_models_without_a_table_of_their_own_cannot_publish(self):
        for name in ("base.module.update", "zero_sudo.live"):  # a wizard, an abstract model
            with self.subTest(model=name), self.assertRaises(ValidationError):
                self.env["ir.model"]._get(name).zero_sudo_live_publish = True
