"""``zero-sudo-daemons``: the README's main command, one child process per daemon.

Each daemon runs in a process of its own (they compete for CPU, not for a GIL) with the same
flags and environment. The launcher forwards SIGTERM/SIGINT to every child and waits for
their graceful shutdown; when one child dies on its own, it stops the others and exits with
that child's code, so the outer process manager (systemd, docker's restart policy) restarts
the set and the failure is never hidden.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

# daemon name → module run with ``python -m``
DAEMONS: dict[str, str] = {
    "relay": "zero_sudo_daemons.relay",
    "landing": "zero_sudo_daemons.landing",
    "poller": "zero_sudo_daemons.poller",
    "gateway": "zero_sudo_daemons.gateway",
}

SHUTDOWN_GRACE_S = 20.0  # a child still running this long after SIGTERM is killed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="zero-sudo-daemons",
        description="Run the zero_sudo daemons; every other flag is passed to each daemon (see zero-sudo-relay --help).",
    )
    parser.add_argument("--only", default=",".join(DAEMONS), help="comma-separated daemons to run (default: %(default)s)")
    args, passthrough = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in names if name not in DAEMONS]
    if unknown or not names:
        parser.error("unknown daemon(s) %s; choose from %s" % (", ".join(unknown) or "(none)", ", ".join(DAEMONS)))

    children = {name: subprocess.Popen([sys.executable, "-m", DAEMONS[name], *passthrough]) for name in names}
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:  # second signal: the children force their exit too
            for child in children.values():
                if child.poll() is None:
                    child.send_signal(signum)
            return
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    exit_code = 0
    kill_at: float | None = None
    while any(child.poll() is None for child in children.values()):
        for name, child in children.items():
            code = child.poll()
            if code is not None and not stopping:
                print("zero-sudo-daemons: %s exited with code %d; stopping the others" % (name, code), file=sys.stderr)
                exit_code = code or 1
                forward(signal.SIGTERM, None)
        if stopping and kill_at is None:
            kill_at = time.monotonic() + SHUTDOWN_GRACE_S
        if kill_at is not None and time.monotonic() > kill_at:
            for child in children.values():
                if child.poll() is None:
                    child.kill()
        time.sleep(0.2)
    return exit_code


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
