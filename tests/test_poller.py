"""The poller daemon against a local HTTP server this test starts, and real RabbitMQ."""

import asyncio
import json
import threading
import time

import pytest
from aiohttp import web
from ingest_fixtures import AMQP_URL, declare_queues, delete_queues, drain

from conftest import DaemonProcess, free_port, wait_until
from zero_sudo_bus.ingest import decode_ingest_message, landing_queue


class SourceServer:
    """Serves /prices (with an ETag), /broken (500) and /slow (answers too late)."""

    def __init__(self):
        self.port = free_port()
        self.hits = {"prices": 0, "prices_304": 0, "broken": 0, "slow": 0}
        self.version = 1
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        self._ready.wait(10)

    async def prices(self, request):
        self.hits["prices"] += 1
        etag = '"v%d"' % self.version
        if request.headers.get("If-None-Match") == etag:
            self.hits["prices_304"] += 1
            return web.Response(status=304, headers={"ETag": etag})
        items = [{"code": "EUR", "rate": 1.0 + self.version}, {"code": "USD", "rate": 1.1}, {"rate": 9}]
        return web.json_response({"rates": items}, headers={"ETag": etag})

    async def broken(self, _request):
        self.hits["broken"] += 1
        return web.Response(status=500, text="down")

    async def slow(self, _request):
        self.hits["slow"] += 1
        await asyncio.sleep(5)
        return web.json_response([])

    def _serve(self):
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/prices", self.prices)
        app.router.add_get("/broken", self.broken)
        app.router.add_get("/slow", self.slow)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()


def landed_messages(db):
    return asyncio.run(drain(landing_queue(db), lambda message: decode_ingest_message(message.body)))


@pytest.fixture
def poll_db():
    db = "zs_poll_%d" % free_port()
    asyncio.run(declare_queues(db))
    yield db
    asyncio.run(delete_queues(db))


def test_polls_publishes_conditionally_and_isolates_failing_sources(poll_db, tmp_path):
    server = SourceServer()
    base = "http://127.0.0.1:%d" % server.port
    sources = [
        {
            "name": "fx",
            "url": base + "/prices",
            "stream": "prices",
            "interval_s": 0.3,
            "id_field": "code",
            "items_field": "rates",
        },
        {"name": "broken", "url": base + "/broken", "stream": "prices", "interval_s": 0.1},
        {"name": "slow", "url": base + "/slow", "stream": "prices", "interval_s": 0.2},
    ]
    (tmp_path / "sources.json").write_text(json.dumps(sources))
    poller = DaemonProcess(
        "zero_sudo_daemons.poller",
        "--poller-http-port",
        "--db-name",
        poll_db,
        "--amqp-url",
        AMQP_URL,
        "--poller-sources",
        str(tmp_path / "sources.json"),
        "--poller-timeout-ms",
        "500",
    )
    try:
        wait_until(lambda: server.hits["prices_304"] >= 2, timeout=20, what="conditional polls answered 304")
        messages = landed_messages(poll_db)
        assert sorted(m.external_id for m in messages) == ["EUR", "USD"], "one publish per change, none per 304"
        server.version = 2
        changed = []
        wait_until(lambda: changed.extend(landed_messages(poll_db)) or changed, timeout=10, what="the changed answer published")
        assert {m.external_id: m.data["rate"] for m in changed}["EUR"] == 3.0
        wait_until(
            lambda: poller.metric('zero_sudo_poller_circuit_open{source="broken"}') == 1.0,
            timeout=30,
            what="the broken source's circuit open",
        )
        assert poller.metric('zero_sudo_poller_fetches_total{outcome="failed",source="slow"}') >= 1, "timeouts count as failures"
        assert poller.metric('zero_sudo_poller_rejected_items_total{source="fx"}') >= 1, "the item without a code"
        broken_hits = server.hits["broken"]
        time.sleep(1.0)
        assert server.hits["broken"] == broken_hits, "an open circuit does not call the source"
        poller.proc.terminate()
        assert poller.proc.wait(20) == 0
    finally:
        if poller.proc.poll() is None:
            poller.proc.kill()
