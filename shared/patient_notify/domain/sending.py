"""The sender's last look before calling a provider (DESIGN §5): is this message still right?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["SendCandidate", "Verdict", "send_verdict"]


@dataclass(frozen=True)
class SendCandidate:
    status: str
    kind: str
    appointment_version: int  # the version the message was rendered from
    appointment_status: str  # as stored now
    current_version: int


@dataclass(frozen=True)
class Verdict:
    action: Literal["send", "skip", "done"]
    reason: str = ""


def send_verdict(n: SendCandidate) -> Verdict:
    if n.status != "queued":
        return Verdict("done", f"already {n.status}")  # a duplicate or a concurrent delivery
    if n.kind == "reminder" and n.appointment_status != "booked":
        return Verdict("skip", f"appointment {n.appointment_status}")
    if n.current_version != n.appointment_version:
        return Verdict("skip", f"appointment changed (v{n.appointment_version} → v{n.current_version})")
    return Verdict("send")
