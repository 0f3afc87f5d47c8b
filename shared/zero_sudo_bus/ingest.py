"""The ingestion protocol: how accepted data travels through RabbitMQ, defined once.

Producers (the Odoo controller of ``zero_sudo_ingest``, the poller daemon) publish each
message, persistent and with publisher confirms, to the durable topic exchange
:data:`EXCHANGE` with routing key ``<database>.<stream code>``. The landing daemon of that
database consumes :func:`landing_queue` (bound to ``<database>.#``) and writes each message
into the addon's landing table, de-duplicated on (stream, external ID). Messages that can
never land are republished to :data:`DEAD_LETTER_EXCHANGE` with the reason in the
:data:`REASON_HEADER` header, and stay in :func:`dead_letter_queue` for an operator.

The body is compact JSON: ``{"v":1,"stream":"orders","external_id":"A-17","data":{...}}``.
"""

from __future__ import annotations

import enum
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from .protocol import Rejected

INGEST_VERSION = 1
EXCHANGE = "zero_sudo.ingest"
DEAD_LETTER_EXCHANGE = "zero_sudo.ingest.dead"
REASON_HEADER = "x-zero-sudo-reason"

# Stream codes travel in routing keys and URLs: short, lower-case, no dots or slashes.
STREAM_CODE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAX_EXTERNAL_ID_LENGTH = 255  # the landing table's external_id is a varchar(255)
# The largest body a consumer parses. The Odoo controller accepts request bodies of 1 MiB and
# the poller answers of 16 MiB split into items, so no honest message comes near it; a consumer
# holds up to its prefetch of messages at once, and this bounds what each one can cost.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class IngestMessage:
    """One accepted message: which stream, its unique key there, and the data itself."""

    stream: str
    external_id: str
    data: dict[str, Any]


def landing_queue(db_name: str) -> str:
    """The durable queue one database's landing daemon consumes."""
    return "zero_sudo.ingest.%s" % db_name


def dead_letter_queue(db_name: str) -> str:
    """Where one database's messages that can never land are kept, with their reason."""
    return "zero_sudo.ingest.%s.dead" % db_name


def routing_key(db_name: str, stream: str) -> str:
    return "%s.%s" % (db_name, stream)


class ExchangeKind(enum.StrEnum):
    TOPIC = "topic"  # routes <database>.<stream> to the database's queue by pattern
    DIRECT = "direct"  # dead letters: routed by database name exactly


@dataclass(frozen=True, slots=True)
class Exchange:
    name: str
    kind: ExchangeKind


@dataclass(frozen=True, slots=True)
class Binding:
    """A durable queue and the exchange (and routing pattern) that feeds it."""

    queue: str
    exchange: str
    routing_key: str


@dataclass(frozen=True, slots=True)
class Topology:
    exchanges: tuple[Exchange, ...]
    bindings: tuple[Binding, ...]


def topology(db_name: str) -> Topology:
    """Everything one database's ingestion needs on the broker, all durable.

    Every party (the Odoo controller, the poller, the landing daemon) declares all of it
    before its first publish or consume, idempotently: whoever starts first, nothing accepted
    is ever routed nowhere.
    """
    return Topology(
        exchanges=(Exchange(EXCHANGE, ExchangeKind.TOPIC), Exchange(DEAD_LETTER_EXCHANGE, ExchangeKind.DIRECT)),
        bindings=(
            Binding(landing_queue(db_name), EXCHANGE, "%s.#" % db_name),
            Binding(dead_letter_queue(db_name), DEAD_LETTER_EXCHANGE, db_name),
        ),
    )


def check_stream_code(code: str) -> str:
    """``code`` if it is a valid stream code, else ValueError."""
    if not isinstance(code, str) or not STREAM_CODE.fullmatch(code):
        raise ValueError("stream codes are 1-64 characters of a-z, 0-9, _ and -, starting with a letter or digit")
    return code


def check_external_id(value: object) -> str:
    """The external ID as a non-empty string of at most 255 characters (ints are accepted)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("the external ID must be a string or an integer")
    text = str(value)
    if not text or len(text) > MAX_EXTERNAL_ID_LENGTH or "\x00" in text or not is_utf8_text(text):
        raise ValueError("the external ID must be 1-%d characters of UTF-8 text without NUL" % MAX_EXTERNAL_ID_LENGTH)
    return text


def is_utf8_text(text: str) -> bool:
    """False for a string PostgreSQL cannot store: JSON's ``\\ud800`` escapes decode to lone
    UTF-16 surrogates, which have no UTF-8 encoding."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _finite_float(text: str) -> float:
    # JSON allows 1e400; Python reads it as inf, which has no JSON spelling to store it back.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number %s is out of range" % text[:40])
    return value


def _no_constant(name: str) -> object:
    raise ValueError("%s is not JSON" % name)  # Python's json accepts NaN and Infinity; JSON does not


def encode_ingest_message(message: IngestMessage) -> bytes:
    body = {"v": INGEST_VERSION, "stream": message.stream, "external_id": message.external_id, "data": message.data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_ingest_message(body: bytes) -> IngestMessage | Rejected:
    """Decode one RabbitMQ body; anything off the format becomes a :class:`Rejected`.

    Never raises: whatever a producer sent, the consumer gets a message or a reason.
    """
    if len(body) > MAX_MESSAGE_BYTES:
        return Rejected("too_large", "%d bytes, at most %d" % (len(body), MAX_MESSAGE_BYTES))
    try:
        decoded = json.loads(body, parse_float=_finite_float, parse_constant=_no_constant)
    except (ValueError, TypeError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        return Rejected("not_json", str(exc)[:120])
    if type(decoded) is not dict:
        return Rejected("not_object")
    if decoded.get("v") != INGEST_VERSION:
        return Rejected("bad_version")
    data = decoded.get("data")
    if type(data) is not dict:
        return Rejected("bad_data", "data must be a JSON object")
    try:
        stream = check_stream_code(decoded.get("stream"))
        external_id = check_external_id(decoded.get("external_id"))
    except ValueError as exc:
        return Rejected("bad_envelope", str(exc))
    return IngestMessage(stream, external_id, data)
