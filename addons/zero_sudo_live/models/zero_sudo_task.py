import logging

from odoo import models

from ..tools.push import Level

_logger = logging.getLogger(__name__)

# Key of the cursor's precommit data: {task id: attachment id} of what finished tasks returned.
RESULTS = "zero_sudo_live.task_results"


class Task(models.Model):
    """Tells the user who started a background task that it finished, and nobody else.

    Every zero_sudo task (a background export, a GDPR erasure, any ``_submit``) ends with
    ``write({"state": "done" | "failed"})`` in the transaction that commits its work: the
    notification is pushed to ``user_id`` when that transaction commits. A task whose method
    returns one attachment (the export to an attachment does) gets a download button.
    """

    _inherit = "zero_sudo.task"

    def _target(self):
        target = super()._target()
        task_id, cr = self.id, self.env.cr

        def run(*args, **kwargs):
            result = target(*args, **kwargs)
            if isinstance(result, models.BaseModel) and result._name == "ir.attachment" and len(result) == 1:
                cr.precommit.data.setdefault(RESULTS, {})[task_id] = result.id
            return result

        return run

    def write(self, vals):
        result = super().write(vals)
        if vals.get("state") in ("done", "failed"):
            for task in self:
                task._zero_sudo_live_notify_finished()
        return result

    def _zero_sudo_live_notify_finished(self) -> None:
        self.ensure_one()
        env = self.with_context(lang=self.user_id.lang).env
        if self.state == "done":
            attachment_id = self.env.cr.precommit.data.get(RESULTS, {}).get(self.id)
            url = "/web/content/%d?download=true" % attachment_id if attachment_id else None
            message = env._("%(task)s is done.", task=self.name)
            level = Level.SUCCESS
        else:
            url = None
            message = env._("%(task)s failed: %(error)s", task=self.name, error=self.error or "")
            level = Level.DANGER
        self.env["zero_sudo.live"]._notify(
            self.user_id,
            message,
            title=env._("Background task"),
            level=level,
            sticky=bool(url),
            url=url,
            url_label=env._("Download"),
        )
