"""Redis through Sentinels (a real master, replica and three Sentinels of the test's own):
every Redis user of the daemons and the shared library finds the master, and the new one
after the master is killed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
from redis_ha import SERVICE, RedisHA

from conftest import wait_until
from zero_sudo_bus.options import OptionError, sentinel_addresses
from zero_sudo_bus.protocol import FlushReason, bus_channel, encode_flush_message
from zero_sudo_bus.redis_clients import RedisMode, RedisTarget, sync_blocking_pool
from zero_sudo_bus.subscriber import ThreadedBusSubscriber
from zero_sudo_daemons.redis_publisher import RedisPublisher

FAILOVER_S = 30  # a ceiling for the wait, never a measurement (bench-failover measures)


@pytest.fixture(scope="module")
def ha() -> Iterator[RedisHA]:
    group = RedisHA().start()
    yield group
    group.stop()


def target_of(group: RedisHA) -> RedisTarget:
    return RedisTarget(group.url, sentinel_addresses(group.sentinels), SERVICE)


def test_sentinel_addresses_are_host_port_pairs():
    assert sentinel_addresses("") == ()
    assert sentinel_addresses("10.0.0.1:26379, [::1]:26380") == (("10.0.0.1", 26379), ("::1", 26380))
    for bad in ("sentinel", "host:0", "host:port", ":26379"):
        with pytest.raises(OptionError):
            sentinel_addresses(bad)


def test_a_url_alone_is_a_direct_target():
    assert RedisTarget("redis://127.0.0.1:6379/0").mode is RedisMode.DIRECT


def test_every_user_follows_the_master_through_a_failover(ha: RedisHA):
    """The relay's publisher, a follower (as Odoo's workers and the gateway run it) and a
    pool (Odoo's, the gateway's session lookups) before and after the master dies."""
    target = target_of(ha)
    flushes: list[str] = []
    follower = ThreadedBusSubscriber(target, "zs_ha", lambda _m: None, flushes.append, client_name="zs_test_follower")
    follower.start()
    pool = sync_blocking_pool(target, max_connections=2, timeout=1.0, socket_timeout=2.0, socket_connect_timeout=2.0)
    client = redis.Redis(connection_pool=pool)
    try:
        wait_until(follower.connected.is_set, what="follower subscribed through the Sentinels")
        first_master = ha.master()
        client.set("before", "kept")
        assert client.wait(1, 1000) == 1, "the replica has it"
        assert asyncio.run(publish_flush(target)) == first_master[1]
        wait_until(lambda: FlushReason.RECOVER in flushes, what="the follower got the relay's flush")

        flushes.clear()
        ha.kill_master()
        # A command during the failover waits for the new master instead of failing.
        assert client.get("before") == b"kept", "a write replicated before the kill survives it"
        new_master = wait_until(lambda: ha.master() != first_master and ha.master(), timeout=FAILOVER_S)
        wait_until(lambda: FlushReason.RECONNECT in flushes and follower.connected.is_set(), timeout=FAILOVER_S)
        flushes.clear()
        assert asyncio.run(publish_flush(target)) == new_master[1], "the publisher found the new master"
        wait_until(lambda: FlushReason.RECOVER in flushes, what="the follower hears the new master's publishes")
    finally:
        follower.stop()
        pool.disconnect()


async def publish_flush(target: RedisTarget) -> int:
    """Connect as the relay does, claim an epoch, publish its flush; the port it reached."""
    publisher = await RedisPublisher.connect(target, "zs_test_relay", 5.0)
    try:
        (role,) = await publisher._execute([b"*1\r\n$4\r\nROLE\r\n"])
        assert role[0] == b"master"
        port = publisher._writer.get_extra_info("peername")[1]
        await publisher.claim_epoch("zs_ha:epoch", "e1")
        await publisher.publish_fenced(
            "zs_ha:epoch", "e1", bus_channel("zs_ha"), [encode_flush_message("e1", 0, FlushReason.RECOVER)]
        )
        return port
    finally:
        await publisher.close()
