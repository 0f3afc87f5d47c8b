"""``zero-sudo-daemons``: the README's main command, one child process per daemon.

Each daemon runs in a process of its own (they compete for CPU, not for a GIL) with the same
flags and environment, in a process group of its own: Ctrl-C in a terminal, or a signal to
the launcher's whole group (as ``timeout`` and process managers send), reaches the launcher
only, which forwards it once, so each daemon sees one signal and shuts down gracefully (a
daemon takes a second signal as "force the exit"). A child dies with the launcher, even a
SIGKILLed one (Linux's parent-death signal). The launcher waits for their graceful shutdown; when one child dies on its own, it stops the others and exits with
that child's code, so the outer process manager (systemd, docker's restart policy) restarts
the set and the failure is never hidden. The settings are checked once before any child
starts: a bad value is one line and exit code 2, as from a single daemon, not one line per
child followed by the others being stopped.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from .errors import ConfigurationError
from .settings import resolve_settings

PROG = "zero-sudo-daemons"

# daemon name → module run with ``python -m``
DAEMONS: dict[str, str] = {
    "relay": "zero_sudo_daemons.relay",
    "landing": "zero_sudo_daemons.landing",
    "poller": "zero_sudo_daemons.poller",
    "gateway": "zero_sudo_daemons.gateway",
}

SHUTDOWN_GRACE_S = 20.0  # a child still running this long after SIGTERM is killed
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the launcher dies, however it dies."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _describe_exit(code: int) -> tuple[str, int]:
    """How a child ended, and the code to exit with: a signal is 128 + its number, as a shell says."""
    if code < 0:
        return "was killed by %s" % signal.Signals(-code).name, 128 - code
    return "exited with code %d" % code, code or 1  # exiting 0 on its own is still a failure


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run the zero_sudo daemons; every other flag is passed to each daemon (see zero-sudo-relay --help).",
    )
    parser.add_argument("--only", default=",".join(DAEMONS), help="comma-separated daemons to run (default: %(default)s)")
    args, passthrough = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in names if name not in DAEMONS]
    if unknown or not names:
        print(
            "%s: --only: unknown daemon(s) %s; choose from %s" % (PROG, ", ".join(unknown) or "(none)", ", ".join(DAEMONS)),
            file=sys.stderr,
        )
        return 2
    try:
        resolve_settings(passthrough, os.environ, PROG)
    except ConfigurationError as exc:
        print("%s: %s" % (PROG, " ".join(str(exc).split())), file=sys.stderr)
        return 2

    children = {
        name: subprocess.Popen([sys.executable, "-m", DAEMONS[name], *passthrough], process_group=0, preexec_fn=_die_with_parent)
        for name in names
    }
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
    # Check for a dead child before checking whether any is alive: a child that fails at once
    # (a port in use) may be gone before the first round, and its code must not be lost.
    while True:
        for name, child in children.items():
            code = child.poll()
            if code is not None and not stopping:
                how, exit_code = _describe_exit(code)
                print("%s: %s %s; stopping the others" % (PROG, name, how), file=sys.stderr)
                forward(signal.SIGTERM, None)
        if all(child.poll() is not None for child in children.values()):
            break
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
