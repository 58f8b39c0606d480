"""The monitor's settings: thresholds, the dead-letter queues to watch, and the alert sinks."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Literal, Self

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator

from patient_notify.alert_sinks import PAGERDUTY_EVENTS_URL, SinkConfig
from patient_notify.errors import ConfigError
from patient_notify.settings import Settings

from .queues import amqp_parameters

__all__ = ["MonitorSettings"]


class MonitorSettings(Settings):
    # "tick": the PingSource event's time is the clock (as the scheduler's; tests advance it);
    # "database": PostgreSQL's now(), for a local run that plays a simulated day on its ticks.
    monitor_clock: Literal["tick", "database"] = "tick"
    monitor_batch_size: int = Field(default=1000, ge=1)  # rows per check per tick
    monitor_lookback_hours: float = Field(default=168.0, gt=0)  # older rows were alerted when new
    monitor_outbox_grace_s: float = Field(default=120.0, ge=0)  # unpublished longer: re-published, then alerted
    monitor_stall_minutes: float = Field(default=15.0, gt=0)  # queued, nothing in flight: re-staged + alert
    monitor_receipt_timeout_minutes: float = Field(default=60.0, gt=0)  # sent, no receipt: receipt_missing
    monitor_receiptless_providers: str = "smtp,sns"  # providers that never send delivery receipts
    email_fallback: bool = True  # a late receipt saying an SMS did not arrive: one email instead (webhooks' rule)
    monitor_rate_target: float = Field(default=0.99, gt=0, le=1)
    monitor_rate_min_sample: int = Field(default=100, ge=1)  # outcomes a window needs to be judged
    etl_stale_after_minutes: float = Field(default=45.0, gt=0)
    monitor_dlq_queues: str = ""  # comma-separated RabbitMQ queue names (the Triggers' dead-letter queues)
    monitor_dlq_timeout_s: float = Field(default=5.0, gt=0)
    rabbitmq_url: SecretStr | None = None  # amqp:// with credentials, to read queue depths
    alert_sinks: str = ""  # comma-separated: webhook, slack, pagerduty, alertmanager
    alert_webhook_url: SecretStr | None = None
    alert_webhook_token: SecretStr | None = None
    alert_slack_webhook_url: SecretStr | None = None
    alert_pagerduty_routing_key: SecretStr | None = None
    alert_pagerduty_url: AnyHttpUrl = AnyHttpUrl(PAGERDUTY_EVENTS_URL)
    alert_alertmanager_url: AnyHttpUrl | None = None
    alert_alertmanager_refresh_s: float = Field(default=3600.0, gt=0)
    alert_storm_threshold: int = Field(default=10, ge=1)  # more changes of one kind in a tick: one summary
    alert_push_limit: int = Field(default=500, ge=1)  # notices per sink per tick

    @field_validator("rabbitmq_url")
    @classmethod
    def _amqp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            amqp_parameters(value.get_secret_value())  # named at start, not an IndexError deep in pika
        return value

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, str]) -> Self:
        settings = super().from_cfg(cfg)
        if problem := settings.sink_config().missing():
            raise ConfigError(*problem)
        if settings.dlq_queues() and settings.rabbitmq_url is None:
            raise ConfigError("RABBITMQ_URL", "required when MONITOR_DLQ_QUEUES is set")
        return settings

    def dlq_queues(self) -> list[str]:
        return _names(self.monitor_dlq_queues)

    def receiptless_providers(self) -> list[str]:
        return _names(self.monitor_receiptless_providers)

    def sink_config(self) -> SinkConfig:
        return SinkConfig(
            sinks=tuple(_names(self.alert_sinks)),
            webhook_url=_secret(self.alert_webhook_url), webhook_token=_secret(self.alert_webhook_token),
            slack_webhook_url=_secret(self.alert_slack_webhook_url),
            pagerduty_routing_key=_secret(self.alert_pagerduty_routing_key),
            pagerduty_url=str(self.alert_pagerduty_url),
            alertmanager_url=str(self.alert_alertmanager_url) if self.alert_alertmanager_url else None,
            alertmanager_refresh=timedelta(seconds=self.alert_alertmanager_refresh_s),
        )  # fmt: skip


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
