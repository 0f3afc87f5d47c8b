"""The browser client in a real headless Chromium (Debian's package, driven by Playwright):
the demo page connects, a NOTIFY committed in PostgreSQL shows up on it, and when the gateway
is restarted under it the page reconnects, resyncs and keeps receiving."""

import gateway_fixtures
import pytest
from browser import chromium
from gateway_fixtures import token_for
from playwright.sync_api import expect

from conftest import notify
from zero_sudo_bus.protocol import Op, encode_notify_payloads

start_gateway = gateway_fixtures.start_gateway  # the fixture, for this module's tests


@pytest.fixture
def page():
    with chromium() as browser:
        yield browser.new_page()


def test_demo_page_shows_notify_events_and_survives_a_gateway_restart(pg_db, start_relay, start_gateway, page):
    relay = start_relay(pg_db)
    relay.wait_role("active")
    gateway = start_gateway(pg_db)
    token = token_for(pg_db, ["model:res.partner"])
    page.goto("%s/demo.html?channels=model:res.partner#token=%s" % (gateway.origin, token))
    expect(page.locator("#status")).to_have_text("connected", timeout=15_000)
    expect(page.locator("#resyncs")).to_have_text("0")

    (payload,) = encode_notify_payloads("res.partner", Op.WRITE, [11, 12])
    notify(pg_db, payload)
    expect(page.locator("#events li.event").first).to_contain_text("model:res.partner: write res.partner [11,12]", timeout=15_000)

    assert gateway.stop() == 0
    expect(page.locator("#status")).not_to_have_text("connected", timeout=15_000)
    restarted = start_gateway(pg_db, port=gateway.port)
    expect(page.locator("#status")).to_have_text("connected", timeout=30_000)
    expect(page.locator("#events li.resync").first).to_contain_text("resync (reconnect)", timeout=15_000)
    assert int(page.locator("#resyncs").text_content()) >= 1

    (payload,) = encode_notify_payloads("res.partner", Op.CREATE, [13])
    notify(pg_db, payload)
    expect(page.locator("#events li.event").first).to_contain_text("create res.partner [13]", timeout=15_000)
    assert restarted.metric("zero_sudo_gateway_connections") == 1
