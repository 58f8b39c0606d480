"""An alert a person must see: one per incident, deduplicated by key, open until its condition clears.

No alert carries a patient's name, number or email address. Names cannot be recognised by their
shape, so alerts are built from identifiers and our own wording only (every builder in the code
base); numbers and addresses *can* be recognised, so construction redacts them as a guard:
``subject`` and ``dedup_key`` are identifiers (a bare run of digits is an id and is kept; an
email-, international- or punctuated-phone-shaped one is not), ``detail`` is prose and is scrubbed
like a log line (``patient_notify.redact``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from patient_notify.redact import redact_emails, scrub

__all__ = ["DETAIL_LIMIT", "Alert", "AlertState", "contains_contact_data", "redact_identifier"]

AlertState = Literal["open", "resolved"]
DETAIL_LIMIT = 500
# "+12025550123", "+44 20 7946 0123", "(202) 555-0123", "202.555.0123": a leading + or a separator,
# standing alone (not the digit groups inside a hex id); UUIDs (event ids) are kept whole.
_PHONE = re.compile(r"(?<![0-9A-Za-z])(?:\+\d[\d ().-]{5,}\d|\(?\d[\d ().-]{7,}\d)(?![0-9A-Za-z])")
_UUID = re.compile(r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})")


@dataclass(frozen=True)
class Alert:
    dedup_key: str
    kind: str
    severity: Literal["warning", "critical"]
    subject: str | None  # an identifier, never patient data
    detail: str

    def __post_init__(self) -> None:
        # The guard: whatever a caller passed, what is stored and pushed holds no contact data.
        object.__setattr__(self, "dedup_key", redact_identifier(self.dedup_key))
        object.__setattr__(self, "subject", None if self.subject is None else redact_identifier(self.subject))
        object.__setattr__(self, "detail", scrub(self.detail)[:DETAIL_LIMIT])


def redact_identifier(text: str) -> str:
    """An identifier with anything email- or phone-shaped replaced; plain ids (digits too) kept."""
    parts = _UUID.split(text)  # odd positions are UUIDs
    return "".join(p if i % 2 else _PHONE.sub(_phone_or_keep, redact_emails(p)) for i, p in enumerate(parts))


def contains_contact_data(text: str) -> bool:
    """True when ``text`` holds something email- or phone-shaped (what ``redact_identifier`` replaces)."""
    return redact_identifier(text) != text


def _phone_or_keep(match: re.Match[str]) -> str:
    run = match.group()
    digits = sum(ch.isdigit() for ch in run)
    international = run.startswith("+") and digits >= 7
    punctuated = digits >= 9 and any(ch in " ().-" for ch in run)
    return "[phone]" if international or punctuated else run
