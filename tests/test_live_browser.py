"""Live Odoo, end to end, in real Chromium (Debian's package, driven by Playwright): an ORM write
→ NOTIFY → relay → Redis → gateway → nginx → another user's browser → Odoo RPC.

Everything is real and on loopback: an Odoo 18 server in prefork mode (``--workers 2``) on a
fresh database with zero_sudo_live and zero_sudo_export, the relay, the gateway, and Debian's
nginx running the operators' ``docker/nginx.conf`` (Odoo, its /websocket and the gateway's /ws
under one origin). Two users in two browser contexts.

Here rather than in the addon's pytest-odoo suite: an HttpCase runs Odoo threaded, inside the
test's own transaction, where nothing commits and no NOTIFY ever leaves; the chain needs real
commits, separate server processes and the daemons, which this suite already starts.
"""

from __future__ import annotations

import json
import time

import pytest
from browser import chromium, log_in, screenshot
from live_stack import TOKEN_SECRET, JsonRpc, LiveStack, find_odoo
from playwright.sync_api import Page, expect
from websockets.sync.client import connect

from conftest import REDIS_URL
from zero_sudo_bus.tokens import sign_token

ODOO = find_odoo()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(ODOO is None, reason="no Odoo 18 found (ODOO_PATH, see README 'Odoo suites'): live browser test not run"),
]

# Safety nets for what a user waits to see, never speed assertions (speed: make bench-live).
SHOWS_UP_MS = 20_000

USERS = {"alice": "alice-pw-1", "bob": "bob-pw-1"}
PARTNERS = "/odoo/action-base.action_partner_form"
TAGS = "/odoo/action-base.action_partner_category_form"
NAME_FIELD = ".o_field_widget[name=name] textarea"  # a partner's name is a one-line text widget


@pytest.fixture(scope="module")
def stack():
    live = LiveStack(ODOO, ["zero_sudo_live", "zero_sudo_export"], REDIS_URL).start()
    try:
        admin = JsonRpc(live.origin, live.odoo.db, "admin", "admin")
        groups = [
            admin.call_kw("ir.model.data", "check_object_reference", ["base", xmlid])[1]
            for xmlid in ("group_user", "group_partner_manager")
        ]
        for login, password in USERS.items():
            admin.call_kw(
                "res.users",
                "create",
                [{"name": login.title(), "login": login, "password": password, "groups_id": [(6, 0, groups)]}],
            )
        for model in ("res.partner", "ir.cron"):  # ir.cron: published, but no internal user may read it
            admin.call_kw("ir.model", "write", [_model_id(admin, model), {"zero_sudo_live_publish": True}])
        live.admin = admin
        yield live
    finally:
        live.stop()


def _model_id(rpc: JsonRpc, model: str) -> list[int]:
    return rpc.call_kw("ir.model", "search", [[["model", "=", model]]])


@pytest.fixture(scope="module")
def browser():
    with chromium() as running:
        yield running


def _log_in(browser, stack, login: str) -> Page:
    return log_in(browser, stack.origin, login, USERS.get(login, "admin"))


@pytest.fixture
def alice(browser, stack):
    page = _log_in(browser, stack, "alice")
    yield page
    page.context.close()


@pytest.fixture
def bob(browser, stack):
    page = _log_in(browser, stack, "bob")
    yield page
    page.context.close()


def _open(page: Page, stack, path: str, selector: str) -> None:
    """Open a view and wait until its tab follows the gateway."""
    page.goto(stack.origin + path)
    page.wait_for_selector(selector)
    page.wait_for_function("() => odoo.__WOWL_DEBUG__.root.env.services.zero_sudo_live.status === 'connected'")
    page.evaluate("() => { window.__not_reloaded = true; }")  # gone if the page reloads


def _not_reloaded(page: Page) -> bool:
    return page.evaluate("() => window.__not_reloaded === true")


def test_a_rename_in_one_users_form_shows_in_another_users_list_and_never_overwrites_unsaved_edits(stack, alice, bob):
    partner_id = stack.admin.call_kw("res.partner", "create", [{"name": "Live Partner"}])
    _open(bob, stack, PARTNERS + "?view_type=list", ".o_list_view")
    row = bob.locator(".o_data_row", has_text="Live Partner")
    row.locator(".o_list_record_selector input").check()  # a selection, to be kept

    _open(alice, stack, "%s/%d" % (PARTNERS, partner_id), ".o_form_view")
    alice.locator(NAME_FIELD).fill("Live Partner renamed by Alice")
    alice.locator(".o_form_button_save").click()
    expect(alice.locator(".o_form_button_save")).to_be_hidden()

    renamed = bob.locator(".o_data_row", has_text="Live Partner renamed by Alice")
    expect(renamed).to_be_visible(timeout=SHOWS_UP_MS)
    expect(renamed.locator(".o_list_record_selector input")).to_be_checked()
    assert _not_reloaded(bob), "Bob's page was reloaded"
    screenshot(bob, "1_bob_list_after_alice_renamed")

    # Bob edits the partner, Alice renames it again before Bob saves.
    _open(bob, stack, "%s/%d" % (PARTNERS, partner_id), ".o_form_view")
    bob.locator(".o_field_widget[name=email] input").fill("bob@example.com")
    alice.locator(NAME_FIELD).fill("Live Partner, second name")
    alice.locator(".o_form_button_save").click()

    notice = bob.locator(".o_notification.o_zero_sudo_live_notice")
    expect(notice).to_contain_text("Someone else changed this record", timeout=SHOWS_UP_MS)
    expect(notice.get_by_role("button", name="Reload")).to_be_visible()
    expect(bob.locator(".o_field_widget[name=email] input")).to_have_value("bob@example.com")
    expect(bob.locator(NAME_FIELD)).to_have_value("Live Partner renamed by Alice")
    screenshot(bob, "2_bob_form_with_unsaved_edits_and_the_notice")

    # Reload: Bob now sees Alice's name, his unsaved edit is gone (he asked for it).
    notice.get_by_role("button", name="Reload").click()
    expect(bob.locator(NAME_FIELD)).to_have_value("Live Partner, second name", timeout=SHOWS_UP_MS)
    expect(bob.locator(".o_field_widget[name=email] input")).to_have_value("")
    expect(notice).to_be_hidden()

    # A form with nothing unsaved just shows the new values; a deleted record says so.
    stack.admin.call_kw("res.partner", "write", [[partner_id], {"phone": "+32 2 555 01 01"}])
    expect(bob.locator(".o_field_widget[name=phone] input")).to_have_value("+32 2 555 01 01", timeout=SHOWS_UP_MS)
    stack.admin.call_kw("res.partner", "unlink", [[partner_id]])
    expect(bob.locator(".o_notification.o_zero_sudo_live_notice")).to_contain_text("deleted by someone else", timeout=SHOWS_UP_MS)
    assert _not_reloaded(bob)


def test_what_changed_while_the_gateway_was_down_shows_once_it_is_back(stack, bob):
    """Events committed while a tab was disconnected are lost; the reconnection resyncs it."""
    partner_id = stack.admin.call_kw("res.partner", "create", [{"name": "Changed while away"}])
    _open(bob, stack, PARTNERS + "?view_type=list", ".o_list_view")
    expect(bob.locator(".o_data_row", has_text="Changed while away")).to_be_visible()
    stack.stop_gateway()
    bob.wait_for_function("() => odoo.__WOWL_DEBUG__.root.env.services.zero_sudo_live.status !== 'connected'")
    stack.admin.call_kw("res.partner", "write", [[partner_id], {"name": "Renamed while Bob was away"}])
    stack.start_gateway()
    expect(bob.locator(".o_data_row", has_text="Renamed while Bob was away")).to_be_visible(timeout=SHOWS_UP_MS + 30_000)
    assert _not_reloaded(bob)


def test_a_kanban_shows_a_record_created_by_someone_else(stack, bob):
    _open(bob, stack, PARTNERS, ".o_kanban_view")
    stack.admin.call_kw("res.partner", "create", [{"name": "Card created by the admin"}])
    expect(bob.locator(".o_kanban_record", has_text="Card created by the admin")).to_be_visible(timeout=SHOWS_UP_MS)
    assert _not_reloaded(bob)


def test_a_user_without_read_access_to_a_model_is_refused_its_channel(stack, bob):
    _open(bob, stack, PARTNERS, ".o_action_manager")
    refused = bob.evaluate(
        """async () => {
            const response = await fetch("/my/gateway/token?channels=model:ir.cron");
            return {status: response.status, body: await response.json()};
        }"""
    )
    assert refused["status"] == 403
    assert refused["body"]["refused"] == [{"ch": "model:ir.cron", "reason": "not_readable"}]

    # Bob's own token, sent to the gateway from his page (another host name: no cookie goes).
    hello, subscribed = _subscribe_from_page(bob, "ws://localhost:%d/ws" % stack.nginx.port, with_token=True)
    assert (hello["t"], hello["auth"]) == ("hello", "token")
    assert "model:ir.cron" not in hello["grants"]
    assert subscribed["ch"] == ["model:res.partner"]
    assert subscribed["refused"] == [{"ch": "model:ir.cron", "reason": "forbidden"}]

    # Bob's session cookie, on Odoo's own origin (what his web client does): the same refusal.
    hello, subscribed = _subscribe_from_page(bob, stack.origin.replace("http", "ws", 1) + "/ws", with_token=False)
    assert (hello["t"], hello["auth"]) == ("hello", "session")
    assert "model:ir.cron" not in hello["grants"]
    assert subscribed["ch"] == ["model:res.partner"]
    assert subscribed["refused"] == [{"ch": "model:ir.cron", "reason": "forbidden"}]


def _subscribe_from_page(page: Page, url: str, with_token: bool) -> tuple[dict, dict]:
    """From ``page``, open a WebSocket to the gateway at ``url`` (authenticated by a token from
    Odoo, or by whatever cookie the browser sends) and ask for a readable and an unreadable
    model's channels: the gateway's ``hello`` and ``subscribed`` answers."""
    answers = page.evaluate(
        """async ([url, withToken]) => {
            const token = withToken ? await (await fetch("/my/gateway/token")).text() : null;
            const socket = new WebSocket(url);
            const answers = [];
            await new Promise((resolve, reject) => {
                socket.onerror = reject;
                socket.onmessage = (event) => {
                    const message = JSON.parse(event.data);
                    answers.push(message);
                    if (message.t === "hello") {
                        socket.send(JSON.stringify({op: "sub", ch: ["model:ir.cron", "model:res.partner"]}));
                    } else if (message.t === "subscribed") {
                        resolve();
                    }
                };
                socket.onopen = () => token && socket.send(JSON.stringify({op: "auth", token}));
            });
            socket.close();
            return answers;
        }""",
        [url, with_token],
    )
    return answers[0], answers[-1]


def test_a_finished_export_notifies_its_user_only(stack, alice, bob):
    _open(alice, stack, PARTNERS, ".o_action_manager")
    _open(bob, stack, PARTNERS, ".o_action_manager")
    bob.evaluate(
        """() => {
            window.__pushes = [];
            odoo.__WOWL_DEBUG__.root.env.services.zero_sudo_live.listen("user", (data) => window.__pushes.push(data));
        }"""
    )
    export = """async (model) => {
        const form = new FormData();
        form.append("fields", "name");
        form.append("csrf_token", odoo.csrf_token);
        const response = await fetch(`/zero_sudo/export/${model}/attachment`, {method: "POST", body: form});
        return response.status;
    }"""
    assert alice.evaluate(export, "res.partner") == 202
    push = alice.locator(".o_notification.o_zero_sudo_live_push", has_text="Export res.partner is done.")
    expect(push).to_be_visible(timeout=SHOWS_UP_MS)
    expect(push.get_by_role("button", name="Download")).to_be_visible()
    screenshot(alice, "3_alice_export_done")

    # Bob's own export afterwards: pushes reach a tab in order, so once his arrives, Alice's
    # (published earlier) would have arrived before it had it been sent to him.
    assert bob.evaluate(export, "res.partner.category") == 202
    expect(bob.locator(".o_notification.o_zero_sudo_live_push", has_text="Export res.partner.category is done.")).to_be_visible(
        timeout=SHOWS_UP_MS
    )
    pushes = bob.evaluate("() => window.__pushes")
    assert [push["message"] for push in pushes] == ["Export res.partner.category is done."]


def test_a_model_published_in_the_ui_goes_live_without_a_restart(stack, browser, bob):
    admin = _log_in(browser, stack, "admin")
    try:
        _open(bob, stack, TAGS, ".o_list_view")
        stack.admin.call_kw("res.partner.category", "create", [{"name": "Tag while unpublished"}])
        time.sleep(1)  # give an (unwanted) event time to arrive: the tag must not show by itself
        expect(bob.locator(".o_data_row", has_text="Tag while unpublished")).to_have_count(0)

        model_id = _model_id(stack.admin, "res.partner.category")[0]
        admin.goto("%s/odoo/action-base.action_model_model/%d?debug=1" % (stack.origin, model_id))
        switch = admin.locator(".o_field_widget[name=zero_sudo_live_publish] input")
        switch.check()
        screenshot(admin, "4_admin_publishes_contact_tags")
        admin.locator(".o_form_button_save").click()
        expect(admin.locator(".o_form_button_save")).to_be_hidden()

        # Every Odoo worker publishes from its next request on: write through both of them.
        for number in (1, 2, 3, 4):
            stack.admin.call_kw("res.partner.category", "create", [{"name": "Live tag %d" % number}])
        for number in (1, 2, 3, 4):
            expect(bob.locator(".o_data_row", has_text="Live tag %d" % number)).to_be_visible(timeout=SHOWS_UP_MS)
        expect(bob.locator(".o_data_row", has_text="Tag while unpublished")).to_be_visible()
        assert _not_reloaded(bob)
        screenshot(bob, "5_bob_tags_list_live")
    finally:
        admin.context.close()


def _gateway_answer(stack, token: str) -> tuple[int, str]:
    """What the gateway behind nginx answers a token: (close code, reason) or (0, hello)."""
    with connect("ws://127.0.0.1:%d/ws" % stack.nginx.port, origin=stack.origin, open_timeout=10) as socket:
        socket.send(json.dumps({"op": "auth", "token": token}))
        try:
            message = json.loads(socket.recv(10))
        except Exception:  # noqa: BLE001 (closed: the close frame says why)
            return socket.close_code, socket.close_reason
        return 0, message["t"]


def test_forged_expired_and_foreign_database_tokens_are_refused(stack):
    rpc = JsonRpc(stack.origin, stack.odoo.db, "bob", USERS["bob"])
    status, token = rpc.get("/my/gateway/token")
    assert status == 200
    assert _gateway_answer(stack, token) == (0, "hello")

    version, claims, signature = token.split(".")
    forged_claims = claims[:-2] + ("AA" if claims[-2:] != "AA" else "BB")
    now = int(time.time())
    refused = {
        "forged": ".".join((version, forged_claims, signature)),
        "expired": sign_token(TOKEN_SECRET, rpc.uid, stack.odoo.db, ["model:res.partner"], now - 1),
        "foreign database": sign_token(TOKEN_SECRET, rpc.uid, "another_db", ["model:res.partner"], now + 60),
        "another secret": sign_token("not-the-secret", rpc.uid, stack.odoo.db, ["model:res.partner"], now + 60),
    }
    answers = {name: _gateway_answer(stack, token) for name, token in refused.items()}
    assert answers == {
        "forged": (1008, "authentication failed: bad_signature"),
        "expired": (1008, "authentication failed: expired"),
        "foreign database": (1008, "authentication failed: wrong_db"),
        "another secret": (1008, "authentication failed: bad_signature"),
    }
