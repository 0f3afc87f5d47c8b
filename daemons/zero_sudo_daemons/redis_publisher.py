"""A lean, pipelined Redis connection that only PUBLISHes and PINGs: the relay's hot path.

Measured on this project's 2-core machine (README, "Driver choices"): redis-py's asyncio
client spends about 100 µs of CPU per PUBLISH, this writer about 40 µs, with the replies
parsed by hiredis (C) in both. At ten thousand NOTIFYs a second that difference is most of
what the relay costs PostgreSQL. It is one connection, with no silent reconnect: when it
breaks, the relay's epoch ends and the next epoch starts with a flush, as it must.

With Sentinels (``redis_sentinels``) it asks them for the master (``SENTINEL
get-master-addr-by-name``) and checks, with ``ROLE``, that the server it reached is the
master: after a failover, the relay's next epoch publishes on the new master.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence

import hiredis
from redis.asyncio.connection import parse_url

from zero_sudo_bus.redis_clients import SENTINEL_TIMEOUT_S, RedisMode, RedisTarget

from .errors import ConfigurationError, ConnectionLost, ZeroSudoDaemonError

_logger = logging.getLogger(__name__)

READ_CHUNK = 65536

# While the Sentinels still name a master that is gone (a failover under way), they are asked
# again this often until the connect timeout: a promotion is noticed within 0.1 s, for ten
# tiny requests a second to each Sentinel during a failover only.
SENTINEL_POLL_S = 0.1
# The relay connects while holding its 2 s leader lease (PostgreSQL's idle_session_timeout):
# waiting longer for a master would let the lease lapse; the next epoch asks again.
SENTINEL_WAIT_S = 1.5
ROLE_MASTER = b"master"


class RedisReplyError(ZeroSudoDaemonError):
    """Redis answered a command with an error (wrong password, wrong type, ...): not transient."""


class Fenced(ConnectionLost):
    """Another relay became active since this one's epoch began: this one must stop publishing.

    Transient for the supervisor: the fenced relay goes back to standing by.
    """


# PUBLISH each message only while the epoch key still holds this publisher's epoch, checked
# and published in one atomic step; 0 when fenced. KEYS[1] epoch key; ARGV epoch, channel,
# messages...
FENCED_PUBLISH = b"""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 3, #ARGV do redis.call('PUBLISH', ARGV[2], ARGV[i]) end
return 1
"""


def encode_command(*parts: bytes) -> bytes:
    """One command in RESP, Redis's wire format: an array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class RedisPublisher:
    """One Redis connection, commands pipelined, replies read in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = hiredis.Reader()
        self._lock = asyncio.Lock()  # the keepalive PING and the publisher share the connection
        self._fenced_publish_sha = b""

    @classmethod
    async def connect(cls, where: str | RedisTarget, client_name: str, timeout: float) -> RedisPublisher:
        """Connect, authenticate, select the database and name the client, as the URL says.

        With Sentinels, connect to the master they name, and keep asking them (every
        :data:`SENTINEL_POLL_S`, within ``timeout`` and :data:`SENTINEL_WAIT_S`) while the one named cannot be reached or
        is not a master: during a failover the relay then starts publishing on the new master
        within a poll of its promotion, rather than after its supervisor's growing backoff.
        """
        target = where if isinstance(where, RedisTarget) else RedisTarget(where)
        if target.mode is RedisMode.DIRECT:
            return await cls._connect_to(target.url, None, client_name, timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(timeout, SENTINEL_WAIT_S)
        while True:
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    address = await ask_sentinels_for_master(target)
                    return await cls._connect_to(target.url, address, client_name, timeout)
            except (TimeoutError, OSError, ConnectionLost) as exc:
                if loop.time() + SENTINEL_POLL_S >= deadline:
                    raise ConnectionLost("no Redis master reachable through the Sentinels: %s" % exc) from None
                _logger.debug("redis master not reachable yet error=%r", exc)
                await asyncio.sleep(SENTINEL_POLL_S)

    @classmethod
    async def _connect_to(cls, url: str, address: tuple[str, int] | None, client_name: str, timeout: float) -> RedisPublisher:
        """Connect to ``address`` (None: the URL's own), set the connection up as the URL says."""
        try:
            options = parse_url(url)
        except ValueError as exc:
            raise ConfigurationError("bad redis_url %r: %s" % (url, exc)) from None
        if "path" in options and address is None:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(options["path"])
        else:
            host, port = address or (options.get("host", "127.0.0.1"), options.get("port", 6379))
            tls = ssl.create_default_context() if url.startswith("rediss://") else None  # as redis-py does
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, ssl=tls)
        publisher = cls(reader, writer)
        try:
            await publisher._set_up(options, client_name, timeout, check_master=address is not None)
        except BaseException:
            await publisher.close()
            raise
        return publisher

    async def _set_up(self, options: dict, client_name: str, timeout: float, *, check_master: bool) -> None:
        """Authenticate, select the database, name the client, check the role, load the script."""
        publisher = self
        setup: list[bytes] = []
        if options.get("password"):
            credentials = [options["username"].encode()] if options.get("username") else []
            setup.append(encode_command(b"AUTH", *credentials, options["password"].encode()))
        if options.get("db"):
            setup.append(encode_command(b"SELECT", str(options["db"]).encode()))
        setup.append(encode_command(b"CLIENT", b"SETNAME", client_name.encode()))
        async with asyncio.timeout(timeout):
            await publisher._execute(setup)
        if check_master:  # a Sentinel's answer may be stale: only a master takes the epoch
            async with asyncio.timeout(timeout):
                (role,) = await publisher._execute([encode_command(b"ROLE")])
            if role[0] != ROLE_MASTER:
                raise ConnectionLost("the server the Sentinels named is a %s, not the master" % role[0].decode())
        async with asyncio.timeout(timeout):
            replies = await publisher._execute([encode_command(b"SCRIPT", b"LOAD", FENCED_PUBLISH)])
        publisher._fenced_publish_sha = replies[0]

    async def claim_epoch(self, key: str, epoch: str) -> None:
        """Make ``epoch`` the current one: from now on only its publishes go through."""
        await self._execute([encode_command(b"SET", key.encode(), epoch.encode())])

    async def publish_fenced(self, key: str, epoch: str, channel: str, messages: Sequence[bytes]) -> None:
        """PUBLISH every message to ``channel`` if ``epoch`` is still current, else :class:`Fenced`."""
        command = encode_command(
            b"EVALSHA", self._fenced_publish_sha, b"1", key.encode(), epoch.encode(), channel.encode(), *messages
        )
        (published,) = await self._execute([command])
        if not published:
            raise Fenced("another relay became active for %s: this one stops publishing" % channel)

    async def ping(self) -> None:
        await self._execute([encode_command(b"PING")])

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass

    async def _execute(self, commands: Sequence[bytes]) -> list[object]:
        """Send ``commands`` in one write; their replies, in order."""
        replies: list[object] = []
        async with self._lock:
            self._writer.writelines(commands)
            await self._writer.drain()
            for _ in commands:
                reply = self._parser.gets()
                while reply is False:
                    chunk = await self._reader.read(READ_CHUNK)
                    if not chunk:
                        raise ConnectionLost("Redis closed the connection")
                    self._parser.feed(chunk)
                    reply = self._parser.gets()
                if isinstance(reply, hiredis.ReplyError):
                    if str(reply).startswith("NOSCRIPT"):  # SCRIPT FLUSH: a new connection loads it again
                        raise ConnectionLost("Redis forgot the relay's publish script")
                    raise RedisReplyError(str(reply))
                replies.append(reply)
        return replies


async def ask_sentinels_for_master(target: RedisTarget) -> tuple[str, int]:
    """The master's address, from the first of ``target``'s Sentinels that knows it
    (``SENTINEL get-master-addr-by-name``); :class:`ConnectionLost` when none answers."""
    errors: list[str] = []
    command = encode_command(b"SENTINEL", b"get-master-addr-by-name", target.service.encode())
    for host, port in target.sentinels:
        try:
            async with asyncio.timeout(SENTINEL_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(host, port)
                try:
                    writer.write(command)
                    parser = hiredis.Reader()
                    reply = parser.gets()
                    while reply is False:
                        chunk = await reader.read(READ_CHUNK)
                        if not chunk:
                            raise ConnectionLost("Sentinel closed the connection")
                        parser.feed(chunk)
                        reply = parser.gets()
                finally:
                    writer.close()
        except (TimeoutError, OSError, ConnectionLost) as exc:
            errors.append("%s:%d %r" % (host, port, exc))
            continue
        if isinstance(reply, list) and len(reply) == 2:
            return reply[0].decode(), int(reply[1])
        errors.append("%s:%d does not know %r" % (host, port, target.service))
    raise ConnectionLost("no Sentinel named the master of %s: %s" % (target.service, "; ".join(errors)))
