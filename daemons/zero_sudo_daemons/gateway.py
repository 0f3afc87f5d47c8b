"""The WebSocket gateway: the relay's ID-only events pushed to the browsers allowed to see them.

One process holds many thousands of WebSockets (``websockets`` on uvloop) and follows Redis
with one subscription to the relay's channel (:class:`AsyncBusSubscriber`) plus one pattern
subscription to the users' channels, whatever the number of clients. A local index maps each
channel to the connections subscribed to it; each event is JSON-encoded once and written to
all its recipients as one pre-serialized frame. Nothing here is shared between processes:
run as many as needed behind a load balancer.

Defences, in the order a connection meets them: the ``Origin`` allow-list and a connection
cap at the handshake; credentials (the Odoo ``session_id`` cookie, or an HMAC token in the
first command) within :data:`AUTH_TIMEOUT_S`; a bounded inbound frame size; a token bucket
per connection that every frame the client sends draws from (commands, pings, pongs,
continuations: a flood of any kind is closed with 1008); channel grants; a bounded outgoing
buffer per connection, automatic pongs included (a client that cannot keep up is closed with
1013 and resyncs when it reconnects). The client protocol is ``gateway_protocol.py`` (pure)
and docs/gateway.md.

Full garbage collections walk every live object: with 10 000 connections that is a pause of
up to a second in the middle of a fan-out. The gateway freezes what survived every 0.2 s
(:data:`GC_FREEZE_INTERVAL_S`) so a full collection only walks the objects made since, and
a closed connection leaves no reference cycle behind that freezing would keep forever.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import gc
import json
import logging
import random
import resource
import sys
import time
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Sequence
from http import HTTPStatus
from importlib import resources
from typing import assert_never

import redis
import redis.asyncio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event, State

from zero_sudo_bus.channels import MAX_USER_MESSAGE_BYTES, MODEL_PREFIX, USER_PREFIX
from zero_sudo_bus.protocol import BusMessage, model_key, user_channel_prefix
from zero_sudo_bus.redis_clients import RedisTarget, async_blocking_pool
from zero_sudo_bus.sessions import decode_session, granted_channels, grants_are_stale, session_key, session_uid
from zero_sudo_bus.subscriber import TRANSIENT_REDIS_ERRORS, AsyncBusSubscriber, Subscription, follow_async
from zero_sudo_bus.tokens import TokenError, verify_token

from .errors import ZeroSudoDaemonError
from .gateway_protocol import (
    AuthMethod,
    Command,
    CommandOp,
    Principal,
    ProtocolViolation,
    TokenBucket,
    encode_error,
    encode_event,
    encode_hello,
    encode_reply,
    encode_resync,
    encode_user_event,
    origin_allowed,
    parse_command,
    parse_origins,
    plan_subscribe,
    session_id_from_cookie,
)
from .runtime import daemon_main, supervise, task_group
from .settings import Settings

_logger = logging.getLogger("zero_sudo.gateway")

CLIENT_NAME = "zero_sudo_gateway"  # as the gateway's connections show in Redis CLIENT LIST
WS_PATH = "/ws"

# A browser that opened a socket has its cookie or token at hand: 10 s covers a slow token
# fetch from Odoo, and bounds how long an anonymous socket can hold a slot.
AUTH_TIMEOUT_S = 10.0

# A client closed by the gateway (slow, abusive, shutting down) has this long to complete the
# closing handshake before its TCP connection is aborted; a reader that never reads would
# otherwise keep its buffered bytes alive.
CLOSE_TIMEOUT_S = 2.0

# Graceful shutdown waits this long for the 1001 closing handshakes, then aborts the rest;
# well inside the launcher's 20 s grace and docker's 10 s default stop timeout.
SHUTDOWN_DRAIN_S = 5.0

# Commands are tiny and answered at once: two queued inbound messages per connection are
# enough, and the rest stays in the kernel (TCP backpressure) instead of in Python memory.
MAX_INBOUND_QUEUE = 2

# 10 000 clients reconnecting after a restart arrive in one burst; the default backlog of
# 100 would make most of them wait for SYN retransmits (1 s, 3 s...). The kernel caps it at
# net.core.somaxconn.
LISTEN_BACKLOG = 4096

# Session lookups share a few Redis connections; a burst of reconnections queues for one
# for at most this long, then the client is told to try again later (1013).
SESSION_POOL_SIZE = 16
SESSION_LOOKUP_TIMEOUT_S = 2.0

# Inbound bytes are handed to the WebSocket parser this many at a time, the rate limit being
# checked in between: a flooder's frames stop being parsed (and pings answered) within 4 KiB
# of going over, instead of after a whole 256 KiB read of 6-byte pings (43 000 frames).
PARSE_SLICE_BYTES = 4096

# What survived each interval is frozen (moved out of the collector's sight): a full
# collection then walks one interval of allocations instead of every connection's objects.
# Idle, collecting and freezing cost well under a millisecond. While 10 000 clients connect
# within 4 s, 1 s intervals stood the loop still 130-160 ms each (8 pauses, 1.2 s of
# collection in all); 0.2 s intervals, under 100 ms each and 0.3 s in all.
GC_FREEZE_INTERVAL_S = 0.2

# A full collection longer than this is logged: it delayed every client's events that much.
GC_SLOW_PAUSE_S = 0.1

# The longest a fan-out holds the event loop before letting it serve anything else. Writing a
# 12 KB event to 2 000 clients is 0.2-0.4 s of send() calls on a busy 2-core machine. An
# HTTP request such as /healthz needs about five loop turns (accept, read, handshake task,
# write, close), each of which may wait one slice: 5 ms slices keep it within ~25 ms of its
# own work (target 100 ms, docs/gateway.md), for one loop turn (~50 µs) per slice.
FAN_OUT_SLICE_S = 0.005
# Writes between two looks at the clock: a write costs 5-100 µs, perf_counter() 60 ns.
FAN_OUT_CLOCK_EVERY = 32
# Fan-outs (one per loop turn that read events) waiting to be written, at most, before a slice
# writes on past its time: while events come faster than they can be written, they then wait
# in Redis (bounded by its client-output-buffer-limit for pub/sub, past which the gateway is
# disconnected and resyncs every client) instead of in the gateway's memory. 16 queued
# fan-outs to 10 000 clients hold about 16 MB of recipients and frames.
MAX_PENDING_FAN_OUTS = 16


class Refusal(enum.Enum):
    """Why the gateway closes a connection on its own initiative: the close code and reason.

    Close codes are websockets' :class:`CloseCode` (RFC 6455 section 7.4.1): POLICY_VIOLATION
    (1008) for what the client did wrong, TRY_AGAIN_LATER (1013) for what a reconnection fixes.
    """

    FLOOD = (CloseCode.POLICY_VIOLATION, "rate limit exceeded")  # more frames than the rate limit allows
    SLOW = (CloseCode.TRY_AGAIN_LATER, "too slow: reconnect and resync")  # outgoing buffer past its bound
    AUTH_TIMEOUT = (CloseCode.POLICY_VIOLATION, "authentication timeout")  # no credentials in AUTH_TIMEOUT_S

    @property
    def code(self) -> CloseCode:
        return self.value[0]

    @property
    def reason(self) -> str:
        return self.value[1]


class AuthenticationFailed(ZeroSudoDaemonError):
    """A client's credentials were refused; ``reason`` is the metric label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GatewayMetrics:
    """The gateway's Prometheus metrics, on a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("zero_sudo_gateway_connections", "open WebSocket connections", registry=r)
        self.authenticated = Gauge("zero_sudo_gateway_authenticated_connections", "authenticated connections", registry=r)
        self.subscriptions = Gauge("zero_sudo_gateway_subscriptions", "channel subscriptions of all connections", registry=r)
        self.channels = Gauge("zero_sudo_gateway_channels", "distinct channels with at least one subscriber", registry=r)
        self.events_in = Counter("zero_sudo_gateway_events_in", "events received from Redis", ["kind"], registry=r)
        self.messages_out = Counter("zero_sudo_gateway_messages_out", "messages queued to clients", ["kind"], registry=r)
        self.writes = Counter("zero_sudo_gateway_writes", "socket writes (a burst of messages to a client is one)", registry=r)
        self.slow_dropped = Counter(
            "zero_sudo_gateway_slow_clients_dropped", "clients closed (1013) because their outgoing buffer overflowed", registry=r
        )
        self.auth_failures = Counter("zero_sudo_gateway_auth_failures", "refused credentials", ["reason"], registry=r)
        self.stale_session_grants = Counter(
            "zero_sudo_gateway_stale_session_grants",
            "cookie sessions whose stored channel grants had expired or were malformed: only the user's own channel was granted",
            registry=r,
        )
        self.handshakes_refused = Counter(
            "zero_sudo_gateway_handshakes_refused", "WebSocket handshakes refused", ["reason"], registry=r
        )
        self.violations = Counter(
            "zero_sudo_gateway_protocol_violations", "connections closed for breaking the protocol", ["code"], registry=r
        )
        self.refused_channels = Counter(
            "zero_sudo_gateway_refused_subscriptions", "channels refused to a sub command", ["reason"], registry=r
        )
        self.rejected_user_messages = Counter(
            "zero_sudo_gateway_rejected_user_messages", "user-channel messages that are not a JSON object", registry=r
        )
        self.gc_seconds = Counter(
            "zero_sudo_gateway_gc_seconds",
            "time spent in garbage collections (the event loop stands still)",
            ["generation"],
            registry=r,
        )
        self.fan_outs_pending = Gauge(
            "zero_sudo_gateway_fan_outs_pending",
            "fan-outs queued behind the one being written (at most %d)" % MAX_PENDING_FAN_OUTS,
            registry=r,
        )
        # Counted as they are frozen: gc.get_freeze_count() walks every frozen object (0.1 s
        # at 10 000 connections), which a scrape would make the event loop wait for.
        self.gc_frozen = Counter(
            "zero_sudo_gateway_gc_frozen_objects",
            "objects frozen out of the collector's sight (grows with new connections only)",
            registry=r,
        )


class GatewayConnection(ServerConnection):
    """A client connection with what the gateway knows about it, and its inbound bounds.

    websockets answers each ping with a pong as it parses it, before the application sees
    any frame, and queues data frames only up to ``max_queue``: control frames would cost
    the gateway memory (pongs to a client that never reads) and CPU without limit. So every
    frame, whatever its kind, is charged to :attr:`bucket` as it is parsed; input is parsed
    :data:`PARSE_SLICE_BYTES` at a time so a flood stops being parsed soon after going over;
    and whatever the gateway writes on its own (pongs) counts against the same outgoing
    buffer bound as events. Past either bound, :meth:`refuse` closes it.
    """

    def __init__(self, *args: object, gateway: Gateway, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.gateway = gateway
        self.principal: Principal | None = None
        self.channels: set[str] = set()
        settings = gateway.settings
        self.bucket = TokenBucket(settings.gateway_commands_per_s, settings.gateway_command_burst)
        self.auth_deadline: asyncio.TimerHandle | None = None
        self.refused: Refusal | None = None  # why the gateway is closing it, once it is
        self._abort_handle: asyncio.TimerHandle | None = None

    async def keepalive(self) -> None:
        """websockets' keepalive, its first ping at a random moment of the first interval.

        Connections opened together (clients reconnecting after a restart, a benchmark's
        clients) would otherwise ping together for as long as they live: every interval,
        thousands of pings and then thousands of pongs in one loop iteration, and the events
        queued behind them late by that much. A dead client is still noticed, within two
        intervals plus the ping timeout instead of one.
        """
        assert self.ping_interval is not None
        await asyncio.sleep(random.uniform(0, self.ping_interval))
        await super().keepalive()

    def data_received(self, data: bytes) -> None:
        """Parse ``data`` slice by slice, stopping at a refusal; then check the outgoing buffer."""
        for start in range(0, len(data), PARSE_SLICE_BYTES):
            if self.refused is not None:
                return  # a refused client's input is dropped unparsed: no more pongs
            super().data_received(data[start : start + PARSE_SLICE_BYTES])
        if self.refused is None and self.transport.get_write_buffer_size() > self.gateway.settings.gateway_max_buffer_bytes:
            self.refuse(Refusal.SLOW)

    def process_event(self, event: Event) -> None:
        """Charge every frame (data or control) to the rate limit before it is processed."""
        if self.request is not None:  # the first event is the handshake request, then frames
            if self.refused is not None:
                return
            if not self.bucket.take():
                self.refuse(Refusal.FLOOD)
                return
        super().process_event(event)

    def refuse(self, refusal: Refusal) -> None:
        """Close now without waiting on anything: close frame, EOF, abort if not gone in time.

        The gateway forgets the connection at once (no more events). The client gets the close
        frame after what it has not read yet; its TCP connection is aborted after
        :data:`CLOSE_TIMEOUT_S` unless it closes first, so its buffers are freed either way.
        No task per connection: thousands of slow clients are dropped in one loop iteration.
        """
        if self.refused is not None:
            return
        self.refused = refusal
        self.gateway.on_refused(self, refusal)
        if self.protocol.state is not State.OPEN:
            self.transport.abort()  # handshake not done, or closing already: nothing to say
            return
        self.protocol.fail(refusal.code, refusal.reason)
        self.send_data()
        self._abort_handle = self.loop.call_later(CLOSE_TIMEOUT_S, self.transport.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        """Also break the reference cycles a closed connection would leave to the collector.

        The protocol's parser is a generator whose frame refers to the protocol, and the
        exception that ended it (EOF, a protocol error) refers to that frame through its
        traceback: ~15 objects per connection that only a full collection would free, and
        never once frozen (:data:`GC_FREEZE_INTERVAL_S`).
        """
        super().connection_lost(exc)
        if self._abort_handle is not None:
            self._abort_handle.cancel()
            self._abort_handle = None
        protocol = self.protocol
        protocol.parser.close()
        if protocol.parser_exc is not None:
            protocol.parser_exc.__traceback__ = None


def raise_open_files_limit() -> int:
    """Raise the soft limit of open files to the hard one (each WebSocket is a descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _static(name: str) -> bytes:
    return resources.files("zero_sudo_daemons").joinpath("static", name).read_bytes()


def _http(status: int, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
        ]
    )
    return Response(status, HTTPStatus(status).phrase, headers, body)


def _json_response(status: int, body: dict[str, object]) -> Response:
    return _http(status, json.dumps(body).encode(), "application/json")


class Gateway:
    """One gateway process: the WebSocket server, the Redis subscriptions and the index."""

    def __init__(self, settings: Settings, metrics: GatewayMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or GatewayMetrics()
        self.registry = self.metrics.registry
        self.port = settings.gateway_port
        self.allowed_origins = parse_origins(settings.gateway_allowed_origins)
        # The Redis master: redis_url, or the one the Sentinels name (followed through a failover).
        self.redis = RedisTarget.of(settings)
        self.bus = AsyncBusSubscriber(self.redis, settings.db_name, self._on_change, self._on_flush, client_name=CLIENT_NAME)
        self._user_prefix = user_channel_prefix(settings.db_name)
        self._index: dict[str, set[GatewayConnection]] = {}  # channel name → subscribers
        self._models: dict[int, tuple[str, str]] = {}  # model key → (channel name, model name)
        self._connections: set[GatewayConnection] = set()
        self._authenticated: set[GatewayConnection] = set()
        self._slow_dropped_now = 0  # slow clients refused in this loop iteration, logged once
        self._gc_started = 0.0  # when the running garbage collection started (perf_counter)
        self._batch: list[tuple[tuple[GatewayConnection, ...], bytes]] = []  # written by _flush
        self._writes: deque[Iterator[tuple[GatewayConnection, bytes]]] = deque()  # by _write_slice
        self._user_channels_connected = False
        self._stopping = False
        self._sessions: redis.asyncio.Redis | None = None
        self._static = {
            "/zero_sudo_gateway.js": (_static("zero_sudo_gateway.js"), "text/javascript; charset=utf-8"),
            "/demo.html": (_static("demo.html"), "text/html; charset=utf-8"),
        }
        m = self.metrics
        m.connections.set_function(lambda: len(self._connections))
        m.authenticated.set_function(lambda: len(self._authenticated))
        m.subscriptions.set_function(lambda: sum(len(conns) for conns in self._index.values()))
        m.channels.set_function(lambda: len(self._index))

    # -- health ------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, object]]:
        """Healthy while following the relay's channel and not shutting down."""
        healthy = self.bus.connected.is_set() and not self._stopping
        return healthy, {
            "bus": self.bus.connected.is_set(),
            "user_channels": self._user_channels_connected,
            "connections": len(self._connections),
            "stopping": self._stopping,
        }

    # -- lifecycle -----------------------------------------------------------------------
    async def run(self, stopping: asyncio.Event) -> None:
        """Serve until ``stopping``: then stop accepting, close every client with 1001, drain."""
        # websockets logs each handshake and close at INFO: tens of thousands of lines when
        # clients reconnect after a restart. The metrics count those; its warnings still show.
        logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))
        limit = raise_open_files_limit()
        if limit < self.settings.gateway_max_connections + 64:
            _logger.warning("open files limit %d is below gateway_max_connections + 64: raise ulimit -n", limit)
        pool = async_blocking_pool(
            self.redis,
            max_connections=SESSION_POOL_SIZE,
            timeout=SESSION_LOOKUP_TIMEOUT_S,
            socket_timeout=SESSION_LOOKUP_TIMEOUT_S,
            client_name=CLIENT_NAME,
        )
        self._sessions = redis.asyncio.Redis.from_pool(pool)  # closing it closes the pool
        server = await self._serve()
        try:
            # A worker that fails has a bug (the supervisors retry what Redis does): the group
            # ends, and the process with it; the process manager restarts it.
            async with task_group() as tasks:
                workers = (
                    tasks.create_task(supervise("bus subscriber", self.bus.run, stopping, TRANSIENT_REDIS_ERRORS)),
                    tasks.create_task(supervise("user channels", self._follow_user_channels, stopping, TRANSIENT_REDIS_ERRORS)),
                    tasks.create_task(self._freeze_survivors()),
                )
                try:
                    await stopping.wait()
                finally:
                    await self._shut_down(server)  # stopping, or a worker failed: clients get 1001
                    for worker in workers:
                        worker.cancel()
        finally:
            await self._sessions.aclose()

    async def _serve(self) -> Server:
        s = self.settings
        server = await serve(
            self._handle,
            s.gateway_host,
            s.gateway_port,
            process_request=self._process_request,
            compression=None,  # permessage-deflate costs ~300 KiB of zlib state per connection
            max_size=s.gateway_max_frame_bytes,
            max_queue=MAX_INBOUND_QUEUE,
            ping_interval=s.gateway_ping_interval_s,
            ping_timeout=s.gateway_ping_timeout_s,
            close_timeout=CLOSE_TIMEOUT_S,
            open_timeout=AUTH_TIMEOUT_S,
            create_connection=functools.partial(GatewayConnection, gateway=self),
            backlog=LISTEN_BACKLOG,
        )
        self.port = server.sockets[0].getsockname()[1]
        _logger.info("gateway listening host=%s port=%d db=%s", s.gateway_host, self.port, s.db_name)
        return server

    async def _freeze_survivors(self) -> None:
        """Every :data:`GC_FREEZE_INTERVAL_S`, collect what is new and freeze what survives.

        Runs for the life of the process; a full collection then walks only what was
        allocated since the last freeze, whatever the number of connections.
        """
        gc.callbacks.append(self._on_gc)
        try:
            while True:
                await asyncio.sleep(GC_FREEZE_INTERVAL_S)
                gc.collect()
                # After a full collection every survivor not yet frozen is in the oldest
                # generation: listing it costs one interval's allocations, not the heap.
                self.metrics.gc_frozen.inc(len(gc.get_objects(generation=2)))
                gc.freeze()
        finally:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_started
        self.metrics.gc_seconds.labels(str(info["generation"])).inc(pause)
        if pause > GC_SLOW_PAUSE_S:
            _logger.warning(
                "slow garbage collection generation=%d pause_ms=%.0f collected=%d",
                info["generation"],
                pause * 1000,
                info["collected"],
            )

    async def _shut_down(self, server: Server) -> None:
        self._stopping = True
        _logger.info("gateway stopping: closing %d connections with 1001", len(self._connections))
        server.close(close_connections=True)
        try:
            async with asyncio.timeout(SHUTDOWN_DRAIN_S):
                await server.wait_closed()
        except TimeoutError:
            _logger.warning("gateway drain timed out: aborting %d connections", len(self._connections))
            for connection in list(self._connections):
                connection.transport.abort()
        _logger.info("gateway stopped")

    # -- HTTP: ops, static files, and the handshake checks --------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == WS_PATH:
            return self._check_handshake(request)
        if path == "/healthz":
            healthy, details = self.health()
            return _json_response(200 if healthy else 503, {"status": "ok" if healthy else "unavailable", **details})
        if path == "/metrics":
            return _http(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        if path in self._static:
            body, content_type = self._static[path]
            return _http(200, body, content_type)
        return _json_response(404, {"error": "not found", "paths": [WS_PATH, "/healthz", "/metrics", *self._static]})

    def _check_handshake(self, request: Request) -> Response | None:
        """Refuse a WebSocket handshake from a foreign origin, or beyond capacity."""
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, self.allowed_origins):
            self.metrics.handshakes_refused.labels("origin").inc()
            _logger.warning("handshake refused: origin not allowed origin=%r", origin[:200])
            return _json_response(403, {"error": "origin not allowed"})
        if self._stopping or len(self._connections) >= self.settings.gateway_max_connections:
            self.metrics.handshakes_refused.labels("capacity").inc()
            return _json_response(503, {"error": "gateway at capacity or stopping; try another"})
        return None

    # -- one connection --------------------------------------------------------------------
    async def _handle(self, connection: GatewayConnection) -> None:
        if connection.refused is not None:
            return  # flooded during the handshake: already aborted
        self._connections.add(connection)
        try:
            await self._authenticate_by_cookie(connection)
            if connection.principal is None:
                connection.auth_deadline = asyncio.get_running_loop().call_later(AUTH_TIMEOUT_S, self._auth_timed_out, connection)
            async for frame in connection:
                self._on_frame(connection, frame)
        except ProtocolViolation as exc:
            self.metrics.violations.labels(str(int(exc.code))).inc()
            await self._close(connection, exc.code, exc.reason)
        except AuthenticationFailed as exc:
            self.metrics.auth_failures.labels(exc.reason).inc()
            # An unreachable session store is the gateway's problem: the client may retry.
            code = CloseCode.TRY_AGAIN_LATER if exc.reason == "store_unavailable" else CloseCode.POLICY_VIOLATION
            await self._close(connection, code, "authentication failed: %s" % exc.reason)
        except ConnectionClosed:
            pass
        finally:
            self._forget(connection)

    async def _authenticate_by_cookie(self, connection: GatewayConnection) -> None:
        """A ``session_id`` cookie of a logged-in Odoo session authenticates its user, granted
        the channels Odoo stored in that session (``zero_sudo_bus.sessions.granted_channels``)."""
        sid = session_id_from_cookie(connection.request.headers.get("Cookie"))
        if sid is None:
            return
        try:
            raw = await self._sessions.get(session_key(self.settings.session_prefix, sid))
        except TRANSIENT_REDIS_ERRORS as exc:
            _logger.warning("session lookup failed error=%r", exc)
            raise AuthenticationFailed("store_unavailable") from exc
        session = decode_session(raw)
        uid = session_uid(session)
        if uid is None or session.get("db") != self.settings.db_name:
            # An anonymous or foreign session is no credential, but the page may still send
            # a token: count it and leave the connection waiting for one.
            self.metrics.auth_failures.labels("session_unknown" if session is None else "session_not_logged_in").inc()
            return
        now = time.time()
        if grants_are_stale(session, now):
            self.metrics.stale_session_grants.inc()
        grants = granted_channels(session, uid, now)
        self._authenticated_as(connection, Principal(uid, self.settings.db_name, AuthMethod.SESSION, grants))

    def _authenticated_as(self, connection: GatewayConnection, principal: Principal) -> None:
        connection.principal = principal
        if connection.auth_deadline is not None:
            connection.auth_deadline.cancel()
            connection.auth_deadline = None
        self._authenticated.add(connection)
        self._deliver((connection,), encode_hello(principal), "reply")

    def _auth_timed_out(self, connection: GatewayConnection) -> None:
        connection.auth_deadline = None
        self.metrics.auth_failures.labels("timeout").inc()
        connection.refuse(Refusal.AUTH_TIMEOUT)

    def _on_frame(self, connection: GatewayConnection, frame: str | bytes) -> None:
        if connection.refused is not None:
            return  # queued before the refusal: the connection is closing, nothing to answer
        command = parse_command(frame)  # the frame was charged to the rate limit when parsed
        if command.op is CommandOp.AUTH:
            self._authenticate_by_token(connection, command)
        elif connection.principal is None:
            raise ProtocolViolation("authenticate first")
        elif command.op is CommandOp.SUB:
            self._subscribe(connection, command)
        elif command.op is CommandOp.UNSUB:
            self._unsubscribe(connection, command)
        else:
            assert_never(command.op)

    def _authenticate_by_token(self, connection: GatewayConnection, command: Command) -> None:
        if connection.principal is not None:
            self._deliver((connection,), encode_error("already_authenticated", "", command.id), "reply")
            return
        if not self.settings.gateway_token_secret:
            raise AuthenticationFailed("tokens_disabled")
        try:
            claims = verify_token(self.settings.gateway_token_secret, command.token, time.time())
        except TokenError as exc:
            raise AuthenticationFailed(exc.reason) from None
        if claims.db != self.settings.db_name:
            raise AuthenticationFailed("wrong_db")
        self._authenticated_as(connection, Principal(claims.uid, claims.db, AuthMethod.TOKEN, claims.channels))

    def _subscribe(self, connection: GatewayConnection, command: Command) -> None:
        plan = plan_subscribe(connection.principal, connection.channels, command.channels)
        for channel in plan.accepted:
            if channel.name in connection.channels:
                continue
            connection.channels.add(channel.name)
            self._index.setdefault(channel.name, set()).add(connection)
            if channel.model is not None:
                self._models[model_key(channel.model)] = (channel.name, channel.model)
        for _name, reason in plan.refused:
            self.metrics.refused_channels.labels(reason).inc()
        accepted = [channel.name for channel in plan.accepted]
        self._deliver((connection,), encode_reply(command, accepted, plan.refused), "reply")

    def _unsubscribe(self, connection: GatewayConnection, command: Command) -> None:
        removed = [name for name in command.channels if name in connection.channels]
        self._drop_subscriptions(connection, removed)
        self._deliver((connection,), encode_reply(command, removed), "reply")

    def _drop_subscriptions(self, connection: GatewayConnection, names: Iterable[str]) -> None:
        for name in list(names):
            connection.channels.discard(name)
            subscribers = self._index.get(name)
            if subscribers is None:
                continue
            subscribers.discard(connection)
            if not subscribers:
                del self._index[name]
                if name.startswith(MODEL_PREFIX):
                    del self._models[model_key(name[len(MODEL_PREFIX) :])]

    def _forget(self, connection: GatewayConnection) -> None:
        """Take a connection out of every index; idempotent (slow clients go twice)."""
        if connection.auth_deadline is not None:
            connection.auth_deadline.cancel()
            connection.auth_deadline = None
        self._drop_subscriptions(connection, connection.channels)
        self._authenticated.discard(connection)
        self._connections.discard(connection)

    # -- closing -------------------------------------------------------------------------
    async def _close(self, connection: GatewayConnection, code: CloseCode, reason: str) -> None:
        """Close with ``code``, aborting the TCP connection if the client does not answer."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await connection.close(code, reason)
        except TimeoutError:
            connection.transport.abort()

    def on_refused(self, connection: GatewayConnection, refusal: Refusal) -> None:
        """Account for a connection :meth:`GatewayConnection.refuse` closes, and forget it."""
        if refusal is Refusal.SLOW:
            self.metrics.slow_dropped.inc()
            if not self._slow_dropped_now:
                asyncio.get_running_loop().call_soon(self._log_slow_dropped)
            self._slow_dropped_now += 1
            _logger.debug(
                "slow client dropped uid=%s buffered_bytes=%d",
                connection.principal.uid if connection.principal else None,
                connection.transport.get_write_buffer_size(),
            )
        elif refusal is Refusal.FLOOD:  # AUTH_TIMEOUT is counted as an authentication failure
            self.metrics.violations.labels(str(int(refusal.code))).inc()
            _logger.info(
                "client refused code=%d reason=%s uid=%s",
                refusal.code,
                refusal.reason,
                connection.principal.uid if connection.principal else None,
            )
        self._forget(connection)

    def _log_slow_dropped(self) -> None:
        """One line for all the slow clients dropped in a loop iteration (thousands, at worst)."""
        _logger.info("slow clients dropped count=%d", self._slow_dropped_now)
        self._slow_dropped_now = 0

    # -- fan-out -----------------------------------------------------------------------------
    def _deliver(self, recipients: Collection[GatewayConnection], message: str, kind: str) -> None:
        """Queue one message for every recipient; written at the end of this loop iteration.

        Encoded once: the frame is serialized by websockets' own :class:`Frame` and the same
        bytes go to every recipient (the server does not mask, and no extension is
        negotiated), where ``websockets.broadcast()`` would serialize it again for each one.
        Messages delivered in the same loop iteration (a burst read from Redis at once)
        reach each connection in one write: one system call per client per burst instead of
        one per event, which is what fan-out to 10 000 clients costs (``make bench-gateway``).
        """
        if not self._batch:
            asyncio.get_running_loop().call_soon(self._flush)
        self._batch.append((tuple(recipients), Frame(Opcode.TEXT, message.encode()).serialize(mask=False)))
        self.metrics.messages_out.labels(kind).inc(len(recipients))

    def _flush(self) -> None:
        """Queue the writes of what :meth:`_deliver` collected in this loop iteration.

        Written in slices of :data:`FAN_OUT_SLICE_S` by :meth:`_write_slice`, in the order
        the batches came: a connection gets its events in order, however many slices a
        fan-out takes.
        """
        batch, self._batch = self._batch, []
        if len(batch) == 1:
            recipients, frame = batch[0]
            self._writes.append((connection, frame) for connection in recipients)
        else:
            frames: dict[GatewayConnection, list[bytes]] = {}
            for recipients, frame in batch:
                for connection in recipients:
                    frames.setdefault(connection, []).append(frame)
            self._writes.append((connection, b"".join(queued)) for connection, queued in frames.items())
        if len(self._writes) == 1:  # otherwise a slice is already due
            self._write_slice()

    def _write_slice(self) -> None:
        """Write queued data for up to :data:`FAN_OUT_SLICE_S`; close (1013) whoever has no room.

        A connection whose outgoing buffer is over ``gateway_max_buffer_bytes`` is not written
        to but closed: buffered bytes per connection stay bounded whatever the traffic, and a
        slow client never delays the others (writes never wait). What is left is written in
        the next loop turn, after whatever else is ready; past :data:`MAX_PENDING_FAN_OUTS`
        queued fan-outs, the slice goes on until the queue is back under it.
        """
        limit = self.settings.gateway_max_buffer_bytes
        deadline = time.perf_counter() + FAN_OUT_SLICE_S
        sent = handled = 0
        try:
            while self._writes:
                for connection, data in self._writes[0]:
                    transport = connection.transport
                    if transport.is_closing() or connection.protocol.state is not State.OPEN:
                        pass  # going away (closed, refused, shutting down): nothing to write
                    elif transport.get_write_buffer_size() > limit:
                        connection.refuse(Refusal.SLOW)  # as costly as a write: thousands may go at once
                    else:
                        transport.write(data)
                        sent += 1
                    handled += 1
                    if (
                        handled % FAN_OUT_CLOCK_EVERY == 0
                        and time.perf_counter() > deadline
                        and len(self._writes) <= MAX_PENDING_FAN_OUTS
                    ):
                        return
                self._writes.popleft()
        finally:
            # Whatever happened to this slice, the rest is written: nothing waits for ever.
            self.metrics.writes.inc(sent)
            self.metrics.fan_outs_pending.set(max(len(self._writes) - 1, 0))
            if self._writes:
                asyncio.get_running_loop().call_soon(self._write_slice)

    def _on_change(self, message: BusMessage) -> None:
        self.metrics.events_in.labels("change").inc()
        target = self._models.get(message.model_key)
        if target is None:
            return
        channel, model = target
        self._deliver(
            self._index[channel], encode_event(channel, model, message.op, message.ids, message.epoch, message.seq), "event"
        )

    def _on_flush(self, reason: str) -> None:
        self.metrics.events_in.labels("flush").inc()
        self._deliver(self._authenticated, encode_resync(reason), "resync")

    # -- user channels -------------------------------------------------------------------------
    async def _follow_user_channels(self) -> None:
        """One pattern subscription to every user channel of the database, for all clients.

        The same subscribe-and-listen logic as the relay's channel (:class:`Subscription`):
        connected only once Redis confirmed the PSUBSCRIBE, so /healthz never reports user
        channels that a dead Redis would not deliver.
        """
        subscription = Subscription(self._user_prefix + "*", self._user_channels_confirmed, self._on_user_message, pattern=True)
        try:
            await follow_async(self.redis, CLIENT_NAME, subscription)
        finally:
            self._user_channels_connected = False

    def _user_channels_confirmed(self) -> None:
        self._user_channels_connected = True

    def _on_user_message(self, redis_channel: bytes, data: bytes) -> None:
        self.metrics.events_in.labels("user").inc()
        uid = redis_channel.decode("utf-8", "replace")[len(self._user_prefix) :]
        recipients = self._index.get(USER_PREFIX + uid)
        if not recipients:
            return
        body = None
        if len(data) <= MAX_USER_MESSAGE_BYTES:
            try:
                body = json.loads(data)
            except (ValueError, RecursionError):
                body = None
        if type(body) is not dict:
            self.metrics.rejected_user_messages.inc()
            return
        self._deliver(recipients, encode_user_event(int(uid), body), "event")


def main(argv: Sequence[str] | None = None) -> int:
    return daemon_main("zero-sudo-gateway", __doc__.splitlines()[0], argv, lambda s: (Gateway(s), None, None))


if __name__ == "__main__":
    sys.exit(main())
