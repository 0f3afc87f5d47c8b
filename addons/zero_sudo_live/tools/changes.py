"""What a transaction's change events say, reduced to what other users can notice (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from zero_sudo_bus.protocol import Op

Pending = Mapping[tuple[str, Op], Mapping[int, None]]


def net_changes(pending: Pending) -> dict[tuple[str, Op], list[int]]:
    """The IDs to announce per (model, op), in the order they were first changed.

    Seen from another transaction, a record created here is new whatever was written to it
    afterwards (recomputed fields after the INSERT, for one), and a record deleted here is
    gone whatever was written to it before: those writes are dropped. A record created and
    deleted in the same transaction never existed for anyone else: nothing is said of it.
    """
    result: dict[tuple[str, Op], list[int]] = {}
    models = dict.fromkeys(model for model, _op in pending)
    for model in models:
        created = pending.get((model, Op.CREATE), {})
        unlinked = pending.get((model, Op.UNLINK), {})
        ephemeral = created.keys() & unlinked.keys()
        for op, ids in (
            (Op.CREATE, [i for i in created if i not in ephemeral]),
            (Op.WRITE, [i for i in pending.get((model, Op.WRITE), {}) if i not in created and i not in unlinked]),
            (Op.UNLINK, [i for i in unlinked if i not in ephemeral]),
        ):
            if ids:
                result[(model, op)] = ids
    return result
