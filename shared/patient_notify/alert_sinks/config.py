"""Which sinks to push to, from plain values (the monitor's settings build them from ``ALERT_*``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import httpx

from patient_notify.alert_sinks.payloads import pagerduty_body, slack_body, webhook_body
from patient_notify.alert_sinks.sinks import AlertmanagerSink, AlertSink, MessageSink

__all__ = ["PAGERDUTY_EVENTS_URL", "SINK_NAMES", "SinkConfig", "build_sinks"]

SINK_NAMES = ("webhook", "slack", "pagerduty", "alertmanager")
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


@dataclass(frozen=True)
class SinkConfig:
    sinks: tuple[str, ...] = ()
    webhook_url: str | None = None
    webhook_token: str | None = None  # sent as a bearer token when set
    slack_webhook_url: str | None = None
    pagerduty_routing_key: str | None = None
    pagerduty_url: str = PAGERDUTY_EVENTS_URL
    alertmanager_url: str | None = None
    alertmanager_refresh: timedelta = timedelta(hours=1)

    def missing(self) -> tuple[str, str] | None:
        """The first setting a listed sink needs and lacks, as (variable, reason); None if complete."""
        needs = {
            "webhook": ("ALERT_WEBHOOK_URL", self.webhook_url),
            "slack": ("ALERT_SLACK_WEBHOOK_URL", self.slack_webhook_url),
            "pagerduty": ("ALERT_PAGERDUTY_ROUTING_KEY", self.pagerduty_routing_key),
            "alertmanager": ("ALERT_ALERTMANAGER_URL", self.alertmanager_url),
        }  # fmt: skip
        for sink in self.sinks:
            if sink not in needs:
                return "ALERT_SINKS", f"unknown sink {sink!r}: use {', '.join(SINK_NAMES)}"
            variable, value = needs[sink]
            if not value:
                return variable, f"required when ALERT_SINKS lists {sink}"
        return None


def build_sinks(config: SinkConfig, client: httpx.AsyncClient) -> list[AlertSink]:
    """The configured sinks, in the order listed; ``config.missing()`` must be None."""
    built: dict[str, AlertSink] = {}
    if config.webhook_url:
        auth = {"Authorization": f"Bearer {config.webhook_token}"} if config.webhook_token else {}
        built["webhook"] = MessageSink("webhook", config.webhook_url, webhook_body, client, auth)
    if config.slack_webhook_url:
        built["slack"] = MessageSink("slack", config.slack_webhook_url, slack_body, client)
    if key := config.pagerduty_routing_key:
        built["pagerduty"] = MessageSink("pagerduty", config.pagerduty_url, lambda n: pagerduty_body(n, key), client)
    if config.alertmanager_url:
        built["alertmanager"] = AlertmanagerSink(config.alertmanager_url, client, config.alertmanager_refresh)
    return [built[name] for name in config.sinks]
