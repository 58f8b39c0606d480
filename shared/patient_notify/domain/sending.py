"""The sender's decisions (DESIGN §5, §7): is this message still right to send, and when a message
cannot reach its recipient, may an email take its place?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "OPTED_OUT",
    "PROVIDER_OPT_OUT",
    "STALE_SENDING_S",
    "SUPPRESSED",
    "SendCandidate",
    "Verdict",
    "fallback_blocker",
    "number_cannot_take_sms",
    "send_verdict",
]

# A claim older than this never settled (crash or lost database between call and record): a
# redelivery must not assume it is still in flight. Well above the providers' 10 s timeouts.
STALE_SENDING_S = 120.0
OPTED_OUT, SUPPRESSED = "opted out", "suppressed"  # skip reasons, as stored
# Refusals that say the number cannot take an SMS from anyone: (provider, code).
_NUMBER_REFUSALS = frozenset({
    ("twilio", "21211"),  # invalid 'To' number
    ("twilio", "21614"),  # not a mobile number
    ("twilio", "21610"),  # the recipient replied STOP to us before we knew
    ("sns", "InvalidParameter"),  # SNS's answer to a number it cannot text
})  # fmt: skip
PROVIDER_OPT_OUT = ("twilio", "21610")


@dataclass(frozen=True)
class SendCandidate:
    status: str
    kind: str
    appointment_version: int  # the version the message was rendered from
    appointment_status: str  # as stored now
    current_version: int
    status_age_s: float  # how long it has had its current status
    blocked: str | None = None  # OPTED_OUT or SUPPRESSED when the recipient may not be written to
    appointment_started: bool = False  # its start has passed (by the database's clock)


@dataclass(frozen=True)
class Verdict:
    action: Literal["send", "skip", "done", "stale"]
    reason: str = ""
    alert: str | None = None  # an alert kind to raise with the outcome
    blocked: bool = False  # skipped because of the recipient's opt-out or suppression


def send_verdict(n: SendCandidate) -> Verdict:
    """At the claim: whether a queued message is sent, skipped, or already someone else's."""
    if n.status == "sending" and n.status_age_s > STALE_SENDING_S:
        return Verdict("stale", f"claimed {n.status_age_s:.0f} s ago and never settled", "delivery_unknown")
    if n.status != "queued":
        return Verdict("done", f"already {n.status}")  # a duplicate, or a concurrent delivery in flight
    return still_wanted(n)


def still_wanted(n: SendCandidate) -> Verdict:
    """Whether the message should still go out ("send") or be skipped, whatever its own status:
    at the claim, and again when a claimed message waited for its pacing turn."""
    if n.kind == "reminder" and n.appointment_status != "booked":
        return Verdict("skip", f"appointment {n.appointment_status}")
    if n.kind == "reminder" and n.appointment_started:
        # Held up past the appointment (an outage, a late re-drive): never remind of a past visit.
        return Verdict("skip", "appointment already started", "reminder_too_late")
    if n.current_version != n.appointment_version:
        # The notice for the newer version tells the patient; this text would be out of date.
        return Verdict("skip", f"appointment changed (v{n.appointment_version} → v{n.current_version})")
    if n.blocked is not None:
        return Verdict("skip", n.blocked, blocked=True)  # never written to, whatever the message
    return Verdict("send")


def number_cannot_take_sms(provider: str, code: str) -> bool:
    """A permanent refusal about the number itself (not our request): email may reach the patient."""
    return (provider, code) in _NUMBER_REFUSALS


def fallback_blocker(channel: str, status: str, skip_reason: str | None) -> str | None:
    """Why this message may not be replaced by an email, or None when it may.

    Only an SMS that surely did not reach the patient: failed, undelivered, or skipped because the
    number opted out. Never one that may yet arrive (queued, sending, sent, unknown).
    """
    if channel != "sms":
        return f"a {channel} message has no fallback"
    if status in ("failed", "undelivered") or (status == "skipped" and skip_reason == OPTED_OUT):
        return None
    return f"the message is {status}" + (f" ({skip_reason})" if skip_reason else "")
