"""The zero_sudo_live addon's pure logic, without Odoo: which channels a gateway token grants,
how pushes are checked, and what a transaction's change events announce."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from zero_sudo_bus.protocol import Op

TOOLS = Path(__file__).resolve().parent.parent / "addons" / "zero_sudo_live" / "tools"


def _load_tools():
    """addons/zero_sudo_live/tools as a package of its own (its pure modules import no Odoo)."""
    spec = importlib.util.spec_from_file_location(
        "zero_sudo_live_tools", TOOLS / "__init__.py", submodule_search_locations=[str(TOOLS)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules["zero_sudo_live_tools"] = package
    spec.loader.exec_module(package)
    return package


_load_tools()
from zero_sudo_live_tools.changes import net_changes  # noqa: E402
from zero_sudo_live_tools.exceptions import PushRefused  # noqa: E402
from zero_sudo_live_tools.grants import MAX_GRANTED_CHANNELS, Refusal, parse_requested, plan_grants  # noqa: E402
from zero_sudo_live_tools.push import MAX_PUSH_BYTES, Level, check_user_ids, encode_push, notification  # noqa: E402

MODELS = {"res.partner", "sale.order", "hr.employee", "ir.cron"}
PUBLISHED = {"res.partner", "sale.order", "hr.employee", "ir.cron"}
READABLE = {"res.partner", "sale.order"}


def _plan(requested, uid=7, published=PUBLISHED):
    return plan_grants(uid, requested, published, MODELS.__contains__, READABLE.__contains__)


def test_the_default_grant_is_the_own_channel_and_the_readable_published_models():
    plan = _plan(None)
    assert plan.granted == ("user:7", "model:res.partner", "model:sale.order")
    assert plan.refused == ()


def test_asked_channels_are_granted_exactly_or_refused_with_their_reason():
    assert _plan(["model:res.partner", "user:7", "model:res.partner"]).granted == ("model:res.partner", "user:7")
    plan = _plan(
        ["model:res.partner", "model:ir.cron", "user:8", "model:x.y", "bogus", "model:sale.order"], published={"res.partner"}
    )
    assert plan.granted == ("model:res.partner",)
    assert plan.refused == (
        ("model:ir.cron", Refusal.NOT_READABLE),
        ("user:8", Refusal.FOREIGN_USER),
        ("model:x.y", Refusal.UNKNOWN_MODEL),
        ("bogus", Refusal.INVALID),
        ("model:sale.order", Refusal.NOT_PUBLISHED),
    )


def test_a_token_never_lists_more_channels_than_a_connection_may_hold():
    many = {"m%d.x" % n for n in range(150)}
    plan = plan_grants(7, None, many, lambda model: True, lambda model: True)
    assert len(plan.granted) == MAX_GRANTED_CHANNELS
    plan = plan_grants(7, sorted("model:" + m for m in many), many, lambda model: True, lambda model: True)
    assert len(plan.granted) == MAX_GRANTED_CHANNELS
    assert {reason for _name, reason in plan.refused} == {Refusal.TOO_MANY}


def test_the_requested_parameter_is_a_comma_separated_list():
    assert parse_requested(None) is None
    assert parse_requested(" model:a.b , user:3,,") == ["model:a.b", "user:3"]
    assert parse_requested("") == []


def test_pushes_are_json_objects_the_gateway_accepts():
    assert encode_push({"message": "é", "n": 1}) == '{"message":"é","n":1}'.encode()
    for bad, match in (
        ([1], "JSON object"),
        ({"x": float("nan")}, "must be JSON"),
        ({"x": {1, 2}}, "must be JSON"),
        ({"x": "y" * MAX_PUSH_BYTES}, "at most"),
    ):
        with pytest.raises(PushRefused, match=match):
            encode_push(bad)


def test_a_notification_payload_is_what_the_web_client_shows():
    assert notification("Done", title="Export", level=Level.SUCCESS, url="/web/content/3") == {
        "type": "notification",
        "message": "Done",
        "title": "Export",
        "level": "success",
        "sticky": False,
        "url": "/web/content/3",
    }
    with pytest.raises(PushRefused):
        notification("")
    with pytest.raises(ValueError):
        notification("x", level="loud")


def test_pushes_to_users_that_do_not_exist_are_refused_naming_them():
    assert check_user_ids([3, 2, 3], existing=[2, 3]) == [3, 2]
    with pytest.raises(PushRefused, match="no such user: 9, 11"):
        check_user_ids([2, 11, 9], existing=[2])
    with pytest.raises(PushRefused, match="positive integers"):
        check_user_ids([2, "2", 0, True], existing=[2])


def test_a_transaction_announces_what_others_can_notice():
    pending = {
        ("res.partner", Op.CREATE): dict.fromkeys([5, 6]),
        ("res.partner", Op.WRITE): dict.fromkeys([1, 5, 2, 6, 3]),  # 5, 6: recomputed after their INSERT
        ("res.partner", Op.UNLINK): dict.fromkeys([3, 6]),  # 6 created and deleted here
        ("sale.order", Op.WRITE): dict.fromkeys([9]),
    }
    assert net_changes(pending) == {
        ("res.partner", Op.CREATE): [5],
        ("res.partner", Op.WRITE): [1, 2],
        ("res.partner", Op.UNLINK): [3],
        ("sale.order", Op.WRITE): [9],
    }
    assert net_changes({("a.b", Op.CREATE): {1: None}, ("a.b", Op.UNLINK): {1: None}}) == {}
