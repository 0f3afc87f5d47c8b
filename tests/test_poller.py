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


# An answer of about 1.28 MB (200 items of 6.4 KB), the size that failed every poll when the
# poller read only what was buffered of a body.
BIG_ITEMS = 200
BIG_BODY = json.dumps([{"id": "item-%d" % i, "pad": "x" * 6400} for i in range(BIG_ITEMS)]).encode()
BIG_PIECES = 10  # sent apart, as a real server or network hands a large body over


class AnswerServer:
    """Serves the answers these tests need on 127.0.0.1, counting the ones served in full."""

    def __init__(self):
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.served = {"big": 0, "deep": 0, "endless": 0, "ticker": 0, "hourly": 0}
        self.tick = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        self._ready.wait(10)

    async def big(self, request):
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        step = len(BIG_BODY) // BIG_PIECES + 1
        try:
            for start in range(0, len(BIG_BODY), step):
                await response.write(BIG_BODY[start : start + step])
                await asyncio.sleep(0.02)
            await response.write_eof()
        except ConnectionError:  # the poller gave up on it: the test reads its metrics
            return response
        self.served["big"] += 1
        return response

    async def endless(self, request):
        """More than the poller's limit, without a Content-Length: it must stop reading."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        self.served["endless"] += 1
        try:
            await response.write(b"[")
            for _ in range(40):  # 40 MiB: more than MAX_ANSWER_BYTES, a bounded test still
                await response.write(b" " * (1024 * 1024))
        except ConnectionError:
            pass
        return response

    async def deep(self, _request):
        self.served["deep"] += 1
        return web.Response(body=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")

    async def ticker(self, _request):
        self.served["ticker"] += 1
        self.tick += 1
        return web.json_response([{"id": "tick-%d" % self.tick}])

    async def hourly(self, _request):
        self.served["hourly"] += 1
        return web.json_response([{"id": "hour-1"}])

    def _serve(self):
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        for name in self.served:
            app.router.add_get("/" + name, getattr(self, name))
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()


def start_poller(db, tmp_path, sources, *args):
    (tmp_path / "sources.json").write_text(json.dumps(sources))
    return DaemonProcess(
        "zero_sudo_daemons.poller",
        "--poller-http-port",
        "--db-name",
        db,
        "--amqp-url",
        AMQP_URL,
        "--poller-sources",
        str(tmp_path / "sources.json"),
        *args,
    )


def landed_ids(db):
    return asyncio.run(drain(landing_queue(db), lambda message: decode_ingest_message(message.body).external_id))


def test_a_large_answer_sent_in_pieces_lands_on_every_poll(poll_db, tmp_path):
    server = AnswerServer()
    sources = [
        {"name": "big", "url": server.base + "/big", "stream": "prices", "interval_s": 0.3},
        {"name": "endless", "url": server.base + "/endless", "stream": "prices", "interval_s": 5},
    ]
    poller = start_poller(poll_db, tmp_path, sources)
    try:

        def big_polls():
            return sum(
                poller.metric('zero_sudo_poller_fetches_total{outcome="%s",source="big"}' % o) for o in ("fetched", "failed")
            )

        wait_until(lambda: big_polls() >= 3, timeout=15, what="three polls of the large answer (log: %s)" % poller.output[-5:])
        assert poller.metric('zero_sudo_poller_fetches_total{outcome="failed",source="big"}') == 0, "".join(poller.output[-5:])
        assert set(landed_ids(poll_db)) == {"item-%d" % i for i in range(BIG_ITEMS)}
        wait_until(
            lambda: poller.metric('zero_sudo_poller_fetches_total{outcome="failed",source="endless"}') >= 1,
            timeout=10,
            what="the endless answer refused",
        )
        assert any("larger than" in line and "endless" in line for line in poller.output), "".join(poller.output[-5:])
        assert poller.proc.poll() is None
    finally:
        poller.stop()


def test_a_deeply_nested_answer_fails_its_source_only(poll_db, tmp_path):
    server = AnswerServer()
    sources = [
        {"name": "deep", "url": server.base + "/deep", "stream": "prices", "interval_s": 0.2},
        {"name": "ticker", "url": server.base + "/ticker", "stream": "prices", "interval_s": 0.2},
    ]
    poller = start_poller(poll_db, tmp_path, sources)
    try:
        wait_until(lambda: server.served["deep"] >= 3 or poller.proc.poll() is not None, timeout=15, what="three deep answers")
        assert poller.proc.poll() is None, "the poller exited: %s" % "".join(poller.output[-20:])
        landed_ids(poll_db)  # what the ticker published so far
        wait_until(lambda: landed_ids(poll_db), timeout=10, what="the ticker still published (log: %s)" % poller.output[-5:])
        assert poller.proc.poll() is None, "".join(poller.output[-20:])
        assert poller.metric('zero_sudo_poller_fetches_total{outcome="failed",source="deep"}') >= 1
        assert poller.role() == "polling"
    finally:
        poller.stop()


def test_a_source_polled_hourly_starts(poll_db, tmp_path):
    server = AnswerServer()
    sources = [{"name": "hourly", "url": server.base + "/hourly", "stream": "prices", "interval_s": 3600}]
    poller = start_poller(poll_db, tmp_path, sources)
    try:
        wait_until(lambda: poller.role() == "polling" or poller.proc.poll() is not None, timeout=15, what="polling")
        assert poller.get("/healthz")[0] == 200, "the poller did not start: %s" % "".join(poller.output[-20:])
        wait_until(lambda: landed_ids(poll_db), timeout=10, what="the first poll published")
    finally:
        poller.stop()
