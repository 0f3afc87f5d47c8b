import json
import socket
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pika
from zero_sudo_bus.ingest import decode_ingest_message, landing_queue

from odoo import fields
from odoo.tests import HttpCase, new_test_user, tagged

from odoo.addons.zero_sudo.tools import pools
from odoo.addons.zero_sudo.tools.amqp_pool import AmqpPool

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@tagged("post_install", "-at_install", "zero_sudo")
class TestIngestEndpoint(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.owner = new_test_user(cls.env, "ingest_owner", groups="base.group_user,zero_sudo_ingest.group_ingest_publisher")
        cls.other = new_test_user(cls.env, "ingest_other", groups="base.group_user,zero_sudo_ingest.group_ingest_publisher")
        cls.key = (
            cls.env["res.users.apikeys"]
            .with_user(cls.owner)
            ._generate(None, "ingest test", fields.Datetime.now() + timedelta(days=1))
        )
        cls.other_key = (
            cls.env["res.users.apikeys"]
            .with_user(cls.other)
            ._generate(None, "ingest test", fields.Datetime.now() + timedelta(days=1))
        )
        schema = {
            "type": "object",
            "required": ["id", "amount"],
            "properties": {"id": {"type": "string"}, "amount": {"type": "number", "minimum": 0}},
        }
        cls.stream = cls.env["zero_sudo.ingest.stream"].create(
            {"name": "Orders", "code": "orders", "user_id": cls.owner.id, "message_schema": json.dumps(schema)}
        )
        cls.queue = landing_queue(cls.env.cr.dbname)

    def setUp(self):
        super().setUp()
        self.broker = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        self.addCleanup(self.broker.close)
        channel = self.broker.channel()
        channel.queue_declare(self.queue, durable=True)
        channel.queue_purge(self.queue)

    def post(self, body, key=None, code="orders"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Authorization": "Bearer %s" % (key or self.key)}
        return self.url_open("/zero_sudo/ingest/%s" % code, data=data, headers=headers)

    def queued(self):
        channel = self.broker.channel()
        out = []
        while True:
            method, _props, body = channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                return out
            out.append(decode_ingest_message(body))

    def test_a_batch_is_accepted_only_once_queued(self):
        response = self.post([{"id": "A-1", "amount": 3}, {"id": "A-2", "amount": 4.5}])
        self.assertEqual(response.status_code, 202, response.text)
        self.assertEqual(response.json(), {"accepted": ["A-1", "A-2"]})
        queued = self.queued()
        self.assertEqual(
            [(m.stream, m.external_id, m.data["amount"]) for m in queued], [("orders", "A-1", 3), ("orders", "A-2", 4.5)]
        )

    def test_bad_requests_get_precise_errors_and_queue_nothing(self):
        cases = [
            (b"{not json", None, "orders", 400),
            ([], None, "orders", 400),
            ({"id": "A-1", "amount": 1}, "wrong-key", "orders", 401),
            ({"id": "A-1", "amount": 1}, None, "no-such-stream", 404),
            ({"id": "A-1", "amount": 1}, "other", "orders", 404),
            ([{"id": "ok", "amount": 1}, {"id": "A-2", "amount": -1}, {"amount": 2}, "text"], None, "orders", 422),
            (b"[" + b'{"id":"x","amount":1},' * 60000 + b"{}]", None, "orders", 413),
        ]
        for body, key, code, expected in cases:
            with self.subTest(expected=expected, code=code):
                response = self.post(body, key=self.other_key if key == "other" else key, code=code)
                self.assertEqual(response.status_code, expected, response.text[:300])
        response = self.post([{"id": "ok", "amount": 1}, {"id": "A-2", "amount": -1}, {"amount": 2}, "text"])
        self.assertEqual(
            response.json()["messages"],
            [
                {"index": 1, "reasons": ["$.amount: below 0"]},
                {"index": 2, "reasons": ["$.id: required"]},
                {"index": 3, "reasons": ["$: expected a JSON object"]},
            ],
        )
        self.assertEqual(self.queued(), [])

    def _swap_pool(self, replacement):
        """Run with another process pool (a fresh one, or one whose broker is down)."""
        saved = pools._amqp_pool.built()
        pools._amqp_pool._value = replacement
        self.addCleanup(setattr, pools._amqp_pool, "_value", saved)

    def test_rabbitmq_down_is_a_503_with_retry_after_never_a_202(self):
        self._swap_pool(AmqpPool("amqp://guest:guest@127.0.0.1:%d/" % _closed_port(), size=2))
        response = self.post({"id": "A-9", "amount": 1})
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.headers["Retry-After"], "5")

    def test_a_thousand_requests_use_no_more_connections_than_the_pool(self):
        self._swap_pool(None)
        with ThreadPoolExecutor(max_workers=12) as clients:
            statuses = list(clients.map(lambda n: self.post({"id": "P-%d" % n, "amount": n}).status_code, range(1000)))
        self.assertEqual(statuses, [202] * 1000)
        pool = pools.amqp_pool()
        self.assertLessEqual(pool.opened, pool.size)
        self.assertEqual(len(self.queued()), 1000)
