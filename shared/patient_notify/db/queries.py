"""Named SQL: every statement lives under a ``-- name: <name>`` line, in ``sql/queries.sql`` or in
a file of its own area under ``sql/queries/`` (``webhooks.sql``, ``monitor.sql``, ...). A name is
defined once across all of them."""

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


def _load() -> dict[str, LiteralString]:
    sql = resources.files("patient_notify.db").joinpath("sql")
    areas = sorted((f for f in sql.joinpath("queries").iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    queries: dict[str, LiteralString] = {}
    for file in [sql.joinpath("queries.sql"), *areas]:
        for name, statement in parse_queries(file.read_text("utf-8")).items():
            if name in queries:
                raise ValueError(f"query {name!r} is defined twice (again in {file.name})")
            queries[name] = statement
    return queries


QUERIES = _load()
