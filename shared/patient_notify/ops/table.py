"""Aligned plain-text tables and the times in them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

__all__ = ["EMPTY", "Cell", "render_table", "when"]

EMPTY = "—"
Cell = str | int | None


def render_table(
    headers: Sequence[str], rows: Sequence[Sequence[Cell]], *, right: Sequence[str] = (), indent: str = ""
) -> str:
    """Columns two spaces apart; integers and the ``right`` columns right-aligned; None as a dash."""
    cells = [[EMPTY if cell is None else str(cell) for cell in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    aligned = [h in right or _integers(rows, i) for i, h in enumerate(headers)]
    lines = [_line(headers, widths, aligned, indent), *(_line(row, widths, aligned, indent) for row in cells)]
    return "\n".join(lines) + "\n"


def when(moment: datetime | None) -> str:
    """A UTC instant to the second, the same width everywhere."""
    return EMPTY if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _integers(rows: Sequence[Sequence[Cell]], column: int) -> bool:
    values = [row[column] for row in rows]
    return any(isinstance(v, int) for v in values) and all(isinstance(v, int | None) for v in values)


def _line(cells: Sequence[str], widths: Sequence[int], aligned: Sequence[bool], indent: str) -> str:
    parts = [c.rjust(w) if right else c.ljust(w) for c, w, right in zip(cells, widths, aligned, strict=True)]
    return (indent + "  ".join(parts)).rstrip()
