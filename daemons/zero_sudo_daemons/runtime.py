"""What every daemon shares at run time: uvloop, signals, and the one supervisor loop.

A daemon's ``main(stopping)`` coroutine runs under uvloop. The first SIGTERM or SIGINT sets
``stopping`` so the daemon shuts down in order (stop accepting, drain, close); a second one
forces the exit at once. :func:`supervise` is the outer recovery loop around a work loop:
it retries only :class:`TransientError` and the errors the daemon lists as transient, with
jittered exponential backoff, and lets anything else crash the process (a bug is not
retried forever; the process manager restarts it and the log says why).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import gc
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

import uvloop
from prometheus_client import CollectorRegistry

from zero_sudo_bus.backoff import Backoff

from .errors import ConfigurationError, TransientError, operator_problem
from .logs import configure_logging
from .ops_http import OpsServer, listening
from .settings import OPTIONS, Settings, resolve_settings

_logger = logging.getLogger(__name__)

# A work loop that ran this long before failing counts as a success: the next failure
# starts again from the smallest backoff instead of the largest.
STABLE_RUN_S = 30.0

FORCED_EXIT_CODE = 130


class Role(enum.StrEnum):
    """What a daemon is doing, as its /healthz ``role`` says (the strings are an interface:
    probes, dashboards and the tests read them). Each daemon uses the ones that apply."""

    STARTING = "starting"  # not connected yet
    STANDBY = "standby"  # relay: connected, waiting for the leader lock
    ACTIVE = "active"  # relay: holds the leader lock and relays
    CONSUMING = "consuming"  # landing: consuming its queue
    POLLING = "polling"  # poller: polling its sources; relay of many databases: discovering them
    RECOVERING = "recovering"  # a connection was lost; the supervisor retries after a backoff
    STOPPED = "stopped"  # stopped in order after SIGTERM


# A database to create or an addon to install waits for a person: a slow retry notices it is
# done soon enough, without a failed connection every few seconds.
OPERATOR_RETRY_S = 15.0


@contextlib.asynccontextmanager
async def task_group() -> AsyncIterator[asyncio.TaskGroup]:
    """An :class:`asyncio.TaskGroup` that raises the first failure itself, not wrapped.

    A TaskGroup wraps whatever failed in an ``ExceptionGroup``, but :func:`supervise` retries
    by exception type (a lost connection is retried, a bug crashes the process): the first
    failure is what ended the group, the others are the cancellations it caused.
    """
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None


async def wait_or_stop(stopping: asyncio.Event, delay: float) -> bool:
    """Sleep ``delay`` seconds unless ``stopping`` is set first; True if stopping."""
    try:
        async with asyncio.timeout(delay):
            await stopping.wait()
    except TimeoutError:
        return False
    return True


async def supervise(
    name: str,
    work: Callable[[], Awaitable[None]],
    stopping: asyncio.Event,
    transient: tuple[type[BaseException], ...] = (),
    backoff: Backoff | None = None,
    on_failure: Callable[[BaseException], None] | None = None,
) -> None:
    """Run ``work`` until ``stopping`` is set, restarting it after transient failures.

    A failure only an operator can fix (:func:`~.errors.operator_problem`) is reported once,
    with the fix, and retried every :data:`OPERATOR_RETRY_S`; the same problem again is
    logged at debug level only.
    """
    backoff = backoff or Backoff()
    operator_backoff = Backoff(base=OPERATOR_RETRY_S, cap=OPERATOR_RETRY_S)
    loop = asyncio.get_running_loop()
    retry_on = (TransientError, *transient)
    reported: str | None = None
    while not stopping.is_set():
        started = loop.time()
        try:
            await work()
        except retry_on as exc:
            if on_failure is not None:
                on_failure(exc)
            if loop.time() - started > STABLE_RUN_S:
                backoff.reset()
            problem = operator_problem(exc)
            if problem is None:
                reported = None
                delay = backoff.next_delay()
                _logger.warning("%s failed, recovering error=%r retry_in=%.2fs", name, exc, delay)
            else:
                delay = operator_backoff.next_delay()
                if problem != reported:
                    _logger.error("%s waiting: %s (retrying about every %.0fs)", name, problem, OPERATOR_RETRY_S)
                    reported = problem
                else:
                    _logger.debug("%s still waiting: %s", name, problem)
            await wait_or_stop(stopping, delay)


def _install_signal_handlers(stopping: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stopping.is_set():
            _logger.warning("second %s: forcing exit", signal.Signals(signum).name)
            os._exit(FORCED_EXIT_CODE)
        _logger.info("%s received: shutting down (send it again to force)", signal.Signals(signum).name)
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


def run_daemon(main: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Run ``main(stopping)`` on uvloop with graceful signal handling; the process exit code."""

    async def _entry() -> None:
        # Everything allocated while starting up lives as long as the process: moving it out
        # of the collector's sight makes each of the frequent young-generation collections
        # that a busy daemon triggers cheaper.
        gc.freeze()
        stopping = asyncio.Event()
        _install_signal_handlers(stopping)
        await main(stopping)

    uvloop.run(_entry())
    return 0


class Daemon(Protocol):
    """What :func:`daemon_main` runs: a work loop with metrics and a health check."""

    @property
    def registry(self) -> CollectorRegistry: ...

    def health(self) -> tuple[bool, dict[str, Any]]: ...

    async def run(self, stopping: asyncio.Event) -> None: ...


# (daemon, ops host, ops port); (daemon, None, None) for a daemon whose own HTTP server
# answers /healthz and /metrics (the gateway).
DaemonFactory = Callable[[Settings], tuple[Daemon, str | None, int | None]]


async def serve_with_ops(
    daemon: Daemon,
    host: str,
    port: int,
    stopping: asyncio.Event,
    host_option: str = "ops host",
    port_option: str = "ops port",
) -> None:
    """Run ``daemon`` with its /healthz and /metrics endpoint until ``stopping`` is set.

    The endpoint binds first: a port in use stops the daemon (one line naming ``port_option``)
    before it connects to anything.
    """
    ops = OpsServer(host, port, daemon.registry, daemon.health)
    with listening(host_option, host, port_option, port):
        await ops.start()
    try:
        await daemon.run(stopping)
    finally:
        await ops.stop()


def _listen_options(prog: str, settings: Settings, host: str, port: int) -> tuple[str, str]:
    """The keys the ops address came from, for error messages: a daemon's own keys first.

    The factories return the values (``s.relay_http_host, s.relay_http_port``); looking the
    keys up here keeps the factories short and the messages exact.
    """
    own = prog.rsplit("-", 1)[-1] + "_"

    def key(suffix: str, value: object) -> str | None:
        names = [o.name for o in OPTIONS if o.name.endswith(suffix) and getattr(settings, o.name) == value]
        names.sort(key=lambda name: not name.startswith(own))
        return names[0] if names else None

    return key("_host", host) or "ops host", key("_port", port) or "ops port"


def _refuse(prog: str, exc: ConfigurationError) -> int:
    """Print the one line that says which setting is wrong; exit code 2, as argparse uses."""
    print("%s: %s" % (prog, " ".join(str(exc).split())), file=sys.stderr)
    return 2


def daemon_main(prog: str, description: str, argv: Sequence[str] | None, build: DaemonFactory) -> int:
    """A daemon's whole command line: settings (one clear line when wrong), logs, run.

    ``build(settings)`` returns the daemon and the address of its ops endpoint. A
    :class:`ConfigurationError` raised while starting (a bad value, a port in use) ends the
    process with one line on stderr and exit code 2, never a traceback.
    """
    try:
        settings = resolve_settings(sys.argv[1:] if argv is None else argv, os.environ, prog, description)
        daemon, host, port = build(settings)
    except ConfigurationError as exc:
        return _refuse(prog, exc)
    configure_logging(settings.log_level, settings.log_format)
    try:
        if host is None or port is None:
            return run_daemon(daemon.run)
        host_option, port_option = _listen_options(prog, settings, host, port)
        return run_daemon(lambda stopping: serve_with_ops(daemon, host, port, stopping, host_option, port_option))
    except ConfigurationError as exc:
        return _refuse(prog, exc)
