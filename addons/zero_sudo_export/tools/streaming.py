"""JSON output as generators, and field paths as plain data: the exporter's pure half."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

FORMATS = ("json", "ndjson")


# One encoder for every row: json.dumps builds a new one per call when given options.
# default=str writes dates and datetimes as Odoo's own strings ("2026-11-29 08:00:00").
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def _encode(row: dict) -> bytes:
    return _ENCODER.encode(row).encode("utf-8")


def json_array(rows: Iterable[dict]) -> Iterator[bytes]:
    """``[row,row,...]`` one row at a time: the whole never exists in memory."""
    yield b"["
    first = True
    for row in rows:
        yield _encode(row) if first else b"," + _encode(row)
        first = False
    yield b"]"


def ndjson(rows: Iterable[dict]) -> Iterator[bytes]:
    """One JSON object per line."""
    for row in rows:
        yield _encode(row) + b"\n"


def render(rows: Iterable[dict], fmt: str) -> Iterator[bytes]:
    if fmt not in FORMATS:
        raise ValueError("format must be one of %s" % ", ".join(FORMATS))
    return json_array(rows) if fmt == "json" else ndjson(rows)


@dataclass(frozen=True)
class PathTree:
    """Requested field paths as a tree: ``["name", "partner_id.name", "partner_id.email"]``
    becomes ``{"name": {}, "partner_id": {"name": {}, "email": {}}}``, so that each relation is
    fetched once per chunk for all the sub-fields asked of it."""

    children: dict[str, PathTree]

    @classmethod
    def parse(cls, paths: Iterable[str]) -> PathTree:
        root: dict = {}
        for path in paths:
            parts = path.split(".")
            if not path or any(not part for part in parts):
                raise ValueError("bad field path %r" % path)
            node = root
            for part in parts:
                node = node.setdefault(part, {})
        return cls._build(root)

    @classmethod
    def _build(cls, raw: dict) -> PathTree:
        return cls({name: cls._build(sub) for name, sub in raw.items()})


def leaves(tree: PathTree, prefix: str = "") -> list[str]:
    """The dotted paths a tree exports, in the order rows give them: the tree's own order."""
    out = []
    for name, sub in tree.children.items():
        out.extend(leaves(sub, prefix + name + ".") if sub.children else [prefix + name])
    return out
