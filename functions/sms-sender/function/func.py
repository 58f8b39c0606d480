"""sms-sender: one SMS per send event, through Twilio, exactly once (DESIGN §5, §7)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

from cloudevents.core.base import BaseCloudEvent
from pydantic import AnyHttpUrl, Field, SecretStr, model_validator

from patient_notify.codec import model_from_event
from patient_notify.delivery import OutboundSms, ProviderAccepted, SmsGateway
from patient_notify.errors import ConfigError
from patient_notify.events import SmsSendRequested
from patient_notify.function import EventFunction, Route, Runtime
from patient_notify.sending import Claimed, deliver
from patient_notify.settings import Settings

from .twilio_gateway import TwilioSmsGateway


class SmsSenderSettings(Settings):
    twilio_account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    twilio_auth_token: SecretStr
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_base_url: AnyHttpUrl = AnyHttpUrl("https://api.twilio.com")
    twilio_status_callback_url: AnyHttpUrl | None = None
    # Twilio drops a queued message after this long: no reminder arrives in the evening.
    twilio_validity_period_s: int = Field(default=14_400, ge=1, le=36_000)

    @model_validator(mode="after")
    def _one_sender(self) -> Self:
        if not (self.twilio_from_number or self.twilio_messaging_service_sid):
            raise ConfigError("TWILIO_FROM_NUMBER", "set it or TWILIO_MESSAGING_SERVICE_SID")
        return self


class SmsSender:
    def __init__(self, runtime: Runtime, gateway: SmsGateway, settings: SmsSenderSettings) -> None:
        self._runtime = runtime
        self._gateway = gateway
        self._validity = settings.twilio_validity_period_s
        callback = settings.twilio_status_callback_url
        self._callback = str(callback) if callback else None

    async def on_send(self, event: BaseCloudEvent) -> None:
        request = model_from_event(event, SmsSendRequested)
        await deliver(self._runtime.db, request.notification_id, self._send)

    def _send(self, claimed: Claimed) -> ProviderAccepted:
        validity = self._validity if claimed.kind == "reminder" else None
        return self._gateway.send_sms(OutboundSms(claimed.recipient, claimed.body, validity, self._callback))


def wire(settings: SmsSenderSettings, runtime: Runtime) -> Mapping[str, Route]:
    gateway = TwilioSmsGateway(
        settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value(),
        from_number=settings.twilio_from_number,
        messaging_service_sid=settings.twilio_messaging_service_sid,
        base_url=str(settings.twilio_base_url).rstrip("/"),
    )  # fmt: skip
    return {SmsSendRequested.TYPE: SmsSender(runtime, gateway, settings).on_send}


def new() -> EventFunction[SmsSenderSettings]:
    return EventFunction("sms-sender", SmsSenderSettings, wire)
