"""What a provider receipt or an inbound SMS means for us: pure decisions, no I/O (DESIGN §5, §7).

A notification's status only moves forward, by rank::

    sending, unknown  <  sent  <  delivered | undelivered | failed

so a late ``sent`` never overwrites ``delivered``, and of two final statuses the first one wins.
Provider statuses map onto that: Twilio's ``queued``/``accepted``/``sending`` mean the provider
has the message (``sent`` for us); SES events map by ``eventType``. The same moves are listed in
``notification_transitions``, which the database enforces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from patient_notify.domain.alerts import Alert

__all__ = [
    "InboundAction",
    "ReceiptOutcome",
    "advances",
    "delivery_failed_alert",
    "furthest",
    "inbound_action",
    "is_dialable",
    "is_failure",
    "receipt_target",
    "ses_outcome",
    "twilio_outcome",
    "unverified_alert",
]

Target = Literal["sent", "delivered", "undelivered", "failed"]
_RANK = {"sending": 0, "unknown": 0, "sent": 1, "delivered": 2, "undelivered": 2, "failed": 2}
_TWILIO: dict[str, Target] = {
    "accepted": "sent", "scheduled": "sent", "queued": "sent", "sending": "sent", "sent": "sent",
    "delivered": "delivered", "undelivered": "undelivered", "failed": "failed",
}  # fmt: skip
_SES: dict[str, Target] = {
    "Send": "sent", "Delivery": "delivered", "Bounce": "undelivered", "Complaint": "undelivered",
    "Reject": "failed", "Rendering Failure": "failed",
}  # fmt: skip
TWILIO_OPTED_OUT = "21610"  # "Attempt to send to unsubscribed recipient"
_STOP = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
_START = frozenset({"START", "UNSTOP"})
_HELP = frozenset({"HELP", "INFO"})
Action = Literal["opt_out", "opt_in", "help"]
_KEYWORDS: tuple[tuple[frozenset[str], Action], ...] = ((_STOP, "opt_out"), (_START, "opt_in"), (_HELP, "help"))
_BY_TYPE: dict[str, Action] = {"STOP": "opt_out", "START": "opt_in", "HELP": "help"}
_E164_SHAPE = re.compile(r"^\+[1-9][0-9]{6,14}$")  # as sms_opt_outs checks it


@dataclass(frozen=True)
class ReceiptOutcome:
    target: Target | None  # None: record only (a status we do not act on)
    opt_out: bool = False  # Twilio refused the number as unsubscribed (21610)
    suppress: tuple[str, ...] = ()  # email addresses never to write to again
    suppress_reason: Literal["bounce", "complaint"] | None = None

    @property
    def failed(self) -> bool:
        return is_failure(self.target)


@dataclass(frozen=True)
class InboundAction:
    action: Action
    keyword: str  # as normalised: "STOP", "UNSTOP", ...
    answered_by_provider: bool = False  # Twilio already sent its own reply: do not send a second


def advances(current: str, target: str) -> bool:
    """True when ``target`` is further than ``current``; statuses outside the ranking never move."""
    return current in _RANK and target in _RANK and _RANK[current] < _RANK[target]


def furthest(current: str, targets: Iterable[str]) -> str:
    """The status after applying ``targets`` in order, each only if it advances."""
    for target in targets:
        if advances(current, target):
            current = target
    return current


def is_failure(status: str | None) -> bool:
    """A final status that is not delivery: the notification did not reach its recipient."""
    return status in ("undelivered", "failed")


def receipt_target(provider: str, status: str) -> Target | None:
    """Where a delivery receipt moves its notification: Twilio's MessageStatus, SES's event type."""
    if provider == "twilio":
        return _TWILIO.get(status.lower())
    return _SES.get(status) if provider == "ses" else None


def twilio_outcome(status: str, error_code: str | None) -> ReceiptOutcome:
    return ReceiptOutcome(receipt_target("twilio", status), opt_out=error_code == TWILIO_OPTED_OUT)


def ses_outcome(event_type: str, bounce_type: str | None, recipients: Sequence[str]) -> ReceiptOutcome:
    """Hard bounces and complaints suppress the addresses; a soft bounce is undelivered, not suppressed."""
    if event_type == "Complaint" or (event_type == "Bounce" and bounce_type == "Permanent"):
        reason: Literal["bounce", "complaint"] = "complaint" if event_type == "Complaint" else "bounce"
        addresses = tuple(sorted({a.strip().lower() for a in recipients if a.strip()}))
        return ReceiptOutcome(receipt_target("ses", event_type), suppress=addresses, suppress_reason=reason)
    return ReceiptOutcome(receipt_target("ses", event_type))


def inbound_action(body: str, opt_out_type: str | None = None) -> InboundAction | None:
    """Carrier keywords, matched as the whole message, trimmed and case-insensitive.

    Twilio's Advanced Opt-Out classifies the message itself (``OptOutType``: STOP, START, HELP),
    including a site's own keywords ("ALTO"), and sends its configured reply: that wins.
    """
    keyword = body.strip().upper()[:40]
    if opt_out_type is not None and opt_out_type.upper() in _BY_TYPE:
        return InboundAction(_BY_TYPE[opt_out_type.upper()], keyword, answered_by_provider=True)
    return next((InboundAction(action, keyword) for words, action in _KEYWORDS if keyword in words), None)


def is_dialable(number: str) -> bool:
    return bool(_E164_SHAPE.match(number))


def delivery_failed_alert(notification_id: int, provider: str, status: str, code: str | None) -> Alert:
    """Same key as the sender's own delivery_failed alert: one alert per notification."""
    detail = f"{provider} reported {status}" + (f" (error {code})" if code else "")
    return Alert(f"delivery_failed:{notification_id}", "delivery_failed", "critical", str(notification_id), detail)


def unverified_alert(endpoint: str, reason: str, now: datetime) -> Alert:
    """At most one alert per endpoint and hour, however many forged or broken requests arrive."""
    key = f"webhook_unverified:{endpoint}:{now:%Y-%m-%dT%H}"
    return Alert(key, "webhook_unverified", "warning", endpoint, f"{endpoint} refused a request: {reason}")
