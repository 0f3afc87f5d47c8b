"""zero-sudo-daemons, the README's main command, stopped as a terminal or a process manager does."""

import os
import signal
import subprocess
import sys

from conftest import PG_HOST, free_port, wait_until


def start_launcher(db: str, *only: str) -> tuple[subprocess.Popen, int]:
    """The launcher in a process group of its own, as a terminal starts a foreground job."""
    port = free_port()
    launcher = subprocess.Popen(
        [sys.executable, "-m", "zero_sudo_daemons.launcher", "--only", ",".join(only), "--db-name", db]
        + ["--db-host", PG_HOST, "--relay-http-port", str(port), "--gateway-port", str(free_port())]
        + ["--log-format", "text"],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    return launcher, port


def relay_active(port: int) -> bool:
    import json
    import urllib.request

    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=1) as resp:
            return json.loads(resp.read())["role"] == "active"
    except OSError:
        return False


def test_ctrl_c_to_the_whole_group_stops_every_daemon_gracefully(pg_db):
    launcher, port = start_launcher(pg_db, "relay", "gateway")
    wait_until(lambda: relay_active(port), timeout=20, what="relay started by the launcher")
    os.killpg(launcher.pid, signal.SIGINT)  # what Ctrl-C does: every process of the group
    assert launcher.wait(15) == 0
    log = launcher.stderr.read()
    assert "relay stopped" in log
    assert "forcing exit" not in log, log


def test_the_daemons_die_with_a_killed_launcher(pg_db):
    launcher, port = start_launcher(pg_db, "relay")
    wait_until(lambda: relay_active(port), timeout=20, what="relay started by the launcher")
    launcher.kill()
    launcher.wait(5)
    wait_until(lambda: not relay_active(port), timeout=20, what="the orphaned relay to stop")
