"""make bench-cache: coherent ormcache across 2 prefork workers, against stock invalidation.

Runs with Odoo's Python (scripts/odoo_bench.sh). It starts a real Odoo with ``--workers 2``
(zero_sudo server-wide) and the relay, creates articles (model Y, resolved by slug through
``@tools.ormcache``) and notes (model X, with change events), then:

(a) renames articles one at a time (writes to Y) and, for each, times how long after the
    commit each worker dropped the old entry: each worker reports, over HTTP, the wall-clock
    moment its cache follower dropped the model's entries, polled until both workers answered
    that the old slug is gone;
(b) runs a steady stream of cached slug lookups through both workers while notes are written
    at a rising rate, first with zero_sudo's targeted invalidation, then the stock way (each
    note write followed by ``registry.clear_cache()``, which Odoo signals through the
    database so that every worker empties its caches), and compares Y's hit ratios.
(c) the cost per event of dropping one model's entries with the cache full (8 192 entries,
    50 models): through the model index, and by scanning every key as before it, in one run.

Last line: BENCH cache p50_ms=… p99_ms=… hit_ratio=… clear_cache_hit_ratio=… drop_us_full_cache=… drop_us_scan=…
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

# This script runs on Odoo's Python, which has none of the daemons' dependencies: the relay
# runs on the project's (scripts/odoo_bench.sh says which).
DAEMONS_PYTHON = os.environ.get("ZERO_SUDO_DAEMONS_PYTHON", sys.executable)
ARTICLES = 50
LOOKUP_THREADS = 4
WRITE_RATES = (10, 50, 150)  # notes per second, rising; each step lasts PHASE_S
PHASE_S = 4.0
RENAMES = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, dict]:
    import json

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Stack:
    """Odoo with two prefork workers, and the relay, on the benchmark's database."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        conf = os.environ["ODOO_RC"]
        odoo_bin = os.environ["ODOO_BIN"]
        self.odoo = subprocess.Popen(
            [
                sys.executable,
                odoo_bin,
                "-c",
                conf,
                "-d",
                database,
                "--workers",
                "2",
                "--max-cron-threads",
                "0",
                "--http-port",
                str(self.port),
                "--gevent-port",
                str(free_port()),
                "--limit-time-real",
                "600",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.relay = subprocess.Popen(
            [
                DAEMONS_PYTHON,
                "-m",
                "zero_sudo_daemons.relay",
                "--config",
                conf,
                "--db-name",
                database,
                "--relay-http-port",
                str(free_port()),
                "--log-level",
                "WARNING",
            ],
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if get(self.base + "/web/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit("Odoo did not start")

    def stop(self) -> None:
        for proc in (self.odoo, self.relay):
            proc.send_signal(signal.SIGTERM)
        for proc in (self.odoo, self.relay):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def cache_stats(self) -> tuple[int, int]:
        """Hits and misses of the slug resolver, summed over both workers."""
        stats: dict[int, tuple[int, int]] = {}
        while len(stats) < 2:
            _status, body = get(self.base + "/zero_sudo_test/slug_cache_stats")
            stats[body["pid"]] = (body["hit"], body["miss"])
        return sum(h for h, _m in stats.values()), sum(m for _h, m in stats.values())


def renames(stack: Stack, env, articles) -> list[float]:
    """(a): for each rename, ms from commit until no worker serves the old slug."""
    latencies = []
    for n in range(RENAMES):
        article = articles[n % len(articles)]
        old = article.slug
        for _ in range(20):  # both workers have the old slug cached
            get(stack.base + "/zero_sudo_test/resolve/" + old)
        article.name = "Renamed %d" % n
        env.flush_all()
        committed = time.time()  # taken as COMMIT is sent: its own duration counts in the figure
        env.cr.commit()
        gone_at: dict[int, float] = {}
        deadline = time.monotonic() + 10
        while len(gone_at) < 2:
            if time.monotonic() > deadline:
                raise SystemExit("a worker kept the old slug for 10 s: %r" % gone_at)
            _status, body = get(stack.base + "/zero_sudo_test/resolve/" + old)
            if body["id"] is None and (body["invalidated_at"] or 0) >= committed:
                gone_at.setdefault(body["pid"], body["invalidated_at"])
        latencies.extend((at - committed) * 1000 for at in gone_at.values())
    return latencies


def hit_ratio(stack: Stack, registry, env, stock: bool) -> float:
    """(b): Y's hit ratio while X is written at a rising rate."""
    from odoo import SUPERUSER_ID, api

    slugs = [a.slug for a in env["zero_sudo.test.article"].search([])]
    stop = threading.Event()

    def lookups(offset: int) -> None:
        n = offset
        while not stop.is_set():
            get(stack.base + "/zero_sudo_test/resolve/" + slugs[n % len(slugs)])
            n += 1

    for slug in slugs:  # warm both workers
        for _ in range(4):
            get(stack.base + "/zero_sudo_test/resolve/" + slug)
    hits0, misses0 = stack.cache_stats()
    with ThreadPoolExecutor(max_workers=LOOKUP_THREADS) as pool:
        for offset in range(LOOKUP_THREADS):
            pool.submit(lookups, offset * 7)
        with registry.cursor() as cr:
            writer = api.Environment(cr, SUPERUSER_ID, {})
            note = writer["zero_sudo.test.note"].create({"name": "note"})
            cr.commit()
            for rate in WRITE_RATES:
                phase_end = time.perf_counter() + PHASE_S
                while time.perf_counter() < phase_end:
                    note.name = "note %f" % time.perf_counter()
                    if stock:
                        registry.clear_cache()  # what Odoo does without zero_sudo
                    cr.commit()
                    if stock:
                        registry.signal_changes()
                    time.sleep(1.0 / rate)
        stop.set()
    hits, misses = stack.cache_stats()
    hits, misses = hits - hits0, misses - misses0
    return hits / (hits + misses) if hits + misses else 0.0


# A worker's caches as they are at their fullest: Odoo's default ormcache size, spread over
# 50 models, each event dropping one model's entries (which are then cached again).
FULL_CACHE_ENTRIES = 8192
CACHED_MODELS = 50
DROP_ROUNDS = 20


def scan_drop(cache, models: set[str]) -> int:
    """How entries were dropped before the model index: every key of the cache looked at."""
    with cache._lock:
        doomed = [key for key in cache.d if type(key) is tuple and key and key[0] in models]
        for key in doomed:
            del cache.d[key]
    return len(doomed)


def drop_cost_us(drop) -> float:
    """Median µs to drop one model's entries from a full cache, for ``drop(cache, {model})``."""
    from odoo.addons.zero_sudo.tools.coherence import CoherentLRU

    cache = CoherentLRU(FULL_CACHE_ENTRIES)
    models = ["bench.model.%d" % m for m in range(CACHED_MODELS)]
    per_model = FULL_CACHE_ENTRIES // CACHED_MODELS

    def fill(model: str) -> None:
        for n in range(per_model):
            cache[(model, "_lookup", n)] = n

    for model in models:
        fill(model)
    timings = []
    for _round in range(DROP_ROUNDS):
        for model in models:
            started = time.perf_counter()
            dropped = drop(cache, {model})
            timings.append((time.perf_counter() - started) * 1e6)
            assert dropped == per_model, dropped
            fill(model)
    return percentile(timings, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True)
    args = parser.parse_args()

    import odoo
    from odoo import SUPERUSER_ID, api
    from odoo.modules.registry import Registry

    odoo.tools.config.parse_config(["-c", os.environ["ODOO_RC"], "-d", args.database])
    registry = Registry(args.database)
    indexed, scanned = drop_cost_us(lambda cache, models: cache.drop_models(models)), drop_cost_us(scan_drop)
    print(
        "(c) dropping one model's entries from a full cache (%d entries, %d models): %.1f µs indexed, %.1f µs scanning (%.0fx)"
        % (FULL_CACHE_ENTRIES, CACHED_MODELS, indexed, scanned, scanned / indexed),
        flush=True,
    )
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        env["zero_sudo.test.article"].create([{"name": "Bench Article %d" % n} for n in range(ARTICLES)])
        cr.commit()
    stack = Stack(args.database)
    try:
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            articles = env["zero_sudo.test.article"].search([], limit=20)
            latencies = renames(stack, env, articles)
            p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
            print(
                "(a) %d renames: old slug gone from both workers p50 %.1f ms, p99 %.1f ms, max %.1f ms"
                % (RENAMES, p50, p99, max(latencies)),
                flush=True,
            )
            targeted = hit_ratio(stack, registry, env, stock=False)
            print("(b) hit ratio of Y while X is written at %s/s: zero_sudo %.4f" % (WRITE_RATES, targeted), flush=True)
            stock = hit_ratio(stack, registry, env, stock=True)
            print("    same load, registry.clear_cache() on each write of X: %.4f" % stock, flush=True)
    finally:
        stack.stop()
    print(
        "BENCH cache p50_ms=%.1f p99_ms=%.1f hit_ratio=%.4f clear_cache_hit_ratio=%.4f drop_us_full_cache=%.1f drop_us_scan=%.1f"
        % (p50, p99, targeted, stock, indexed, scanned)
    )


if __name__ == "__main__":
    main()
