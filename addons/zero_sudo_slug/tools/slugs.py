"""Slugs as plain functions: making one from a title, and choosing a free one."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection

MAX_SLUG_LENGTH = 80  # readable in a URL bar, far under the 2 kB URLs browsers keep
FALLBACK_SLUG = "item"  # for titles with no letter or digit at all ("???", "日本")
SLUG_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def slugify(title: str | None, max_length: int = MAX_SLUG_LENGTH) -> str:
    """``"Crème Brûlée: 2 ways!"`` → ``"creme-brulee-2-ways"``: ASCII, lower case, dashes."""
    ascii_text = unicodedata.normalize("NFKD", title or "").encode("ascii", "ignore").decode("ascii")
    slug = _NOT_ALNUM.sub("-", ascii_text.lower()).strip("-")
    if len(slug) > max_length:
        slug = slug[:max_length].rsplit("-", 1)[0] if "-" in slug[:max_length] else slug[:max_length]
    return slug or FALLBACK_SLUG


def is_valid_slug(value: object, max_length: int = MAX_SLUG_LENGTH + 12) -> bool:
    """Whether ``value`` could be a slug at all (room for a ``-N`` suffix): cheap, no query."""
    return isinstance(value, str) and 0 < len(value) <= max_length and SLUG_PATTERN.fullmatch(value) is not None


def next_free_slug(base: str, taken: Collection[str]) -> str:
    """``base`` if free, else ``base-2``, ``base-3``, … the first one not in ``taken``."""
    if base not in taken:
        return base
    number = 2
    while "%s-%d" % (base, number) in taken:
        number += 1
    return "%s-%d" % (base, number)


def is_slug_of(slug: str | None, base: str) -> bool:
    """Whether ``slug`` is ``base`` or one of its ``base-N`` variants."""
    if not slug:
        return False
    if slug == base:
        return True
    head, _, number = slug.rpartition("-")
    return head == base and number.isdigit()
