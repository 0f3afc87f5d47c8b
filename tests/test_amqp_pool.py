"""The synchronous RabbitMQ pool the Odoo controllers use, against the real broker."""

import os
import socket
import threading

import pika
import pytest

from zero_sudo_bus.amqp_pool import AmqpPool, Outgoing, PoolExhausted, PublishNotConfirmed

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture
def queue_name():
    name = "zero_sudo.test.pool.%d" % os.getpid()
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.queue_declare(name, durable=True)
    channel.queue_purge(name)
    yield name, channel
    channel.queue_delete(name)
    connection.close()


def test_many_threads_share_at_most_size_connections(queue_name):
    name, channel = queue_name
    pool = AmqpPool(AMQP_URL, size=3)

    def publish(n):
        pool.publish_confirmed("", [Outgoing(name, b'{"n":%d}' % n, str(n))])

    threads = [threading.Thread(target=lambda base=t: [publish(base * 100 + i) for i in range(50)]) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert pool.opened <= 3
    assert channel.queue_declare(name, passive=True).method.message_count == 400


def test_unroutable_is_never_reported_as_queued():
    pool = AmqpPool(AMQP_URL, size=1)
    with pytest.raises(PublishNotConfirmed):
        pool.publish_confirmed("", [Outgoing("zero_sudo.test.no_such_queue", b"{}", "1")])
    pool.publish_confirmed("", [])  # the failed connection was replaced, not reused broken


def test_broker_unreachable_and_pool_exhausted_are_distinct_errors(queue_name):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with pytest.raises(PublishNotConfirmed):
        AmqpPool("amqp://guest:guest@127.0.0.1:%d/" % closed_port).publish_confirmed("", [Outgoing("q", b"{}", "1")])
    pool = AmqpPool(AMQP_URL, size=1, wait_s=0.2)
    with pool.channel(), pytest.raises(PoolExhausted):
        pool.publish_confirmed("", [Outgoing(queue_name[0], b"{}", "1")])


def test_a_forked_child_opens_its_own_connections(queue_name):
    name, channel = queue_name
    pool = AmqpPool(AMQP_URL, size=2)
    pool.publish_confirmed("", [Outgoing(name, b"{}", "parent")])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's connection must not be used
        try:
            pool.publish_confirmed("", [Outgoing(name, b"{}", "child")])
            os.write(write, b"%d" % pool.opened)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 10) == b"1", "the child opened a connection of its own"
    pool.publish_confirmed("", [Outgoing(name, b"{}", "parent again")])
    assert pool.opened == 1, "the parent still uses its first connection"
    assert channel.queue_declare(name, passive=True).method.message_count == 3
