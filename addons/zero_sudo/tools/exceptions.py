"""The one exception hierarchy of the zero_sudo addon."""


class ZeroSudoError(Exception):
    """Base of every error the addon raises on purpose."""


class ConfigurationError(ZeroSudoError):
    """A key of the ``[zero_sudo]`` section of odoo.conf has an unusable value."""


class ExecutorFull(ZeroSudoError):
    """Every running and queued slot of the bounded executor is taken: answer 503.

    ``retry_after`` is the number of seconds a client should wait before trying again.
    """

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TaskTargetError(ZeroSudoError):
    """A task names a model or method that cannot be run in the background."""


class TaskLeaseError(ZeroSudoError):
    """A background task cannot hold its lease: no connection, or one through a pooler."""
