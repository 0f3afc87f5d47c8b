from odoo import _, http, models
from odoo.exceptions import AccessError


class ResUsers(models.Model):
    _inherit = "res.users"

    def action_zero_sudo_logout_everywhere(self):
        """Delete every Redis session of these users, on every web node at once."""
        if not self.env.user._is_system() and self != self.env.user:
            raise AccessError(_("Only administrators can log other users out."))
        store = http.root.session_store
        total = sum(store.logout_everywhere(self.env.cr.dbname, user.id) for user in self)
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"message": _("%(count)s sessions closed.", count=total), "type": "success", "sticky": False},
        }
