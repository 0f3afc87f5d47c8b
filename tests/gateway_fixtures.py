"""Gateway test helpers: a real gateway process on a port of 8700-8799, and clients.

Tests talk to it with websockets' synchronous client (one thread per client, plain code),
or with a raw socket when a client must misbehave below what a WebSocket library allows.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import time

import pytest
from websockets.frames import Opcode
from websockets.sync.client import ClientConnection, connect

from conftest import REDIS_URL, DaemonProcess, wait_until
from zero_sudo_bus.tokens import sign_token

SECRET = "test-gateway-secret"
PORTS = range(8700, 8800)  # the range the project reserves for gateways started by tests


def free_gateway_port() -> int:
    """A port of :data:`PORTS` nobody listens on (checked by binding it)."""
    for port in random.sample(PORTS, len(PORTS)):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail("no free port in 8700-8799")


def token_for(db: str, channels: list[str], uid: int = 2, ttl: int = 300, secret: str = SECRET) -> str:
    return sign_token(secret, uid, db, channels, int(time.time()) + ttl)


class GatewayProcess(DaemonProcess):
    """``python -m zero_sudo_daemons.gateway`` in a subprocess, with its log collected."""

    def __init__(self, db: str, *extra: str, redis_url: str = REDIS_URL, port: int | None = None) -> None:
        self.db = db
        port = port or free_gateway_port()
        self.origin = "http://127.0.0.1:%d" % port
        super().__init__(
            "zero_sudo_daemons.gateway",
            "--gateway-port",
            "--db-name",
            db,
            "--redis-url",
            redis_url,
            "--gateway-token-secret",
            SECRET,
            "--gateway-allowed-origins",
            "http://allowed.example,%s" % self.origin,
            *extra,
            port=port,
        )

    @property
    def url(self) -> str:
        return "ws://127.0.0.1:%d/ws" % self.port

    def healthy(self) -> bool:
        return self.get("/healthz")[0] == 200

    def wait_healthy(self) -> GatewayProcess:
        wait_until(self.healthy, 20, what="gateway healthy (log: %s)" % "".join(self.output[-20:]))
        return self

    def rss_kib(self) -> int:
        with open("/proc/%d/status" % self.proc.pid) as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@pytest.fixture
def start_gateway():
    gateways: list[GatewayProcess] = []

    def start(db: str, *extra: str, **kwargs) -> GatewayProcess:
        gateway = GatewayProcess(db, *extra, **kwargs)
        gateways.append(gateway)
        return gateway.wait_healthy()

    yield start
    for gateway in gateways:
        if gateway.proc.poll() is None:
            gateway.proc.kill()
            gateway.proc.wait()


def open_client(
    gateway: GatewayProcess, origin: str | None = "http://allowed.example", cookie: str | None = None
) -> ClientConnection:
    headers = {"Cookie": cookie} if cookie else None
    # legacy=True: a plain connection object, not a context manager; the gateway's teardown
    # closes whatever a test leaves open.
    return connect(gateway.url, origin=origin, additional_headers=headers, open_timeout=10, compression=None, legacy=True)


def receive(client: ClientConnection, timeout: float = 10.0) -> dict:
    return json.loads(client.recv(timeout))


def receive_until(client: ClientConnection, kind: str, timeout: float = 10.0) -> dict:
    """The next message of type ``kind`` (``t``), skipping others (e.g. resyncs)."""
    deadline = time.monotonic() + timeout
    while True:
        message = receive(client, max(0.01, deadline - time.monotonic()))
        if message["t"] == kind:
            return message


def authenticated_client(gateway: GatewayProcess, channels: list[str], uid: int = 2, grants: list[str] | None = None):
    """A token client subscribed to ``channels`` (granted ``grants``, default the same)."""
    client = open_client(gateway)
    client.send(json.dumps({"op": "auth", "token": token_for(gateway.db, grants or channels, uid)}))
    assert receive(client)["t"] == "hello"
    client.send(json.dumps({"op": "sub", "ch": channels}))
    reply = receive_until(client, "subscribed")
    return client, reply


class RawClient:
    """A WebSocket client on a bare socket: it can stop reading, with a tiny receive buffer."""

    def __init__(self, port: int, receive_buffer: int = 4096) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (port, key)
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send_text(self, text: str) -> None:
        """One masked text frame (RFC 6455 5.3: clients mask; the zero key is valid)."""
        self.sock.sendall(client_frame(Opcode.TEXT, text.encode()))

    def flood(self, frame: bytes, max_bytes: int, seconds: float) -> int:
        """Send ``frame`` over and over without reading, until the gateway stops taking them.

        Stops after ``max_bytes`` or ``seconds``, when the gateway closes the connection, or
        when a write blocks for a second (the gateway stopped reading it). The bytes sent.
        """
        chunk = frame * max(1, 65536 // len(frame))
        sent = 0
        deadline = time.monotonic() + seconds
        self.sock.settimeout(1.0)
        try:
            while sent < max_bytes and time.monotonic() < deadline:
                sent += self.sock.send(chunk)
        except (TimeoutError, OSError):
            pass
        return sent

    def read_until_closed(self, timeout: float) -> tuple[bytes, bool]:
        """Everything the gateway sends until it closes the TCP connection: (bytes, reset?).

        A connection the gateway aborts ends with a reset (the unread bytes are lost); one it
        closes cleanly ends with EOF after its close frame.
        """
        received = bytearray()
        deadline = time.monotonic() + timeout
        while True:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return bytes(received), True
            except TimeoutError:
                pytest.fail("the gateway did not close the connection within %.1fs" % timeout)
            if not data:
                return bytes(received), False
            received += data

    def close(self) -> None:
        self.sock.close()


def client_frame(opcode: Opcode, payload: bytes = b"", fin: bool = True) -> bytes:
    """One masked client frame of any kind (the all-zero masking key is valid)."""
    assert len(payload) < 65536
    length = bytes([0x80 | len(payload)]) if len(payload) < 126 else bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
    return bytes([(0x80 if fin else 0) | opcode.value]) + length + b"\0\0\0\0" + payload


def close_codes(data: bytes) -> list[int]:
    """The codes of the close frames in what a server sent after its 101 (unmasked frames)."""
    offset = 0
    codes = []
    while len(data) - offset >= 2:
        opcode, length, header = data[offset] & 0x0F, data[offset + 1] & 0x7F, 2
        if length == 126:
            length, header = int.from_bytes(data[offset + 2 : offset + 4], "big"), 4
        elif length == 127:
            length, header = int.from_bytes(data[offset + 2 : offset + 10], "big"), 10
        if opcode == Opcode.CLOSE.value and length >= 2:
            codes.append(int.from_bytes(data[offset + header : offset + header + 2], "big"))
        offset += header + length
    return codes


def open_stalled_clients(gateway: GatewayProcess, count: int, channels: list[str]) -> list[socket.socket]:
    """``count`` subscribed token clients that never read (a 4 KiB receive buffer each).

    Each sends its handshake, ``auth`` and ``sub`` in one write without waiting for the
    answers, so thousands are set up in a few seconds.
    """
    token = token_for(gateway.db, channels)
    commands = client_frame(Opcode.TEXT, json.dumps({"op": "auth", "token": token}).encode()) + client_frame(
        Opcode.TEXT, json.dumps({"op": "sub", "ch": channels}).encode()
    )
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", gateway.port))
        key = base64.b64encode(os.urandom(16)).decode()
        handshake = (
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (gateway.port, key)
        )
        sock.sendall(handshake.encode() + commands)
        sockets.append(sock)
    return sockets
