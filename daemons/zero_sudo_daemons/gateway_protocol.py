"""The gateway's client protocol, without any I/O: parsing, authorization, rate limits, encoding.

Everything here is a plain function or a small class that the I/O layer (``gateway.py``)
calls, so every rule of the protocol (docs/gateway.md) is tested without a socket. A client
command is one JSON object per text frame::

    {"op": "auth", "token": "v1...."}
    {"op": "sub", "ch": ["model:res.partner", "user:7"], "id": 1}
    {"op": "unsub", "ch": ["model:res.partner"], "id": 2}

and the server answers with ``hello``, ``subscribed``, ``unsubscribed``, ``error``, and
pushes ``event`` and ``resync`` messages (see :func:`encode_event` and friends).
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

from websockets.frames import CloseCode

from zero_sudo_bus.channels import ALL_MODELS, MAX_MODEL_NAME, MAX_SUBSCRIPTIONS, Channel, parse_channel, user_channel_name
from zero_sudo_bus.protocol import Op

# Correlation ids are echoed back verbatim; they must stay small and JSON-scalar.
MAX_COMMAND_ID_CHARS = 64

_OP_NAMES = {Op.CREATE: "create", Op.WRITE: "write", Op.UNLINK: "unlink"}


class ProtocolViolation(Exception):
    """A frame the protocol does not allow: the connection is closed with ``code``.

    ``code`` is ``POLICY_VIOLATION`` (1008) for a malformed or forbidden command, or
    ``UNSUPPORTED_DATA`` (1003) for a binary frame: a data type the gateway cannot accept.
    """

    def __init__(self, reason: str, code: CloseCode = CloseCode.POLICY_VIOLATION) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


# -- channels ------------------------------------------------------------------------------


class AuthMethod(enum.StrEnum):
    """How a client proved who it is (the ``auth`` of the ``hello`` message)."""

    SESSION = "session"  # the Odoo ``session_id`` cookie of a logged-in session
    TOKEN = "token"  # an HMAC token Odoo minted, sent in the first command


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is on the other end, and what they may subscribe to.

    ``grants`` is the exact set the credential lists: the channels Odoo stored in the session
    (``zero_sudo_bus.sessions.granted_channels``) or those a token signs (``model:*``
    standing for every model channel). Either way Odoo decided them, with its access rules.
    """

    uid: int
    db: str
    method: AuthMethod
    grants: frozenset[str]

    def may_subscribe(self, channel: Channel) -> bool:
        """Whether this principal may receive ``channel``'s events."""
        if channel.uid is not None and channel.uid != self.uid:
            return False
        return channel.name in self.grants or (channel.model is not None and ALL_MODELS in self.grants)


def session_id_from_cookie(header: str | None) -> str | None:
    """The ``session_id`` of a Cookie header (Odoo's session cookie), or None."""
    if not header:
        return None
    try:
        morsel = SimpleCookie(header).get("session_id")
    except CookieError:
        return None
    return morsel.value if morsel is not None and morsel.value else None


# -- commands ------------------------------------------------------------------------------


class CommandOp(enum.StrEnum):
    """What a client command asks for (its ``op``); nothing else is a command."""

    AUTH = "auth"  # authenticate with a token
    SUB = "sub"  # subscribe to channels
    UNSUB = "unsub"  # unsubscribe from channels


_COMMAND_OPS = {op.value: op for op in CommandOp}


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed client command; ``channels`` only for sub/unsub, ``token`` only for auth."""

    op: CommandOp
    id: int | str | None = None
    channels: tuple[str, ...] = ()
    token: str = ""


def parse_command(frame: str | bytes) -> Command:
    """Parse one frame into a :class:`Command`; :class:`ProtocolViolation` when malformed.

    Binary frames are refused (the protocol is JSON text). A channel name that is merely
    unknown is not a violation: it is refused by :func:`plan_subscribe` with an error reply.
    """
    if not isinstance(frame, str):
        raise ProtocolViolation("binary frames are not accepted", CloseCode.UNSUPPORTED_DATA)
    try:
        body = json.loads(frame)
    except (ValueError, RecursionError):
        raise ProtocolViolation("malformed command: not JSON") from None
    if type(body) is not dict:
        raise ProtocolViolation("malformed command: not an object")
    command_id = body.get("id")
    if command_id is not None and not (
        type(command_id) is int or (type(command_id) is str and len(command_id) <= MAX_COMMAND_ID_CHARS)
    ):
        raise ProtocolViolation("malformed command: bad id")
    raw_op = body.get("op")
    op = _COMMAND_OPS.get(raw_op) if type(raw_op) is str else None  # a list or dict is no key
    if op is None:
        raise ProtocolViolation("malformed command: unknown op")
    if op is CommandOp.AUTH:
        token = body.get("token")
        if type(token) is not str:
            raise ProtocolViolation("malformed command: auth needs a token")
        return Command(op, command_id, token=token)
    channels = body.get("ch")
    if type(channels) is str:
        channels = [channels]
    if type(channels) is not list or not channels or not all(type(c) is str for c in channels):
        raise ProtocolViolation("malformed command: ch must be a channel name or a list of them")
    if len(channels) > MAX_SUBSCRIPTIONS:
        raise ProtocolViolation("malformed command: more than %d channels" % MAX_SUBSCRIPTIONS)
    return Command(op, command_id, channels=tuple(dict.fromkeys(channels)))


class SubscribeRefusal(enum.StrEnum):
    """Why a ``sub`` command's channel is refused (the ``reason`` of the ``subscribed`` reply)."""

    INVALID = "invalid"  # not a channel name
    FORBIDDEN = "forbidden"  # not granted by the session or token
    LIMIT = "limit"  # the connection holds MAX_SUBSCRIPTIONS channels already


@dataclass(frozen=True, slots=True)
class SubscribePlan:
    """What a ``sub`` command does: channels to add, and refusals with their reason."""

    accepted: tuple[Channel, ...]
    refused: tuple[tuple[str, SubscribeRefusal], ...]


def plan_subscribe(principal: Principal, current: Iterable[str], names: Sequence[str]) -> SubscribePlan:
    """Decide a ``sub`` command for a connection already subscribed to ``current``."""
    subscribed = set(current)
    accepted: list[Channel] = []
    refused: list[tuple[str, SubscribeRefusal]] = []
    for name in names:
        channel = parse_channel(name)
        if channel is None:
            refused.append((name[:MAX_MODEL_NAME], SubscribeRefusal.INVALID))
        elif not principal.may_subscribe(channel):
            refused.append((name, SubscribeRefusal.FORBIDDEN))
        elif name in subscribed:
            accepted.append(channel)
        elif len(subscribed) >= MAX_SUBSCRIPTIONS:
            refused.append((name, SubscribeRefusal.LIMIT))
        else:
            subscribed.add(name)
            accepted.append(channel)
    return SubscribePlan(tuple(accepted), tuple(refused))


# -- rate limiting ---------------------------------------------------------------------------


class TokenBucket:
    """``rate`` commands per second on average, bursts of up to ``burst``.

    Refilled lazily from the clock on each :meth:`take`, so an idle connection costs nothing.
    """

    __slots__ = ("rate", "burst", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float | None = None) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.updated = time.monotonic() if now is None else now

    def take(self, now: float | None = None) -> bool:
        """Spend one token; False when the bucket is empty (the command is over the limit)."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


# -- origins ---------------------------------------------------------------------------------


def parse_origins(setting: str) -> frozenset[str]:
    """The allow-list of ``gateway_allowed_origins``: comma-separated, ``*`` allows any."""
    return frozenset(origin.strip().rstrip("/").lower() for origin in setting.split(",") if origin.strip())


def origin_allowed(origin: str | None, allowed: frozenset[str]) -> bool:
    """Whether a handshake with this ``Origin`` header may proceed.

    Browsers always send ``Origin`` on a WebSocket handshake, and a hostile page cannot
    forge it: that is what stops cross-site WebSocket hijacking. A request without one does
    not come from a browser, so it carries no victim's cookie; it is let through to
    authenticate like anyone else.
    """
    if origin is None:
        return True
    return "*" in allowed or origin.rstrip("/").lower() in allowed


# -- server messages -------------------------------------------------------------------------


def _dumps(body: dict[str, object]) -> str:
    return json.dumps(body, separators=(",", ":"))


def encode_event(channel: str, model: str, op: Op, ids: Sequence[int], epoch: str, seq: int) -> str:
    """The ``event`` message for a model channel: encoded once, sent to every recipient."""
    return _dumps(
        {"t": "event", "ch": channel, "model": model, "op": _OP_NAMES[op], "ids": list(ids), "epoch": epoch, "seq": seq}
    )


def encode_user_event(uid: int, data: dict[str, object]) -> str:
    """The ``event`` message for a user channel, carrying what Odoo published verbatim."""
    return _dumps({"t": "event", "ch": user_channel_name(uid), "data": data})


def encode_resync(reason: str) -> str:
    """Tells every client that events may have been missed: reload what the page shows."""
    return _dumps({"t": "resync", "reason": reason})


def encode_hello(principal: Principal) -> str:
    """Sent once authenticated; ``grants`` lets the page know what it may subscribe to."""
    return _dumps(
        {"t": "hello", "uid": principal.uid, "db": principal.db, "auth": principal.method, "grants": sorted(principal.grants)}
    )


def encode_reply(command: Command, channels: Iterable[str], refused: Iterable[tuple[str, SubscribeRefusal]] = ()) -> str:
    """The answer to ``sub``/``unsub``: ``subscribed``/``unsubscribed`` plus any refusals."""
    body: dict[str, object] = {"t": "subscribed" if command.op is CommandOp.SUB else "unsubscribed", "ch": list(channels)}
    refused = [{"ch": name, "reason": reason} for name, reason in refused]
    if refused:
        body["refused"] = refused
    if command.id is not None:
        body["id"] = command.id
    return _dumps(body)


def encode_error(code: str, detail: str = "", command_id: int | str | None = None) -> str:
    """A refusal that leaves the connection open (e.g. ``already_authenticated``)."""
    body: dict[str, object] = {"t": "error", "code": code, "detail": detail}
    if command_id is not None:
        body["id"] = command_id
    return _dumps(body)
