"""What the landing daemon does with one batch, decided without I/O.

Each message either becomes a landing row or a dead letter with a reason. Deciding this is
pure; landing the rows and publishing the dead letters is the daemon's job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from zero_sudo_bus.ingest import IngestMessage, decode_ingest_message
from zero_sudo_bus.protocol import Rejected

M = TypeVar("M")  # the broker's message object, carried through untouched


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


def plan_landing(decoded: Sequence[tuple[M, IngestMessage | Rejected]], stream_ids: Mapping[str, int]) -> LandingPlan[M]:
    """Rows for every landable message; a dead letter, with its reason, for every other."""
    plan: LandingPlan[M] = LandingPlan()
    for message, item in decoded:
        if isinstance(item, Rejected):
            plan.dead.append((message, "malformed: %s %s" % (item.reason, item.detail)))
            continue
        stream_id = stream_ids.get(item.stream)
        if stream_id is None:
            plan.dead.append((message, "unknown stream: %s (deleted or archived)" % item.stream))
            continue
        payload = json.dumps(item.data, separators=(",", ":"), ensure_ascii=False)
        if "\\u0000" in payload:
            plan.dead.append((message, "malformed: PostgreSQL jsonb cannot hold a NUL character"))
            continue
        plan.rows.append(LandingRow(stream_id, item.external_id, payload))
        plan.row_messages.append(message)
    return plan
