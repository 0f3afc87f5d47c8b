"""Which gateway channels a user's token may grant, decided without any I/O.

The token route (``/my/gateway/token``) asks Odoo three questions per model (is it a model,
is it published, may this user read it) and hands the answers to :func:`plan_grants` as
callables, so every rule is tested with plain pytest. The channel grammar is the one the
gateway reads (``zero_sudo_bus.channels``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from zero_sudo_bus.channels import MAX_MODEL_NAME, MAX_SUBSCRIPTIONS, model_channel, parse_channel, user_channel_name

# A token is asked for on every (re)connection, and the gateway checks its expiry only then:
# five minutes covers a slow reconnection and bounds how long a revoked right survives in a
# token nobody has used yet.
TOKEN_TTL_S = 300

# A token that lists more channels than a gateway connection can hold is refused before it
# is signed.
MAX_GRANTED_CHANNELS = MAX_SUBSCRIPTIONS


class Refusal(enum.StrEnum):
    """Why a requested channel is not granted (the ``reason`` of the 403 answer)."""

    INVALID = "invalid"  # not a channel name
    FOREIGN_USER = "foreign_user"  # another user's channel
    UNKNOWN_MODEL = "unknown_model"  # no such model in this database
    NOT_PUBLISHED = "not_published"  # the model does not publish live changes
    NOT_READABLE = "not_readable"  # the user has no read access to the model
    TOO_MANY = "too_many"  # beyond MAX_GRANTED_CHANNELS


@dataclass(frozen=True)
class GrantPlan:
    """The channels a token will grant, and the requested ones it will not, with why."""

    granted: tuple[str, ...]
    refused: tuple[tuple[str, Refusal], ...]


def plan_grants(
    uid: int,
    requested: Sequence[str] | None,
    published: Iterable[str],
    exists: Callable[[str], bool],
    readable: Callable[[str], bool],
) -> GrantPlan:
    """Decide a token request of user ``uid``.

    Without ``requested``, the grant is the user's own channel plus every published model the
    user may read (what the web client asks for). With it, each named channel is checked and
    any refusal refuses the whole request (the caller answers 403 listing them): a client
    asking for something it may not have is told so, never silently given less.
    """
    if requested is None:
        models = sorted(model for model in set(published) if exists(model) and readable(model))
        granted = [user_channel_name(uid), *map(model_channel, models)]
        return GrantPlan(tuple(granted[:MAX_GRANTED_CHANNELS]), ())
    published_set = set(published)
    granted: list[str] = []
    refused: list[tuple[str, Refusal]] = []
    for name in dict.fromkeys(requested):
        channel = parse_channel(name)
        if channel is None:
            refused.append((str(name)[:MAX_MODEL_NAME], Refusal.INVALID))
            continue
        model, channel_uid = channel.model, channel.uid
        if channel_uid is not None:
            reason = None if channel_uid == uid else Refusal.FOREIGN_USER
        elif not exists(model):
            reason = Refusal.UNKNOWN_MODEL
        elif not readable(model):
            reason = Refusal.NOT_READABLE  # before "published": say what the user lacks
        elif model not in published_set:
            reason = Refusal.NOT_PUBLISHED
        else:
            reason = None
        if reason is not None:
            refused.append((name, reason))
        elif len(granted) >= MAX_GRANTED_CHANNELS:
            refused.append((name, Refusal.TOO_MANY))
        else:
            granted.append(name)
    return GrantPlan(tuple(granted), tuple(refused))


def parse_requested(raw: str | None) -> list[str] | None:
    """The ``channels`` query parameter (comma-separated) as a list; None when absent."""
    if raw is None:
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]
