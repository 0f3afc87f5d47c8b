"""The health page's readings, each taken under a deadline (Odoo glue; verdicts in ``health``).

Every reading goes through what the application itself uses (the process's Redis and
RabbitMQ pools, its cache followers, its executor), so the page says what this worker sees.
The readings run in parallel on a small per-process pool and the page waits for them
:data:`PROBE_DEADLINE_S` at most: a reading still running then is shown as "no answer within
3 s" and finishes in the background, within the libraries' own timeouts (Redis
``redis_timeout`` plus the pool's 1 s wait; RabbitMQ the pool's 5 s wait plus pika's 10 s
socket timeout; the relay :data:`RELAY_HTTP_TIMEOUT_S` per request). A reading of the same
thing already running is waited for, not started again, so refreshing a page while a server
hangs starts no new threads.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial
from typing import Any

from zero_sudo_bus.protocol import epoch_key

from . import coherence
from .health import (
    Check,
    ExecutorReading,
    Failed,
    FollowerReading,
    ReplicaReading,
    amqp_check,
    executor_check,
    follower_check,
    parse_metrics,
    redis_check,
    relay_checks,
    relay_urls,
)
from .offload import executor
from .per_process import PerProcess
from .pools import amqp_pool, redis_client
from .settings import settings_from_odoo_conf

_logger = logging.getLogger(__name__)

# How long the page waits for all readings together: long enough for a healthy server on
# another host, short enough that a dead one costs the administrator seconds.
PROBE_DEADLINE_S = 3.0
# Each request to a relay's ops endpoint (connect, then each read): it answers from memory.
RELAY_HTTP_TIMEOUT_S = 1.0
# /metrics of a relay is a few kilobytes; more is not a relay.
RELAY_MAX_BODY_BYTES = 1024 * 1024
# Threads reading for the page: the distinct readings of one page (Redis, RabbitMQ, epochs,
# one per relay replica), which the coalescing below never exceeds per reading.
PROBE_THREADS = 8

# No proxy: relays are reached on the deployment's own network, whatever http_proxy says.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class _Runner:
    """Runs readings on a bounded pool, one at a time per reading (see the module's doc)."""

    def __init__(self) -> None:
        # bounded: PROBE_THREADS threads per process, each reading running once at a time
        self.pool = ThreadPoolExecutor(PROBE_THREADS, thread_name_prefix="zero_sudo_health")
        self.lock = threading.Lock()
        self.in_flight: dict[str, Future] = {}

    def run(self, readings: Mapping[str, Callable[[], Any]], deadline_s: float) -> dict[str, Any]:
        """Each reading's value, or :class:`Failed` (its error, or the deadline passed)."""
        futures: dict[str, Future] = {}
        with self.lock:
            for key, read in readings.items():
                future = self.in_flight.get(key)
                if future is None or future.done():
                    future = self.in_flight[key] = self.pool.submit(read)
                futures[key] = future
        wait(futures.values(), timeout=deadline_s)
        results: dict[str, Any] = {}
        for key, future in futures.items():
            if not future.done():
                _logger.warning("health: %s gave no answer within %.0f s", key, deadline_s)
                results[key] = Failed("no answer within %g s" % deadline_s)
            elif future.exception() is not None:
                results[key] = Failed(_describe(future.exception()))
            else:
                results[key] = future.result()
        return results


_runner: PerProcess[_Runner] = PerProcess(_Runner)


def _describe(exc: BaseException) -> str:
    return "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__


def _timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _ping_redis() -> float:
    return _timed(lambda: redis_client().ping())


def _lend_amqp() -> float:
    def lend() -> None:
        with amqp_pool().channel():
            pass

    return _timed(lend)


def _read_epochs(databases: tuple[str, ...]) -> list[str | None]:
    values = redis_client().mget([epoch_key(database) for database in databases])
    return [value.decode() if isinstance(value, bytes) else value for value in values]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with _opener.open(url, timeout=RELAY_HTTP_TIMEOUT_S) as response:
            return response.status, response.read(RELAY_MAX_BODY_BYTES)
    except urllib.error.HTTPError as exc:  # /healthz answers 503 with its details
        with exc:
            return exc.code, exc.read(RELAY_MAX_BODY_BYTES)


def _read_replica(url: str) -> ReplicaReading:
    health: Mapping[str, object] | Failed
    metrics: list | Failed
    try:
        status, body = _get(url + "/healthz")
        health = json.loads(body)
        if not isinstance(health, dict):
            health = Failed("/healthz answered %d without a JSON object" % status)
    except (OSError, ValueError) as exc:
        health = Failed(_describe(exc))
    try:
        status, body = _get(url + "/metrics")
        metrics = parse_metrics(body.decode("utf-8", "replace")) if status == 200 else Failed("/metrics answered %d" % status)
    except (OSError, ValueError) as exc:
        metrics = Failed(_describe(exc))
    return ReplicaReading(url, health, metrics)


def _follower_reading(enabled: bool, follower: coherence.Follower | None) -> FollowerReading:
    if follower is None:
        return FollowerReading(enabled=enabled, started=False)
    return FollowerReading(
        enabled=enabled,
        started=True,
        live=follower.live,
        invalidated_at=dict(follower.invalidated_at),
        flushed_at=follower.flushed_at,
        flush_reason=follower.flush_reason,
    )


def _executor_reading() -> ExecutorReading:
    conf = settings_from_odoo_conf()
    built = executor.built()  # not built yet: nothing ever ran here, and none is started for a look
    running, queued = built.counts() if built is not None else (0, 0)
    return ExecutorReading(running, queued, conf.executor_max_workers, conf.executor_max_queued)


def collect(database: str) -> list[Check]:
    """Every check of the page, as this process sees it: ``database`` first, then the other
    databases this process follows."""
    conf = settings_from_odoo_conf()
    followers = coherence.followers()
    databases = (database, *sorted(name for name in followers if name != database))
    urls = relay_urls(conf.relay_ops_urls)
    readings: dict[str, Callable[[], Any]] = {
        "redis": _ping_redis,
        "amqp": _lend_amqp,
        "epochs " + ",".join(databases): partial(_read_epochs, databases),
    }
    readings.update({"relay " + url: partial(_read_replica, url) for url in urls})
    results = _runner.get().run(readings, PROBE_DEADLINE_S)

    epochs = results["epochs " + ",".join(databases)]
    replicas = [results["relay " + url] for url in urls]
    replicas = [r if isinstance(r, ReplicaReading) else ReplicaReading(url, r, r) for url, r in zip(urls, replicas, strict=True)]
    checks: list[Check] = []
    for index, name in enumerate(databases):
        checks.append(follower_check(name, _follower_reading(conf.cache_coherence, followers.get(name))))
        epoch = epochs if isinstance(epochs, Failed) else epochs[index]
        checks.extend(relay_checks(name, epoch, replicas, configured=bool(urls)))
    pool = amqp_pool()
    checks.append(redis_check(results["redis"], conf.redis_url))
    checks.append(amqp_check(results["amqp"], conf.amqp_url, pool.opened, pool.size))
    checks.append(executor_check(_executor_reading()))
    return checks


def process_label() -> str:
    """Which process answered: the page is about this worker."""
    return "%s, pid %d" % (os.uname().nodename, os.getpid())
