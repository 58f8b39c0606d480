"""An alert a person must see: one per incident, deduplicated by key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Alert"]


@dataclass(frozen=True)
class Alert:
    dedup_key: str
    kind: str
    severity: Literal["warning", "critical"]
    subject: str | None  # an identifier, never patient data
    detail: str
