"""The sender's last look before calling a provider (DESIGN §5): is this message still right?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["STALE_SENDING_S", "SendCandidate", "Verdict", "send_verdict"]

# A claim older than this never settled (crash or lost database between call and record): a
# redelivery must not assume it is still in flight. Well above the providers' 10 s timeouts.
STALE_SENDING_S = 120.0


@dataclass(frozen=True)
class SendCandidate:
    status: str
    kind: str
    appointment_version: int  # the version the message was rendered from
    appointment_status: str  # as stored now
    current_version: int
    status_age_s: float  # how long it has had its current status


@dataclass(frozen=True)
class Verdict:
    action: Literal["send", "skip", "done", "stale"]
    reason: str = ""
    alert: str | None = None  # an alert kind to raise with the outcome


def send_verdict(n: SendCandidate) -> Verdict:
    if n.status == "sending" and n.status_age_s > STALE_SENDING_S:
        return Verdict("stale", f"claimed {n.status_age_s:.0f} s ago and never settled", "delivery_unknown")
    if n.status != "queued":
        return Verdict("done", f"already {n.status}")  # a duplicate, or a concurrent delivery in flight
    if n.kind == "reminder" and n.appointment_status != "booked":
        return Verdict("skip", f"appointment {n.appointment_status}")
    if n.current_version != n.appointment_version:
        # The notice for the newer version tells the patient; this text would be out of date.
        return Verdict("skip", f"appointment changed (v{n.appointment_version} → v{n.current_version})")
    return Verdict("send")
