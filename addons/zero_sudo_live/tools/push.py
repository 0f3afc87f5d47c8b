"""Payloads pushed to users, checked and encoded without any I/O.

A push is a JSON object that Odoo publishes to the Redis channel
``zero_sudo_bus.protocol.user_channel(db, uid)``; every gateway delivers it verbatim to that
user's ``user:<uid>`` subscribers. The gateway drops a message that is not a JSON object or
is larger than ``zero_sudo_bus.channels.MAX_USER_MESSAGE_BYTES``, so such a payload is refused here, at
the call, where the programmer sees the error, instead of vanishing silently later.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from typing import Any

from zero_sudo_bus.channels import MAX_USER_MESSAGE_BYTES

from .exceptions import PushRefused

MAX_PUSH_BYTES = MAX_USER_MESSAGE_BYTES  # the gateway's bound on one user message


class PushType(enum.StrEnum):
    """What a push is for (its ``type``): the web client acts on these and hands every push
    to the ``user`` listeners of its ``zero_sudo_live`` service."""

    NOTIFICATION = "notification"  # shown through Odoo's notification service
    GRANTS_CHANGED = "zero_sudo_live.grants_changed"  # the published models changed: reconnect for new grants


class Level(enum.StrEnum):
    """How the web client shows a notification (Odoo's notification service types)."""

    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    DANGER = "danger"


def encode_push(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON of ``payload``; :class:`PushRefused` when the gateway would drop it."""
    if not isinstance(payload, Mapping):
        raise PushRefused("a push payload must be a JSON object (a dict), got %s" % type(payload).__name__)
    try:
        data = json.dumps(dict(payload), separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise PushRefused("a push payload must be JSON: %s" % exc) from None
    if len(data) > MAX_PUSH_BYTES:
        raise PushRefused("a push payload is at most %d bytes, this one is %d" % (MAX_PUSH_BYTES, len(data)))
    return data


def notification(
    message: str,
    title: str | None = None,
    level: Level = Level.INFO,
    sticky: bool = False,
    url: str | None = None,
    url_label: str | None = None,
) -> dict:
    """The payload the web client shows through Odoo's notification service.

    ``url`` adds a button (labelled ``url_label``, "Open" by default) that opens it: a
    download, a record; ``sticky`` keeps the notification until closed.
    """
    if not isinstance(message, str) or not message:
        raise PushRefused("a notification needs a message")
    payload: dict[str, Any] = {
        "type": PushType.NOTIFICATION.value,
        "message": message,
        "level": Level(level).value,
        "sticky": bool(sticky),
    }
    if title:
        payload["title"] = title
    if url:
        payload["url"] = url
        if url_label:
            payload["url_label"] = url_label
    return payload


def grants_changed() -> dict:
    """The payload telling a web client that the channels it may have changed (an admin
    published or unpublished a model): it renews its grants and reconnects."""
    return {"type": PushType.GRANTS_CHANGED.value}


def check_user_ids(requested: Iterable[Any], existing: Iterable[int]) -> list[int]:
    """The requested user IDs, deduplicated; :class:`PushRefused` naming any that does not exist."""
    ids = list(dict.fromkeys(requested))
    bad = [uid for uid in ids if type(uid) is not int or uid < 1]
    if bad:
        raise PushRefused("user IDs must be positive integers, got %r" % (bad,))
    missing = sorted(set(ids) - set(existing))
    if missing:
        raise PushRefused("no such user: %s" % ", ".join(map(str, missing)))
    return ids
