"""zero_sudo_bus.channels: the gateway channel grammar (model and user channels)."""

import pytest

from zero_sudo_bus.channels import parse_channel


@pytest.mark.parametrize(
    ("name", "model", "uid"),
    [("model:res.partner", "res.partner", None), ("model:sale.order.line", "sale.order.line", None), ("user:42", None, 42)],
)
def test_valid_channel_names(name, model, uid):
    channel = parse_channel(name)
    assert (channel.name, channel.model, channel.uid) == (name, model, uid)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "model:",
        "model:Res.Partner",
        "model:res..partner",
        "model:*",
        "model:" + "a" * 129,
        "user:0",
        "user:07",
        "user:x",
        "users:1",
        5,
    ],
)
def test_invalid_channel_names(name):
    assert parse_channel(name) is None
