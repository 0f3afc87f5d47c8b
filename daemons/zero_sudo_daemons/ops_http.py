"""``/healthz`` and Prometheus ``/metrics`` for daemons that have no HTTP server of their own.

A deliberately small HTTP/1.1 responder on asyncio: GET only, no body, one request per
connection, a bounded request head and a read timeout, so a scraper or a probe can never
tie up the daemon's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .errors import ConfigurationError

_logger = logging.getLogger(__name__)

MAX_HEAD_BYTES = 8192  # a probe's request head is a few hundred bytes; anything larger is abuse
READ_TIMEOUT_S = 5.0

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    503: "Service Unavailable",
}


def _response(status: int, body: bytes, content_type: str, extra_headers: str = "") -> bytes:
    head = "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n%s\r\n" % (
        status,
        _REASONS[status],
        content_type,
        len(body),
        extra_headers,
    )
    return head.encode("ascii") + body


def _json(status: int, payload: dict[str, Any], extra_headers: str = "") -> bytes:
    return _response(status, json.dumps(payload).encode(), "application/json", extra_headers)


@contextlib.contextmanager
def listening(host_option: str, host: str, port_option: str, port: int) -> Iterator[None]:
    """Wrap a server's bind: a failure to listen becomes one :class:`ConfigurationError` line.

    A port already taken or an address that is not this machine's is a setting to change, not
    a bug: the daemon must say which setting, not print a traceback. Every daemon binds under
    this, the ops endpoint (:func:`runtime.serve_with_ops`) and the gateway's own server alike.
    """
    try:
        yield
    except socket.gaierror as exc:
        raise ConfigurationError("%s %s cannot be resolved: %s" % (host_option, host, exc.strerror)) from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            reason = "%s %d on %s is already in use" % (port_option, port, host)
        elif exc.errno == errno.EADDRNOTAVAIL:
            reason = "%s %s is not an address of this machine" % (host_option, host)
        elif exc.errno == errno.EACCES:
            reason = "%s %d on %s needs privileges this process lacks (use 1024 or above)" % (port_option, port, host)
        else:
            reason = "cannot listen on %s %s, %s %d: %s" % (host_option, host, port_option, port, exc.strerror or exc)
        raise ConfigurationError(reason) from None


class OpsServer:
    """Serves ``GET /healthz`` (200 or 503 with details) and ``GET /metrics``."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, health: HealthCheck) -> None:
        self.host, self.port = host, port
        self.registry = registry
        self.health = health
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=MAX_HEAD_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]
        _logger.info("ops http listening host=%s port=%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def route(self, method: str, target: str) -> bytes:
        """The full response for one request line (pure: no I/O)."""
        path = target.split("?", 1)[0]
        if path not in ("/healthz", "/metrics"):
            return _json(404, {"error": "not found", "paths": ["/healthz", "/metrics"]})
        if method != "GET":
            return _json(405, {"error": "only GET is allowed"}, "Allow: GET\r\n")
        if path == "/metrics":
            return _response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        healthy, details = self.health()
        return _json(200 if healthy else 503, {"status": "ok" if healthy else "unavailable", **details})

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(READ_TIMEOUT_S):
                    head = await reader.readuntil(b"\r\n\r\n")
            except TimeoutError:
                writer.write(_json(408, {"error": "request head not received in time"}))
                return
            except (asyncio.LimitOverrunError, asyncio.IncompleteReadError):
                writer.write(_json(400, {"error": "request head missing or larger than %d bytes" % MAX_HEAD_BYTES}))
                return
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                writer.write(_json(400, {"error": "malformed request line"}))
                return
            writer.write(self.route(parts[0], parts[1]))
        finally:
            try:
                await writer.drain()
            except ConnectionError:
                pass
            writer.close()
