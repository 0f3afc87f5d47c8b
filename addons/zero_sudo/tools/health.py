"""The health page's verdicts, from raw readings (pure; no Odoo, no I/O).

``health_probe.py`` takes the readings (a Redis PING, a pooled RabbitMQ channel, the relay's
epoch key, each relay replica's ``/healthz`` and ``/metrics``) under a deadline; this module
turns them into one :class:`Check` each: a :class:`Status` and a sentence an administrator can
act on. Keeping the two apart lets every verdict be tested without servers, and keeps the page
from ever showing a traceback: a failed reading is the check's status, not an error.
"""

from __future__ import annotations

import enum
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from zero_sudo_bus.protocol import bus_channel, epoch_key

# The relay's lag histogram (zero_sudo_relay_lag_seconds): a batch takes well under 10 ms from
# NOTIFY to Redis; a 99th percentile beyond these bounds means caches lag behind writes.
LAG_P99_WARNING_S = 0.1
LAG_P99_ERROR_S = 1.0


class Status(enum.StrEnum):
    """A check's verdict (the strings are the page's selection values)."""

    OK = "ok"
    WARNING = "warning"
    ERROR = "error"
    UNKNOWN = "unknown"  # not configured, or not measurable from this process


class Probe(enum.StrEnum):
    """What a check is about (the strings are the page's selection values)."""

    CACHE_FOLLOWER = "cache_follower"
    RELAY_EPOCH = "relay_epoch"
    RELAY_LEADER = "relay_leader"
    RELAY_LAG = "relay_lag"
    REDIS = "redis"
    AMQP = "amqp"
    EXECUTOR = "executor"


PROBE_LABELS: Mapping[Probe, str] = {
    Probe.CACHE_FOLLOWER: "Cache follower (this worker)",
    Probe.RELAY_EPOCH: "Relay epoch",
    Probe.RELAY_LEADER: "Relay leader",
    Probe.RELAY_LAG: "Relay lag",
    Probe.REDIS: "Redis (pool)",
    Probe.AMQP: "RabbitMQ (pool)",
    Probe.EXECUTOR: "Bounded executor (this worker)",
}

_SEVERITY = {Status.OK: 0, Status.UNKNOWN: 1, Status.WARNING: 2, Status.ERROR: 3}


@dataclass(frozen=True)
class Check:
    probe: Probe
    status: Status
    detail: str
    database: str = ""  # empty: about this process, whatever the database


def worst(statuses: Iterable[Status]) -> Status:
    """The page's overall status: its worst check's (OK when there is none)."""
    return max(statuses, key=_SEVERITY.__getitem__, default=Status.OK)


@dataclass(frozen=True)
class Failed:
    """A reading that did not come: the exception's text, or that the deadline passed."""

    error: str


def redact_url(url: str) -> str:
    """``url`` without its password, fit to show (``amqp://guest:***@host:5672/``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable URL)"
    if parts.password is None:
        return url
    netloc = "%s:***@%s" % (parts.username or "", parts.netloc.rpartition("@")[2])
    return urlunsplit(parts._replace(netloc=netloc))


def ago(seconds: float) -> str:
    """A duration in words: "4 s", "3 min", "2 h", "5 d"."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return "%d %s" % (seconds // size, unit)
    return "%d s" % seconds


def _ms(seconds: float) -> str:
    return "%.1f ms" % (seconds * 1000)


# -- this worker -----------------------------------------------------------------------------
@dataclass(frozen=True)
class FollowerReading:
    """This process's follower of one database, as read (None fields: never happened)."""

    enabled: bool  # [zero_sudo] cache_coherence
    started: bool
    live: bool = False
    invalidated_at: Mapping[str, float] = field(default_factory=dict)  # model -> wall clock
    flushed_at: float | None = None
    flush_reason: str | None = None


def follower_check(database: str, reading: FollowerReading, now: float | None = None) -> Check:
    now = time.time() if now is None else now
    if not reading.enabled:
        return Check(
            Probe.CACHE_FOLLOWER,
            Status.UNKNOWN,
            "cache_coherence is off in odoo.conf: caches follow Odoo's database signaling only",
            database,
        )
    if not reading.started:
        return Check(Probe.CACHE_FOLLOWER, Status.WARNING, "this process has not loaded this database's registry yet", database)
    last = []
    if reading.invalidated_at:
        model, at = max(reading.invalidated_at.items(), key=lambda item: item[1])
        last.append("last invalidation: %s, %s ago" % (model, ago(now - at)))
    else:
        last.append("no invalidation received yet")
    if reading.flushed_at is not None:
        last.append("last flush: %s ago (%s)" % (ago(now - reading.flushed_at), reading.flush_reason or "?"))
    if reading.live:
        return Check(Probe.CACHE_FOLLOWER, Status.OK, "live on %s; %s" % (bus_channel(database), "; ".join(last)), database)
    return Check(
        Probe.CACHE_FOLLOWER,
        Status.ERROR,
        "not connected to Redis: writes fall back to Odoo's database signaling (every cache emptied); %s" % "; ".join(last),
        database,
    )


@dataclass(frozen=True)
class ExecutorReading:
    running: int
    queued: int
    max_workers: int
    max_queued: int


def executor_check(reading: ExecutorReading) -> Check:
    counts = "%d of %d running, %d of %d queued" % (reading.running, reading.max_workers, reading.queued, reading.max_queued)
    if reading.running + reading.queued >= reading.max_workers + reading.max_queued:
        return Check(Probe.EXECUTOR, Status.ERROR, "%s: full, new tasks are refused (503 + Retry-After)" % counts)
    if reading.queued:
        return Check(Probe.EXECUTOR, Status.WARNING, "%s: tasks wait for a thread" % counts)
    return Check(Probe.EXECUTOR, Status.OK, counts)


# -- servers through the pools ---------------------------------------------------------------
def redis_check(reading: float | Failed, url: str) -> Check:
    """``reading``: the PING's round trip in seconds."""
    where = redact_url(url)
    if isinstance(reading, Failed):
        return Check(Probe.REDIS, Status.ERROR, "%s unreachable: %s" % (where, reading.error))
    return Check(Probe.REDIS, Status.OK, "%s answered PING in %s" % (where, _ms(reading)))


def amqp_check(reading: float | Failed, url: str, opened: int, size: int) -> Check:
    """``reading``: how long lending a channel took (opening a connection, if none was idle)."""
    where = redact_url(url)
    pool = "%d of %d connections opened by this process" % (opened, size)
    if isinstance(reading, Failed):
        return Check(Probe.AMQP, Status.ERROR, "%s unreachable: %s (%s)" % (where, reading.error, pool))
    return Check(Probe.AMQP, Status.OK, "%s lent a channel in %s (%s)" % (where, _ms(reading), pool))


# -- the relay -------------------------------------------------------------------------------
Sample = tuple[str, Mapping[str, str], float]


_SAMPLE_RE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)")
_LABEL_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="([^"]*)"')


def parse_metrics(text: str) -> list[Sample]:
    """The samples of a Prometheus text exposition: (name, labels, value); comments skipped.

    Enough of the format for what the relay exposes (label values without escaped quotes);
    a line that does not parse is skipped rather than failing the page."""
    samples: list[Sample] = []
    for line in text.splitlines():
        match = _SAMPLE_RE.match(line.strip())
        if match is None:
            continue
        name, labels, value = match.groups()
        try:
            samples.append((name, dict(_LABEL_RE.findall(labels or "")), float(value)))
        except ValueError:
            continue
    return samples


@dataclass(frozen=True)
class RelayLag:
    batches: int
    mean_s: float | None
    p99_at_most_s: float | None  # the first bucket bound holding 99% (inf: beyond the last)
    pending_ids: int | None


def relay_lag(samples: Sequence[Sample]) -> RelayLag:
    """The relay's publish lag from its ``zero_sudo_relay_lag_seconds`` histogram."""
    buckets: list[tuple[float, float]] = []
    total = count = 0.0
    pending = None
    for name, labels, value in samples:
        if name == "zero_sudo_relay_lag_seconds_bucket" and "le" in labels:
            buckets.append((float(labels["le"]), value))  # float("+Inf") is inf
        elif name == "zero_sudo_relay_lag_seconds_sum":
            total = value
        elif name == "zero_sudo_relay_lag_seconds_count":
            count = value
        elif name == "zero_sudo_relay_pending_ids":
            pending = int(value)
    p99 = None
    if count:
        for bound, cumulative in sorted(buckets):
            if cumulative >= 0.99 * count:
                p99 = bound
                break
    return RelayLag(int(count), total / count if count else None, p99, pending)


@dataclass(frozen=True)
class ReplicaReading:
    """One relay replica's ops endpoint: its /healthz JSON and its /metrics samples."""

    url: str
    health: Mapping[str, object] | Failed
    metrics: Sequence[Sample] | Failed


def replica_view(health: Mapping[str, object], database: str) -> Mapping[str, object] | None:
    """What a replica's /healthz says of ``database`` (role, epoch, channel), None if it does
    not relay it. A relay of one database answers ``{role, epoch, channel}``; one following
    several (relay_databases, relay_dbfilter) answers ``{role, following, databases: {db: {role,
    epoch, channel}}}``."""
    databases = health.get("databases")
    view = databases.get(database) if isinstance(databases, Mapping) else health
    if isinstance(view, Mapping) and view.get("channel") == bus_channel(database):
        return view
    return None


def relay_checks(
    database: str,
    epoch: str | None | Failed,
    replicas: Sequence[ReplicaReading],
    configured: bool,
) -> list[Check]:
    """The relay's epoch (from Redis), leader and lag (from the replicas' ops endpoints).

    ``epoch`` is the value of :func:`epoch_key` (None: no relay ever became active for the
    database). The leader is the replica that says it is active *with that epoch*: a replica
    claiming to be active under another epoch is a fenced one that has not noticed yet."""
    key = epoch_key(database)
    if isinstance(epoch, Failed):
        checks = [Check(Probe.RELAY_EPOCH, Status.UNKNOWN, "Redis unreachable, %s unread: %s" % (key, epoch.error), database)]
    elif epoch is None:
        checks = [
            Check(
                Probe.RELAY_EPOCH, Status.ERROR, "no relay has ever been active for this database (%s is unset)" % key, database
            )
        ]
    else:
        checks = [Check(Probe.RELAY_EPOCH, Status.OK, "%s (Redis %s)" % (epoch, key), database)]
    if not configured:
        unknown = "relay_ops_urls is not set in odoo.conf: only the epoch is known (from Redis)"
        return [
            *checks,
            Check(Probe.RELAY_LEADER, Status.UNKNOWN, unknown, database),
            Check(Probe.RELAY_LAG, Status.UNKNOWN, unknown, database),
        ]

    unreachable = ["%s (%s)" % (replica.url, replica.health.error) for replica in replicas if isinstance(replica.health, Failed)]
    views = [(r, replica_view(r.health, database)) for r in replicas if not isinstance(r.health, Failed)]
    ours = [(r, view) for r, view in views if view is not None]
    current = None if isinstance(epoch, Failed) else epoch
    leaders = [r for r, view in ours if view.get("role") == "active" and current is not None and view.get("epoch") == current]
    others = ["%s (%s, epoch %s)" % (r.url, view.get("role"), view.get("epoch") or "-") for r, view in ours if r not in leaders]
    notes = []
    if others:
        notes.append("others: " + ", ".join(others))
    if unreachable:
        notes.append("unreachable: " + ", ".join(unreachable))
    suffix = ("; " + "; ".join(notes)) if notes else ""
    if leaders:
        leader = leaders[0]
        status = Status.WARNING if unreachable else Status.OK
        checks.append(Check(Probe.RELAY_LEADER, status, "%s (active, epoch %s)%s" % (leader.url, epoch, suffix), database))
        checks.append(_lag_check(database, leader))
    else:
        if not ours and not unreachable:
            detail = "none of relay_ops_urls relays %s" % bus_channel(database)
        else:
            detail = "no replica is active with the current epoch" + suffix
        checks.append(Check(Probe.RELAY_LEADER, Status.ERROR, detail, database))
        checks.append(Check(Probe.RELAY_LAG, Status.UNKNOWN, "no leader to ask", database))
    return checks


def _lag_check(database: str, leader: ReplicaReading) -> Check:
    if isinstance(leader.metrics, Failed):
        return Check(Probe.RELAY_LAG, Status.UNKNOWN, "%s/metrics unread: %s" % (leader.url, leader.metrics.error), database)
    # A relay following several databases labels each sample with its database (db="...").
    lag = relay_lag([sample for sample in leader.metrics if sample[1].get("db", database) == database])
    pending = "" if lag.pending_ids is None else "; %d IDs pending" % lag.pending_ids
    if not lag.batches:
        return Check(Probe.RELAY_LAG, Status.OK, "no batch published yet%s" % pending, database)
    p99 = lag.p99_at_most_s
    p99_text = "beyond the largest bucket" if p99 is None or math.isinf(p99) else "at most %s" % _ms(p99)
    detail = "NOTIFY to Redis: mean %s over %d batches since the relay started, 99th percentile %s%s" % (
        _ms(lag.mean_s),
        lag.batches,
        p99_text,
        pending,
    )
    if p99 is None or p99 > LAG_P99_ERROR_S:
        status = Status.ERROR
    elif p99 > LAG_P99_WARNING_S:
        status = Status.WARNING
    else:
        status = Status.OK
    return Check(Probe.RELAY_LAG, status, detail, database)


def relay_urls(value: str) -> list[str]:
    """The base URLs of ``[zero_sudo] relay_ops_urls`` (comma-separated), without trailing /."""
    return [url.rstrip("/") for url in (part.strip() for part in value.split(",")) if url]
