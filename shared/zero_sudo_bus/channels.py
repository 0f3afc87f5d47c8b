"""The channels a browser subscribes to at the gateway, as Odoo grants them and the gateway
checks them: one definition for both sides.

* ``model:<odoo model>``: ID-only change events of that model (the relay's messages);
* ``user:<uid>``: JSON payloads Odoo pushes to that user (``protocol.user_channel`` in Redis).

A token lists the channels it grants; :data:`ALL_MODELS` stands for every model channel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MODEL_PREFIX = "model:"
USER_PREFIX = "user:"
ALL_MODELS = "model:*"  # a token grant covering every model channel

# Odoo model names: dotted lower-case identifiers (res.partner, sale.order.line). 128 is
# far above any real name and keeps a channel name a bounded key in the gateway's index.
_MODEL_NAME = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*")
MAX_MODEL_NAME = 128
_UID = re.compile(r"[1-9][0-9]{0,18}")

# A page follows a handful of models; 100 channels per connection bounds the index entries
# one client can create at the gateway, and Odoo never grants a token more than that.
MAX_SUBSCRIPTIONS = 100

# Odoo pushes user notifications as small JSON objects; the gateway drops anything larger,
# so that one message cannot make every recipient's buffer overflow, and Odoo refuses to
# send it in the first place.
MAX_USER_MESSAGE_BYTES = 65_536


@dataclass(frozen=True, slots=True)
class Channel:
    """A parsed channel name: ``model:<odoo model>`` or ``user:<uid>``."""

    name: str
    model: str | None = None
    uid: int | None = None


def parse_channel(name: object) -> Channel | None:
    """The channel ``name`` designates, or None when it is not a valid channel name."""
    if type(name) is not str:
        return None
    if name.startswith(MODEL_PREFIX):
        model = name[len(MODEL_PREFIX) :]
        if len(model) <= MAX_MODEL_NAME and _MODEL_NAME.fullmatch(model):
            return Channel(name, model=model)
    elif name.startswith(USER_PREFIX):
        uid = name[len(USER_PREFIX) :]
        if _UID.fullmatch(uid):
            return Channel(name, uid=int(uid))
    return None


def model_channel(model: str) -> str:
    """The channel of ``model``'s change events."""
    return MODEL_PREFIX + model


def user_channel_name(uid: int) -> str:
    """The channel of the payloads pushed to user ``uid``."""
    return "%s%d" % (USER_PREFIX, uid)
