"""The suite's deterministic hash: one frozen function for advisory-lock keys and model keys.

Python's builtin ``hash()`` of a ``str`` is salted per process (``PYTHONHASHSEED``), so two
Odoo workers would take *different* advisory locks for the same resource. Every lock key and
every model key of the suite comes from :func:`deterministic_hash` instead.

Algorithm (frozen, pinned by tests; changing it would split a running cluster in two):

* canonical encoding of the parts: ``json.dumps(list(parts), separators=(",", ":"),
  ensure_ascii=False)`` encoded as UTF-8. Only ``str`` and ``int`` (not ``bool``) parts are
  accepted, so ``("a", 1)`` and ``("a", "1")`` never collide and no float formatting can vary;
* digest: BLAKE2b with an 8-byte digest (stdlib, no key, no salt, no personalization);
* result: the digest read as a big-endian *signed* 64-bit integer, which is exactly
  PostgreSQL's ``bigint`` range accepted by ``pg_advisory_xact_lock(bigint)``.
"""

from __future__ import annotations

import hashlib
import json

BIGINT_MIN = -(2**63)
BIGINT_MAX = 2**63 - 1


def canonical_encoding(*parts: str | int) -> bytes:
    """The exact bytes that are hashed for ``parts`` (documented, stable across versions)."""
    if not parts:
        raise ValueError("deterministic_hash needs at least one part")
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, (str, int)):
            raise TypeError("deterministic_hash accepts str and int parts only, got %r" % type(part).__name__)
    return json.dumps(list(parts), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def deterministic_hash(*parts: str | int) -> int:
    """A signed 64-bit integer, identical for identical ``parts`` on every process and host."""
    digest = hashlib.blake2b(canonical_encoding(*parts), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
