"""Pure codecs: an ``AlertNotice`` → the JSON body each kind of sink expects.

- webhook: our own flat JSON, one object per notice;
- Slack incoming webhook: ``text`` (the fallback and notification line) and ``blocks``;
- PagerDuty Events API v2: ``routing_key``, ``event_action`` trigger | resolve, ``dedup_key``
  (one incident per alert), and for a trigger ``payload`` (summary, source, severity, ...);
- Alertmanager API v2 (``POST /api/v2/alerts``): a list of alerts with ``labels`` (identity),
  ``annotations``, ``startsAt`` and ``endsAt`` (in the past: resolved; in the future: firing until
  then unless sent again, so open alerts are re-sent before it passes).

Every body passes ``refuse_contact_data`` last: a payload holding anything email- or phone-shaped
is refused, not sent (the notices are redacted already: this catches a builder that adds a field).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from patient_notify.alert_sinks.notice import AlertNotice
from patient_notify.domain.alerts import contains_contact_data
from patient_notify.errors import PatientNotifyError

__all__ = [
    "SOURCE", "ContactDataInAlert", "alertmanager_body", "pagerduty_body", "refuse_contact_data",
    "slack_body", "webhook_body",
]  # fmt: skip

SOURCE = "patient-notify"
T = TypeVar("T")
_PD_SUMMARY_LIMIT = 1024  # PagerDuty truncates longer summaries
_PD_KEY_LIMIT = 255


class ContactDataInAlert(PatientNotifyError):
    """A payload held something shaped like a phone number or an email address; it was not sent."""

    def __init__(self, path: str) -> None:
        super().__init__(f"contact data at {path}")
        self.path = path


def webhook_body(notice: AlertNotice) -> dict[str, Any]:
    return refuse_contact_data({
        "source": SOURCE, "dedup_key": notice.dedup_key, "kind": notice.kind, "severity": notice.severity,
        "state": notice.state, "subject": notice.subject, "detail": notice.detail,
        "first_seen": notice.first_seen.isoformat(), "last_seen": notice.last_seen.isoformat(),
        "occurrences": notice.occurrences, "alerts": len(notice.alert_ids),
        "resolved_at": notice.resolved_at.isoformat() if notice.resolved_at else None,
    })  # fmt: skip


def slack_body(notice: AlertNotice) -> dict[str, Any]:
    icon = ":white_check_mark:" if notice.state == "resolved" else (
        ":rotating_light:" if notice.severity == "critical" else ":warning:")  # fmt: skip
    about = f" · `{notice.subject}`" if notice.subject else ""
    first = notice.first_seen.astimezone(UTC)
    context = f"first seen {first:%Y-%m-%dT%H:%MZ} · seen {notice.occurrences}× · key `{notice.dedup_key}`"
    return refuse_contact_data({
        "text": f"{icon} {notice.summary}",
        "blocks": [
            {"type": "section",
             "text": {"type": "mrkdwn", "text": f"{icon} *{notice.kind}* {notice.state}{about}\n{notice.detail}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    })  # fmt: skip


def pagerduty_body(notice: AlertNotice, routing_key: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "routing_key": routing_key, "dedup_key": notice.dedup_key[:_PD_KEY_LIMIT],
        "event_action": "resolve" if notice.state == "resolved" else "trigger",
    }  # fmt: skip
    if notice.state == "open":
        body["payload"] = {
            "summary": notice.summary[:_PD_SUMMARY_LIMIT], "source": SOURCE, "severity": notice.severity,
            "timestamp": notice.first_seen.isoformat(), "component": SOURCE, "class": notice.kind,
            "custom_details": {"subject": notice.subject, "detail": notice.detail,
                               "occurrences": notice.occurrences, "last_seen": notice.last_seen.isoformat()},
        }  # fmt: skip
    refuse_contact_data({k: v for k, v in body.items() if k != "routing_key"})  # the key is ours, a secret
    return body


def alertmanager_body(notices: Sequence[AlertNotice], now: datetime, hold: timedelta) -> list[dict[str, Any]]:
    """One POST for many alerts; an open one fires until ``now + hold`` unless sent again."""
    return refuse_contact_data([
        {
            "labels": {"alertname": n.kind, "severity": n.severity, "dedup_key": n.dedup_key, "service": SOURCE},
            "annotations": {"summary": n.summary, "description": n.detail, "subject": n.subject or ""},
            "startsAt": n.first_seen.isoformat(),
            "endsAt": (n.resolved_at or now + hold).isoformat(),
        }
        for n in notices
    ])  # fmt: skip


def refuse_contact_data(payload: T, path: str = "$") -> T:
    """``payload`` unchanged, or ``ContactDataInAlert`` naming where a contact-shaped string was."""
    if isinstance(payload, str) and contains_contact_data(payload):
        raise ContactDataInAlert(path)
    if isinstance(payload, dict):
        for key, value in payload.items():
            refuse_contact_data(value, f"{path}.{key}")
    elif isinstance(payload, list):
        for index, value in enumerate(payload):
            refuse_contact_data(value, f"{path}[{index}]")
    return payload
