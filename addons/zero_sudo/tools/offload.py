"""The process's bounded executor for long-running work (see ``zero_sudo.task``)."""

from .executor import BoundedExecutor
from .per_process import PerProcess
from .settings import settings_from_odoo_conf


def _build_executor() -> BoundedExecutor:
    conf = settings_from_odoo_conf()
    return BoundedExecutor(conf.executor_max_workers, conf.executor_max_queued, conf.executor_retry_after)


executor: PerProcess[BoundedExecutor] = PerProcess(_build_executor)
