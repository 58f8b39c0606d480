"""Named SQL: every statement lives in ``sql/queries.sql`` under a ``-- name: <name>`` line."""

from __future__ import annotations

import re
from importlib import resources
from typing import LiteralString, cast

__all__ = ["QUERIES", "parse_queries"]

_NAME = re.compile(r"^-- name: ([a-z_]+)\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, LiteralString]:
    """Split a file of named statements into a name → SQL mapping."""
    parts = _NAME.split(text)
    queries: dict[str, LiteralString] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = cast(LiteralString, body.strip())
    return queries


QUERIES = parse_queries(resources.files("patient_notify.db").joinpath("sql/queries.sql").read_text("utf-8"))
