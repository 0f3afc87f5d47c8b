"""Every change this addon makes to Odoo itself, in one place: :func:`install`.

Called once per process from the manifest's ``post_load`` hook (zero_sudo is a server-wide
module, so this happens before any registry is loaded):

1. ``odoo.http.root.session_store`` becomes the Redis session store;
2. ``Registry.init`` gives every registry coherent caches (``CoherentLRU``);
3. ``Registry.check_signaling`` (run by each request and cron job) makes sure this process
   follows the database's relay channel, also in freshly forked prefork workers;
4. ``sql_db.Cursor`` ``__init__``, ``commit``, ``rollback`` and ``_close`` stamp transactions
   for the stale-entry guard.
"""

import functools
import logging
from collections.abc import Callable

from odoo import http, sql_db
from odoo.modules.registry import Registry
from odoo.tools.func import lazy_property

from .tools import coherence
from .tools.session_store import RedisSessionStore

_logger = logging.getLogger(__name__)

PATCHED = "_zero_sudo_patched"


def _wrap(owner: type, name: str, make: Callable[[Callable], Callable]) -> None:
    original = getattr(owner, name)
    if getattr(original, PATCHED, False):
        return
    wrapper = functools.wraps(original)(make(original))
    setattr(wrapper, PATCHED, True)
    setattr(owner, name, wrapper)


def _registry_init(original):
    def init(self, db_name):
        original(self, db_name)
        coherence.make_coherent(self)

    return init


def _check_signaling(original):
    def check_signaling(self, cr=None):
        coherence.follow(self.db_name)
        return original(self, cr)

    return check_signaling


def _cursor_init(original):
    def __init__(self, *args, **kwargs):  # noqa: N807 (it replaces Cursor.__init__)
        original(self, *args, **kwargs)
        coherence.guard.get().begin(id(self))

    return __init__


def _cursor_restart(original):
    def restart(self):
        result = original(self)
        coherence.guard.get().begin(id(self))
        return result

    return restart


def _cursor_close(original):
    def _close(self, *args, **kwargs):
        try:
            return original(self, *args, **kwargs)
        finally:
            coherence.guard.get().end(id(self))

    return _close


def session_store(_application):
    """The Redis store, built on first use (lazy_property names the attribute after this function)."""
    return RedisSessionStore()


def install() -> None:
    """Apply every patch (idempotent)."""
    if not getattr(http.Application.session_store, PATCHED, False):
        store = lazy_property(session_store)
        setattr(store, PATCHED, True)
        http.Application.session_store = store
        http.root.__dict__.pop("session_store", None)  # a store built before the patch
    _wrap(Registry, "init", _registry_init)
    _wrap(Registry, "check_signaling", _check_signaling)
    _wrap(sql_db.Cursor, "__init__", _cursor_init)
    _wrap(sql_db.Cursor, "commit", _cursor_restart)
    _wrap(sql_db.Cursor, "rollback", _cursor_restart)
    _wrap(sql_db.Cursor, "_close", _cursor_close)
    for registry in list(Registry.registries.d.values()):
        coherence.make_coherent(registry)
    _logger.info("zero_sudo: Redis sessions, coherent caches and the stale-entry guard installed")
