"""The poller's decisions, as plain code: sources, schedule, circuit breaker, extraction."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

from zero_sudo_bus.backoff import Backoff
from zero_sudo_bus.ingest import IngestMessage, check_external_id, check_stream_code, encode_ingest_message

from .errors import ConfigurationError

# Each poll is moved by up to ±10 % of its interval, so that sources configured alike (and
# replicas restarted together) do not hit their servers in lockstep.
JITTER_FRACTION = 0.1

# A failing source is retried after an exponentially growing delay, from its interval up to
# this (or up to its interval, if that is longer: a retry never comes later than a poll would).
MAX_RETRY_DELAY_S = 60.0

# Longest error text kept from a failed answer: enough to recognise the error, while a log
# line stays one line whatever the source sent.
MAX_REASON_CHARS = 200


class AnswerUnusable(ValueError):
    """An answer that cannot become messages (not JSON, nested too deeply, out of range…).

    A ValueError, so that the poller counts it against the source like any bad answer.
    """


@dataclass(frozen=True)
class Source:
    """One URL to poll, and how its answer becomes messages of a stream."""

    name: str
    url: str
    stream: str
    interval_s: float
    id_field: str = "id"
    items_field: str | None = None  # where the list of items is in the answer; None: the answer itself


def load_sources(text: str) -> list[Source]:
    """Parse the sources file (a JSON list of objects), refusing anything ambiguous."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError("poller sources: not JSON: %s" % exc) from None
    if not isinstance(raw, list):
        raise ConfigurationError("poller sources: expected a JSON list of sources")
    sources, names = [], set()
    for index, entry in enumerate(raw):
        where = "poller sources[%d]" % index
        if not isinstance(entry, dict):
            raise ConfigurationError("%s: expected an object" % where)
        unknown = set(entry) - {f for f in Source.__dataclass_fields__}
        if unknown:
            raise ConfigurationError("%s: unknown keys %s" % (where, ", ".join(sorted(unknown))))
        try:
            source = Source(**entry)
            check_stream_code(source.stream)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError("%s: %s" % (where, exc)) from None
        # Checked here, not at the first poll: a wrong type there would fail every poll.
        for key in ("name", "url", "id_field"):
            if not isinstance(getattr(source, key), str) or not getattr(source, key):
                raise ConfigurationError("%s: %s must be a non-empty string" % (where, key))
        if source.items_field is not None and not isinstance(source.items_field, str):
            raise ConfigurationError("%s: items_field must be a string or null" % where)
        if not source.url.startswith(("http://", "https://")):
            raise ConfigurationError("%s: url must be http:// or https://" % where)
        interval = source.interval_s
        # bool is an int to Python, and json.loads reads NaN and Infinity: none is an interval.
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0 < interval < math.inf:
            raise ConfigurationError("%s: interval_s must be a positive number of seconds" % where)
        if source.name in names:
            raise ConfigurationError("%s: duplicate source name %r" % (where, source.name))
        names.add(source.name)
        sources.append(source)
    return sources


def jittered(interval_s: float, rng: random.Random) -> float:
    return interval_s * (1 + rng.uniform(-JITTER_FRACTION, JITTER_FRACTION))


def retry_backoff(interval_s: float, rng: random.Random) -> Backoff:
    """The backoff of one source: from its interval, doubling up to MAX_RETRY_DELAY_S.

    The cap is never below the interval: Backoff refuses a base above its cap, which made
    every source polled less often than once a minute stop the poller at start.
    """
    return Backoff(base=interval_s, cap=max(interval_s, MAX_RETRY_DELAY_S), rng=rng)


def _refuse_constant(name: str) -> Any:
    raise ValueError("%s is not a JSON number" % name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: valid JSON, but no JSON (nor jsonb) can say it again
        raise ValueError("number out of range: %s" % text[:40])
    return value


def decode_answer(body: bytes | bytearray) -> Any:
    """An answer's JSON, or AnswerUnusable whatever the body holds.

    A source is not trusted: its body may be invalid UTF-8, nested past the recursion limit,
    hold an integer of more digits than Python converts, NaN or 1e999 (which only Python's
    own encoder would write back, and PostgreSQL refuses), or exhaust memory. Each is that
    source's failure; none may reach the loop that polls the other sources.
    """
    try:
        return json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise AnswerUnusable("the answer is nested too deeply") from None
    except MemoryError:
        raise AnswerUnusable("the answer does not fit in memory once parsed") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digits limit, ours
        raise AnswerUnusable("the answer is not usable JSON: %s" % str(exc)[:MAX_REASON_CHARS]) from None


@dataclass
class CircuitBreaker:
    """Closed while a source answers; open for ``cooldown_s`` after ``threshold`` failures in a
    row, then half-open: one trial poll closes it again or reopens it.

    A source that is down is then asked once per cool-down instead of once per interval.
    """

    threshold: int = 5
    cooldown_s: float = 60.0
    failures: int = 0
    opened_at: float | None = None

    def allows(self, now: float) -> bool:
        return self.opened_at is None or now - self.opened_at >= self.cooldown_s

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def failure(self, now: float) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = now  # (re)open: a half-open trial that fails waits a full cool-down


@dataclass
class ConditionalState:
    """What a server said last time, sent back so that it can answer 304 Not Modified."""

    etag: str | None = None
    last_modified: str | None = None

    def request_headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers

    def remember(self, response_headers: Any) -> None:
        self.etag = response_headers.get("ETag") or None
        self.last_modified = response_headers.get("Last-Modified") or None


@dataclass
class Extracted:
    """The messages of one answer, each already encoded (``bodies[i]`` is ``messages[i]``), so
    that an item that cannot be encoded is rejected before anything of the answer is published."""

    messages: list[IngestMessage] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def extract_messages(source: Source, answer: Any) -> Extracted:
    """The messages in one answer: each item an object with an external ID in ``id_field``.

    An item that cannot be encoded (a lone surrogate such as ``"\\ud800"`` is valid JSON but
    no UTF-8) is rejected like an item without an ID: the rest of the answer still lands.
    """
    extracted = Extracted()
    items = answer.get(source.items_field) if source.items_field and isinstance(answer, dict) else answer
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        extracted.rejected.append("the answer holds no list of items")
        return extracted
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            extracted.rejected.append("item %d is not an object" % position)
            continue
        try:
            external_id = check_external_id(item.get(source.id_field))
        except ValueError as exc:
            extracted.rejected.append("item %d: %s" % (position, exc))
            continue
        message = IngestMessage(source.stream, external_id, item)
        try:
            body = encode_ingest_message(message)
        except (ValueError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
            extracted.rejected.append("item %d cannot be encoded: %s" % (position, str(exc)[:MAX_REASON_CHARS]))
            continue
        extracted.messages.append(message)
        extracted.bodies.append(body)
    return extracted
