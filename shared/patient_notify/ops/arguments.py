"""Arguments the parser cannot type alone: instants given as an age or a date."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from patient_notify.ops.errors import BadArgument

__all__ = ["parse_since"]

_AGE = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str, now: datetime) -> datetime:
    """``90m``, ``6h``, ``2d`` (that long before now), or an ISO date or time (UTC unless it says)."""
    if match := _AGE.match(text):
        return now - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadArgument("--since", "expected an age (90m, 6h, 2d) or an ISO date or time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
