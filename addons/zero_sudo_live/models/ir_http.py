from odoo import models


class IrHttp(models.AbstractModel):
    _inherit = "ir.http"

    def session_info(self):
        """The web client's live-update settings, for internal users (the backend's users)."""
        info = super().session_info()
        if self.env.user._is_internal():
            info["zero_sudo_live"] = self.env["zero_sudo.live"]._client_config()
        return info
