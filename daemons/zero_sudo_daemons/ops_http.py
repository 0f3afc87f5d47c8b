"""``/healthz`` and Prometheus ``/metrics`` for daemons that have no HTTP server of their own.

A deliberately small HTTP/1.1 responder on asyncio: GET only, no body, one request per
connection, a bounded request head and a read timeout, so a scraper or a probe can never
tie up the daemon's loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

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
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
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
