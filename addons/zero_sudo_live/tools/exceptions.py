"""The exceptions zero_sudo_live raises on purpose (pure: no Odoo import)."""


class LiveError(Exception):
    """Base of every error the addon raises on purpose."""


class PushRefused(LiveError, ValueError):
    """A push cannot be sent: unknown user, payload not a JSON object, or too large.

    Raised at the call, inside the transaction, so the caller sees it; nothing was queued.
    """


class TokensDisabled(LiveError):
    """No ``gateway_token_secret`` is configured: Odoo cannot mint gateway tokens."""
