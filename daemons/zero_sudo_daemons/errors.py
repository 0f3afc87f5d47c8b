"""The daemons' exception hierarchy: what is transient (retry with backoff) and what is not."""

from __future__ import annotations


class ZeroSudoDaemonError(Exception):
    """Base of every error a zero_sudo daemon raises on purpose."""


class ConfigurationError(ZeroSudoDaemonError):
    """A setting is missing or malformed: fatal at start-up, never retried."""


class TransientError(ZeroSudoDaemonError):
    """A dependency went away (connection lost, server restarting): the supervisor retries."""


class ConnectionLost(TransientError):
    """A connection the work loop depends on closed under it."""
