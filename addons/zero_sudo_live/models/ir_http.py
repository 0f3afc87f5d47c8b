from odoo import models


class IrHttp(models.AbstractModel):
    _inherit = "ir.http"

    def session_info(self):
        """The web client's live-update settings, for internal users (the backend's users),
        whose session then grants their channels to the gateway."""
        info = super().session_info()
        if self.env.user._is_internal():
            live = self.env["zero_sudo.live"]
            live._store_session_grants()
            info["zero_sudo_live"] = live._client_config()
        return info
