"""Drop the cron "GDPR: resume stalled erasures": an erasure whose process died is now
resumed when zero_sudo.task's lease reaper fails its task (``_zero_sudo_task_died``).

The cron was ``noupdate`` data, which a module update leaves in place when its record is gone
from the data files; left alone it would call a method that no longer exists."""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    env = api.Environment(cr, SUPERUSER_ID, {})
    cron = env.ref("zero_sudo_gdpr.ir_cron_resume", raise_if_not_found=False)
    if cron:
        cron.unlink()
