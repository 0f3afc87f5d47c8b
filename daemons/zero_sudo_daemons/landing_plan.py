"""What the landing daemon does with one batch, decided without I/O.

Each message either becomes a landing row or a dead letter with a reason. Deciding this is
pure; landing the rows and publishing the dead letters is the daemon's job. Nothing a
producer can put in a message makes these functions raise: a message the daemon cannot
handle is that message's dead letter, never the daemon's exit.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from zero_sudo_bus.ingest import IngestMessage, decode_ingest_message, is_utf8_text
from zero_sudo_bus.protocol import Rejected

M = TypeVar("M")  # the broker's message object, carried through untouched

# SQLSTATE classes in which PostgreSQL refuses the data itself: the row's fault, so it is
# dead-lettered. Every other error (connection, resources, operator intervention, a lock or
# serialization conflict, the addon's table missing) is the server's: the batch is retried.
ROW_FAULT_SQLSTATE_CLASSES = frozenset(
    {
        "22",  # data exception: invalid text, out-of-range value, untranslatable character
        "23",  # integrity constraint violation: the stream was deleted under the batch
        "54",  # program limit exceeded: a value too deeply nested or too large to store
    }
)

# A message redelivered this many times without landing or being dead-lettered is given up
# on (dead-lettered with that reason): whatever keeps failing it, it cannot loop forever.
# Each redelivery follows a lost session (server restart, network cut), so five in a row for
# one message is far beyond what outages of healthy servers produce.
MAX_DELIVERIES = 5
# Messages remembered for that count; beyond, the oldest are forgotten (bounded memory).
REDELIVERY_MEMORY = 100_000


@dataclass(frozen=True, slots=True)
class LandingRow:
    stream_id: int
    external_id: str
    payload: str  # the message's data, as JSON text for a jsonb column


@dataclass
class LandingPlan(Generic[M]):
    rows: list[LandingRow] = field(default_factory=list)
    row_messages: list[M] = field(default_factory=list)
    dead: list[tuple[M, str]] = field(default_factory=list)


def decode_batch(messages: Sequence[tuple[M, bytes]]) -> list[tuple[M, IngestMessage | Rejected]]:
    return [(message, decode_ingest_message(body)) for message, body in messages]


def stream_codes(decoded: Sequence[tuple[M, IngestMessage | Rejected]]) -> list[str]:
    """The stream codes a batch names, for one look-up query."""
    return sorted({item.stream for _message, item in decoded if isinstance(item, IngestMessage)})


def landing_row(item: IngestMessage | Rejected, stream_ids: Mapping[str, int]) -> LandingRow | str:
    """The row one decoded message lands as, or the reason it never can."""
    if isinstance(item, Rejected):
        return "malformed: %s %s" % (item.reason, item.detail)
    stream_id = stream_ids.get(item.stream)
    if stream_id is None:
        return "unknown stream: %s (deleted or archived)" % item.stream
    payload = json.dumps(item.data, separators=(",", ":"), ensure_ascii=False)
    if "\\u0000" in payload:
        return "malformed: PostgreSQL jsonb cannot hold a NUL character"
    if not is_utf8_text(payload):
        return "malformed: text with a lone UTF-16 surrogate, which has no UTF-8 encoding"
    return LandingRow(stream_id, item.external_id, payload)


def plan_landing(decoded: Sequence[tuple[M, IngestMessage | Rejected]], stream_ids: Mapping[str, int]) -> LandingPlan[M]:
    """Rows for every landable message; a dead letter, with its reason, for every other."""
    plan: LandingPlan[M] = LandingPlan()
    for message, item in decoded:
        try:
            row = landing_row(item, stream_ids)
        except (ValueError, TypeError, RecursionError) as exc:  # data json can read but not write back
            row = "malformed: %s" % str(exc)[:120]
        if isinstance(row, str):
            plan.dead.append((message, row))
        else:
            plan.rows.append(row)
            plan.row_messages.append(message)
    return plan


def is_row_fault(sqlstate: str | None) -> bool:
    """Whether an error with this SQLSTATE means PostgreSQL refused the data (see above)."""
    return sqlstate is not None and sqlstate[:2] in ROW_FAULT_SQLSTATE_CLASSES


def encodable_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """The headers of a received message as they can be published again, losing nothing.

    A header string that is not UTF-8 arrives as ``bytes``, which the AMQP encoder refuses;
    as a ``bytearray`` it travels as AMQP's byte-array type, byte for byte.
    """
    return {key: _encodable(value) for key, value in headers.items()}


def _encodable(value: Any) -> Any:
    if isinstance(value, bytes):
        return bytearray(value)
    if isinstance(value, Mapping):
        return encodable_headers(value)
    if isinstance(value, list | tuple):
        return [_encodable(item) for item in value]
    return value


class RedeliveryLedger:
    """How often this process saw each message come back, to give up on one that keeps failing.

    Messages are told apart by routing key and a digest of their body (message IDs are the
    producer's and may repeat). Only redeliveries are counted, so the cost falls on the
    messages that came back, never on the steady flow.
    """

    def __init__(self, limit: int = MAX_DELIVERIES, memory: int = REDELIVERY_MEMORY) -> None:
        self.limit = limit
        self._memory = memory
        self._deliveries: OrderedDict[bytes, int] = OrderedDict()

    def redelivered(self, routing_key: str, body: bytes) -> bool:
        """Count one more delivery of this message; True once it reached the limit."""
        key = hashlib.blake2b(body, digest_size=16, person=routing_key.encode()[:16]).digest()
        count = self._deliveries.pop(key, 1) + 1  # its first delivery was not counted
        self._deliveries[key] = count
        if len(self._deliveries) > self._memory:
            self._deliveries.popitem(last=False)
        return count >= self.limit
