"""make bench-failover: the Redis master killed under writes and logins, everything on Sentinels.

One run of ``tests/failover_scenario.py`` (a real Odoo 18 in prefork, the relay, the gateway,
a private master, replica and three Sentinels with down-after-milliseconds 1000): the master
is killed while four threads write partners and log in.

redis_failover_s: kill → the Sentinels name the promoted replica; relay_resumed_s: that →
the relay's new epoch on it (its start flush follows at once; target ≤ 2 s); sessions_lost:
of the logins made before the kill, each acknowledged by the replica (WAIT), how many no
longer authenticate (target 0); requests_failed: requests of the stream that failed (during
the failover, before the pools' retries reach the new master).
Last line: BENCH failover redis_failover_s=… relay_resumed_s=… sessions_lost=… requests_failed=…
"""

from __future__ import annotations

import sys

from failover_scenario import run_failover
from live_stack import find_odoo


def main() -> int:
    odoo = find_odoo()
    if odoo is None:
        print("bench-failover: no Odoo 18 found (ODOO_PATH, see README 'Odoo suites')", file=sys.stderr)
        return 2
    report = run_failover(odoo)
    print(
        "requests=%d longest_request_s=%.2f hung=%d epochs %s -> %s relay_flushes=%d followers %d -> %d "
        "gateway_resynced=%s gateway_events_of_new_epoch=%d sessions_before=%d"
        % (
            report.requests,
            report.longest_request_s,
            report.requests_hung,
            report.epoch_before,
            report.epoch_after,
            report.relay_flushes,
            len(report.followers_before),
            len(report.followers_after),
            report.gateway_resynced,
            report.gateway_events_of_new_epoch,
            report.sessions_before,
        )
    )
    print(
        "BENCH failover redis_failover_s=%.2f relay_resumed_s=%.2f sessions_lost=%d requests_failed=%d"
        % (report.redis_failover_s, report.relay_resumed_s, report.sessions_lost, report.requests_failed)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
