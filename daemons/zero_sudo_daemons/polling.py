"""The poller's decisions, as plain code: sources, schedule, circuit breaker, extraction."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from zero_sudo_bus.ingest import IngestMessage, check_external_id, check_stream_code

from .errors import ConfigurationError

# Each poll is moved by up to ±10 % of its interval, so that sources configured alike (and
# replicas restarted together) do not hit their servers in lockstep.
JITTER_FRACTION = 0.1


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
        if not source.url.startswith(("http://", "https://")):
            raise ConfigurationError("%s: url must be http:// or https://" % where)
        if not isinstance(source.interval_s, (int, float)) or source.interval_s <= 0:
            raise ConfigurationError("%s: interval_s must be a positive number" % where)
        if source.name in names:
            raise ConfigurationError("%s: duplicate source name %r" % (where, source.name))
        names.add(source.name)
        sources.append(source)
    return sources


def jittered(interval_s: float, rng: random.Random) -> float:
    return interval_s * (1 + rng.uniform(-JITTER_FRACTION, JITTER_FRACTION))


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
    messages: list[IngestMessage] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def extract_messages(source: Source, answer: Any) -> Extracted:
    """The messages in one answer: each item an object with an external ID in ``id_field``."""
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
        extracted.messages.append(IngestMessage(source.stream, external_id, item))
    return extracted
