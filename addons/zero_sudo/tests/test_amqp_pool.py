"""The synchronous RabbitMQ pool the Odoo controllers use, against the real broker."""

import os
import socket
import threading

import pika

from odoo.tests import BaseCase, tagged

from ..tools.amqp_pool import AmqpPool, Outgoing, PoolExhausted, PublishNotConfirmed
from ..tools.per_process import PerProcess

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


@tagged("post_install", "-at_install", "zero_sudo")
class TestAmqpPool(BaseCase):
    def setUp(self):
        super().setUp()
        self.queue = "zero_sudo.test.pool.%d" % os.getpid()
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        self.addCleanup(connection.close)
        self.channel = connection.channel()
        self.channel.queue_declare(self.queue, durable=True)
        self.channel.queue_purge(self.queue)
        self.addCleanup(self.channel.queue_delete, self.queue)

    def queued(self):
        return self.channel.queue_declare(self.queue, passive=True).method.message_count

    def test_many_threads_share_at_most_size_connections(self):
        pool = AmqpPool(AMQP_URL, size=3)

        def publish(n):
            pool.publish_confirmed("", [Outgoing(self.queue, b'{"n":%d}' % n, str(n))])

        threads = [threading.Thread(target=lambda base=t: [publish(base * 100 + i) for i in range(50)]) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertLessEqual(pool.opened, 3)
        self.assertEqual(self.queued(), 400)

    def test_unroutable_is_never_reported_as_queued(self):
        pool = AmqpPool(AMQP_URL, size=1)
        with self.assertRaises(PublishNotConfirmed):
            pool.publish_confirmed("", [Outgoing("zero_sudo.test.no_such_queue", b"{}", "1")])
        pool.publish_confirmed("", [])  # the failed connection was replaced, not reused broken

    def test_broker_unreachable_and_pool_exhausted_are_distinct_errors(self):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed_port = sock.getsockname()[1]
        with self.assertRaises(PublishNotConfirmed):
            AmqpPool("amqp://guest:guest@127.0.0.1:%d/" % closed_port).publish_confirmed("", [Outgoing("q", b"{}", "1")])
        pool = AmqpPool(AMQP_URL, size=1, wait_s=0.2)
        with pool.channel(), self.assertRaises(PoolExhausted):
            pool.publish_confirmed("", [Outgoing(self.queue, b"{}", "1")])

    def test_a_forked_worker_opens_its_own_connections(self):
        """As pools.py holds it: one pool per process, the child's built anew after a fork."""
        pool = PerProcess(lambda: AmqpPool(AMQP_URL, size=2))
        pool.get().publish_confirmed("", [Outgoing(self.queue, b"{}", "parent")])
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: the parent's connection must not be used
            try:
                pool.get().publish_confirmed("", [Outgoing(self.queue, b"{}", "child")])
                os.write(write, b"%d" % pool.get().opened)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        self.assertEqual(os.read(read, 10), b"1", "the child opened a connection of its own")
        pool.get().publish_confirmed("", [Outgoing(self.queue, b"{}", "parent again")])
        self.assertEqual(pool.get().opened, 1, "the parent still uses its first connection")
        self.assertEqual(self.queued(), 3)
