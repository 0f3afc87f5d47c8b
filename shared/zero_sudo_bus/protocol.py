"""The zero_sudo event protocol: the one definition shared by the Odoo addons and the daemons.

Two hops, two formats (both documented in the README, "Event protocol"):

1. **PostgreSQL NOTIFY** (Odoo → relay) on channel :data:`PG_CHANNEL`. The payload is a JSON
   array of integers and nothing else: ``[model_key, op, id, id, ...]`` with no spaces.
   ``model_key`` is :func:`model_key` of the Odoo model name (a signed 64-bit deterministic
   hash), ``op`` one of :class:`Op`, then at least one record ID (1 … 2**63-1). A payload is
   always shorter than :data:`NOTIFY_PAYLOAD_LIMIT` bytes; :func:`encode_notify_payloads`
   splits any number of IDs into as many payloads as needed.
2. **Redis pub/sub** (relay → Odoo workers, gateways) on :func:`bus_channel` of the database.
   Each message is a compact JSON object carrying the relay's ``epoch`` and a ``seq`` number
   (consecutive within an epoch, starting at 0 with a ``flush``), so subscribers detect gaps:
   ``{"v":1,"epoch":"…","seq":7,"kind":"change","model":K,"op":2,"ids":[…]}`` or
   ``{"v":1,"epoch":"…","seq":0,"kind":"flush","reason":"start"}``.

Decoders never raise: anything that is not exactly the format comes back as :class:`Rejected`
with a stable ``reason`` (used as a metric label), so a daemon counts it, logs it and goes on.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from .lockhash import BIGINT_MAX, BIGINT_MIN, deterministic_hash

PROTOCOL_VERSION = 1

PG_CHANNEL = "zero_sudo_events"

# PostgreSQL refuses a payload of NOTIFY_PAYLOAD_MAX_LENGTH (8000) bytes or more
# (async.c: BLCKSZ - NAMEDATALEN - 128 = 8000, and "payload string too long" when
# strlen(payload) >= that), so the longest payload we ever produce or accept is 7999 bytes.
NOTIFY_PAYLOAD_LIMIT = 8000
MAX_PAYLOAD_BYTES = NOTIFY_PAYLOAD_LIMIT - 1

# One Redis message holds at most this many IDs: a subscriber decodes 10 000 IDs in about a
# millisecond, so no single message stalls an Odoo worker's invalidation thread for longer.
MAX_IDS_PER_BUS_MESSAGE = 10_000

MIN_RECORD_ID = 1
MAX_RECORD_ID = BIGINT_MAX


class Op(enum.IntEnum):
    """What happened to the records; the second integer of a NOTIFY payload."""

    CREATE = 1
    WRITE = 2
    UNLINK = 3


_OP_VALUES = frozenset(int(op) for op in Op)
_OPS_BY_VALUE = {int(op): op for op in Op}

# The exact shape encode_notify_payloads produces (no spaces, no leading zeros). Matching it
# with one C regex call and splitting is about three times cheaper than json.loads plus the
# per-element checks; anything else takes the general JSON path, which classifies rejections.
_CANONICAL_PAYLOAD = re.compile(r"\[(-?[1-9][0-9]{0,18}|0),([123])((?:,[1-9][0-9]{0,18})+)\]")


class FlushReason(enum.StrEnum):
    """Why everything derived from earlier events must be dropped."""

    START = "start"  # relay side: first leadership of this relay process
    RECOVER = "recover"  # relay side: leadership regained after a lost connection
    OVERFLOW = "overflow"  # relay side: too many IDs pending while Redis was slow
    GAP = "gap"  # subscriber side: a sequence number was skipped
    EPOCH = "epoch"  # subscriber side: another relay epoch began without its flush being seen
    RECONNECT = "reconnect"  # subscriber side: (re)subscribed, anything before may be missed


_FLUSH_REASONS = {reason.value: reason for reason in FlushReason}


class MessageKind(enum.StrEnum):
    """The two kinds of Redis message a relay publishes (the ``kind`` of the JSON object)."""

    CHANGE = "change"  # these IDs of this model went through this op
    FLUSH = "flush"  # drop everything derived from earlier events


def model_key(model_name: str) -> int:
    """The integer that names an Odoo model in payloads (``res.partner`` → signed 64-bit int)."""
    if not model_name:
        raise ValueError("model name must not be empty")
    return deterministic_hash("zero_sudo.model", model_name)


def bus_channel(db_name: str) -> str:
    """The Redis pub/sub channel a relay publishes one database's events to."""
    if not db_name:
        raise ValueError("database name must not be empty")
    return "zero_sudo:%s:events" % db_name


def epoch_key(db_name: str) -> str:
    """The Redis key holding the epoch of the relay that is active for ``db_name``.

    The relay that becomes active writes its epoch there before its first message, and every
    publish checks it in the same atomic step: a relay that was frozen while another took
    over publishes nothing into the new epoch when it wakes (it is fenced).
    """
    if not db_name:
        raise ValueError("database name must not be empty")
    return "zero_sudo:%s:epoch" % db_name


def user_channel_prefix(db_name: str) -> str:
    """What every user channel of ``db_name`` starts with (gateways subscribe to it + ``*``)."""
    if not db_name:
        raise ValueError("database name must not be empty")
    return "zero_sudo:%s:user:" % db_name


def user_channel(db_name: str, uid: int) -> str:
    """The Redis pub/sub channel Odoo publishes user ``uid``'s notifications to (a JSON object
    per message); gateways push them to that user's ``user:<uid>`` subscribers."""
    if type(uid) is not int or uid < 1:
        raise ValueError("uid must be a positive int, got %r" % (uid,))
    return "%s%d" % (user_channel_prefix(db_name), uid)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A payload or message that is not in the protocol; ``reason`` is a stable short code."""

    reason: str
    detail: str = ""


class ChangeBatch(NamedTuple):
    """A decoded NOTIFY payload: these IDs of this model went through ``op``.

    A NamedTuple rather than a frozen dataclass: one is built per NOTIFY on the relay's hot
    path, and a tuple is built in C.
    """

    model_key: int
    op: Op
    ids: tuple[int, ...]


def _check_ids(ids: Iterable[int]) -> list[int]:
    checked = []
    for record_id in ids:
        if type(record_id) is not int or not MIN_RECORD_ID <= record_id <= MAX_RECORD_ID:
            raise ValueError("record IDs must be ints in [1, 2**63-1], got %r" % (record_id,))
        checked.append(record_id)
    return checked


def encode_notify_payloads(model: int | str, op: Op, ids: Iterable[int]) -> Iterator[str]:
    """Yield NOTIFY payloads covering ``ids`` in order, each at most MAX_PAYLOAD_BYTES bytes.

    ``model`` is a model name or an already computed :func:`model_key`. The packing is greedy
    and byte-exact: a payload is closed only when the next ID would push it past the limit.
    Yields nothing for an empty ``ids``.
    """
    key = model_key(model) if isinstance(model, str) else model
    if type(key) is not int or not BIGINT_MIN <= key <= BIGINT_MAX:
        raise ValueError("model key must be a signed 64-bit int, got %r" % (key,))
    op = Op(op)
    header = "[%d,%d" % (key, op)
    # Every payload is header + ",id" * n + "]"; the ASCII digits make str length == byte length.
    budget = MAX_PAYLOAD_BYTES - len(header) - 1
    parts: list[str] = []
    used = 0
    for record_id in _check_ids(ids):
        piece = "," + str(record_id)
        if used + len(piece) > budget:
            yield header + "".join(parts) + "]"
            parts, used = [], 0
        parts.append(piece)
        used += len(piece)
    if parts:
        yield header + "".join(parts) + "]"


def decode_notify_payload(payload: str | bytes) -> ChangeBatch | Rejected:
    """Decode one NOTIFY payload; anything off the format becomes a :class:`Rejected`."""
    if type(payload) is str and len(payload) <= MAX_PAYLOAD_BYTES:
        match = _CANONICAL_PAYLOAD.fullmatch(payload)
        if match is not None:
            key = int(match.group(1))
            ids = tuple(map(int, match.group(3)[1:].split(",")))
            if BIGINT_MIN <= key <= BIGINT_MAX and max(ids) <= MAX_RECORD_ID:
                return ChangeBatch(key, _OPS_BY_VALUE[int(match.group(2))], ids)
    return _decode_general(payload)


def _decode_general(payload: object) -> ChangeBatch | Rejected:
    if isinstance(payload, bytes):
        size = len(payload)
    elif isinstance(payload, str):
        size = len(payload.encode("utf-8", "surrogatepass"))
    else:
        return Rejected("not_text", type(payload).__name__)
    if size == 0:
        return Rejected("empty")
    if size > MAX_PAYLOAD_BYTES:
        return Rejected("oversize", "%d bytes" % size)
    try:
        values = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return Rejected("not_json", str(exc)[:120])
    if type(values) is not list:
        return Rejected("not_array", type(values).__name__)
    if len(values) < 3:
        return Rejected("too_short", "%d integers" % len(values))
    for value in values:
        if type(value) is not int:
            return Rejected("not_integer", type(value).__name__)
    key, op, *ids = values
    if not BIGINT_MIN <= key <= BIGINT_MAX:
        return Rejected("bad_model_key")
    if op not in _OP_VALUES:
        return Rejected("bad_op", str(op))
    for record_id in ids:
        if not MIN_RECORD_ID <= record_id <= MAX_RECORD_ID:
            return Rejected("bad_id", str(record_id)[:40])
    return ChangeBatch(key, _OPS_BY_VALUE[op], tuple(ids))


@dataclass(frozen=True, slots=True)
class BusMessage:
    """One Redis message from a relay: a change of some records, or a flush of everything."""

    epoch: str
    seq: int
    kind: MessageKind
    model_key: int | None = None
    op: Op | None = None
    ids: tuple[int, ...] = ()
    # A flush's reason: a FlushReason, or the text of one a newer relay sent that this
    # version does not know (still a flush: subscribers must not ignore it).
    reason: FlushReason | str = ""


def encode_change_message(epoch: str, seq: int, key: int, op: Op, ids: Sequence[int]) -> bytes:
    """The Redis message for a (coalesced) change; ``ids`` must respect MAX_IDS_PER_BUS_MESSAGE."""
    if len(ids) > MAX_IDS_PER_BUS_MESSAGE:
        raise ValueError("at most %d IDs per bus message" % MAX_IDS_PER_BUS_MESSAGE)
    body = {
        "v": PROTOCOL_VERSION,
        "epoch": epoch,
        "seq": seq,
        "kind": MessageKind.CHANGE,
        "model": key,
        "op": int(op),
        "ids": list(ids),
    }
    return json.dumps(body, separators=(",", ":")).encode("ascii")


def encode_flush_message(epoch: str, seq: int, reason: FlushReason) -> bytes:
    """The Redis message telling every subscriber to drop all it derived from earlier events."""
    body = {"v": PROTOCOL_VERSION, "epoch": epoch, "seq": seq, "kind": MessageKind.FLUSH, "reason": reason}
    return json.dumps(body, separators=(",", ":")).encode("ascii")


def chunk_ids(ids: Sequence[int], size: int = MAX_IDS_PER_BUS_MESSAGE) -> Iterator[Sequence[int]]:
    """Split ``ids`` into slices of at most ``size`` for successive bus messages."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def decode_bus_message(data: str | bytes) -> BusMessage | Rejected:
    """Decode one Redis message; anything off the format becomes a :class:`Rejected`."""
    try:
        body = json.loads(data)
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        return Rejected("not_json", str(exc)[:120])
    if type(body) is not dict:
        return Rejected("not_object", type(body).__name__)
    if body.get("v") != PROTOCOL_VERSION:
        return Rejected("bad_version", repr(body.get("v"))[:20])
    epoch, seq, kind = body.get("epoch"), body.get("seq"), body.get("kind")
    if type(epoch) is not str or not epoch or type(seq) is not int or seq < 0:
        return Rejected("bad_envelope")
    if kind == MessageKind.FLUSH:
        reason = body.get("reason")
        reason = _FLUSH_REASONS.get(reason, reason) if type(reason) is str else ""
        return BusMessage(epoch, seq, MessageKind.FLUSH, reason=reason)
    if kind != MessageKind.CHANGE:
        return Rejected("bad_kind", repr(kind)[:20])
    key, op, ids = body.get("model"), body.get("op"), body.get("ids")
    if type(key) is not int or not BIGINT_MIN <= key <= BIGINT_MAX:
        return Rejected("bad_model_key")
    if type(op) is not int or op not in _OP_VALUES:
        return Rejected("bad_op")
    if type(ids) is not list or not ids or len(ids) > MAX_IDS_PER_BUS_MESSAGE:
        return Rejected("bad_ids")
    for record_id in ids:
        if type(record_id) is not int or not MIN_RECORD_ID <= record_id <= MAX_RECORD_ID:
            return Rejected("bad_id")
    return BusMessage(epoch, seq, MessageKind.CHANGE, key, Op(op), tuple(ids))
