"""Alert sinks: where an alert reaches a person (webhook, Slack, PagerDuty, Alertmanager).

``notice`` (the value a sink is told, guarded against contact data) and ``payloads`` (pure JSON
codecs per sink) are pure; ``sinks`` holds the HTTP adapters, ``config`` builds them from plain
settings, ``notifier`` pushes each alert change to each sink once, retrying failures next tick.
"""

from __future__ import annotations

from patient_notify.alert_sinks.config import PAGERDUTY_EVENTS_URL, SINK_NAMES, SinkConfig, build_sinks
from patient_notify.alert_sinks.notice import AlertNotice, notice_from_row, summarise_storms
from patient_notify.alert_sinks.notifier import ALERT_SINK_FAILED, PushReport, push_alerts
from patient_notify.alert_sinks.payloads import ContactDataInAlert, refuse_contact_data
from patient_notify.alert_sinks.sinks import AlertmanagerSink, AlertSink, MessageSink

__all__ = [
    "ALERT_SINK_FAILED", "PAGERDUTY_EVENTS_URL", "SINK_NAMES", "AlertNotice", "AlertSink", "AlertmanagerSink",
    "ContactDataInAlert", "MessageSink", "PushReport", "SinkConfig", "build_sinks", "notice_from_row",
    "push_alerts", "refuse_contact_data", "summarise_storms",
]  # fmt: skip
