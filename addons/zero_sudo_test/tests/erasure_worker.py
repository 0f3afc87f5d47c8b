"""One queued GDPR erasure task run in a process of its own, as a server's executor runs it
(``_run_task``: the task's lease held, then its cursors).

test_gdpr_at_scale starts it, may SIGKILL it, and reads its last line of output (JSON): the
peak RSS growth in MB while the task ran, each chunk's duration in ms (from the eraser's own
debug log: from the chunk's first query to its commit), and how the task ended.

Usage: python erasure_worker.py CONFIG DATABASE TASK_ID
"""

import json
import logging
import re
import sys

CHUNK_LOG = re.compile(r"chunk committed in ([0-9.]+) ms")


class ChunkDurations(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.ms: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = CHUNK_LOG.search(record.getMessage())
        if match:
            self.ms.append(float(match.group(1)))


def _status_mb(key: str) -> float:
    """VmRSS or VmHWM (the peak since the last reset) of this process, in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no %s in /proc/self/status" % key)


def main(config: str, database: str, task_id: int) -> None:
    import odoo
    from odoo import SUPERUSER_ID, api
    from odoo.modules.registry import Registry

    odoo.tools.config.parse_config(["-c", config, "-d", database])
    durations = ChunkDurations()
    eraser_log = logging.getLogger("odoo.addons.zero_sudo_gdpr")
    eraser_log.setLevel(logging.DEBUG)
    eraser_log.propagate = False
    eraser_log.addHandler(durations)
    registry = Registry(database)
    from odoo.addons.zero_sudo.models.task import _run_task  # importable once the registry loaded the addons path

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        request = env["zero_sudo.task"].browse(task_id)._records()
        request.line_ids.rule_id.mapped("model")  # what any run loads first
    before = _status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # VmHWM starts again from the current RSS
    _run_task(database, task_id)
    growth = _status_mb("VmHWM") - before
    with registry.cursor() as cr:
        cr.execute("SELECT state, error FROM zero_sudo_task WHERE id = %s", [task_id])
        state, error = cr.fetchone()
    print(json.dumps({"rss_growth_mb": growth, "chunk_ms": durations.ms, "state": state, "error": error}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
