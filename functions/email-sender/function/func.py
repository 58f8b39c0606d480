"""email-sender: one email per send event, through SES v2 or an SMTP relay, exactly once.

A suppressed address (hard bounce, complaint) is never written to: the notification is skipped
with the reason ``suppressed``. SES is paced to ``SES_MAX_RATE`` across pods
(``patient_notify.pacing``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Literal, Self

from cloudevents.core.base import BaseCloudEvent
from pydantic import AnyHttpUrl, Field, SecretStr, model_validator

from patient_notify.codec import model_from_event
from patient_notify.delivery import EmailGateway, OutboundEmail, ProviderAccepted
from patient_notify.errors import ConfigError
from patient_notify.events import EmailSendRequested
from patient_notify.function import EventFunction, Route, Runtime
from patient_notify.pacing import Pacer, Rate
from patient_notify.sending import Claimed, confirm_still_wanted, deliver
from patient_notify.settings import AwsRegion, Settings

from .ses_gateway import SesEmailGateway
from .smtp_gateway import SmtpEmailGateway


class EmailSenderSettings(Settings):
    email_provider: Literal["ses", "smtp"] = "ses"
    email_from: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    ses_region: AwsRegion | None = None
    ses_endpoint_url: AnyHttpUrl | None = None
    ses_configuration_set: str | None = None
    aws_access_key_id: str | None = None  # unset: boto3's default chain (IRSA, instance role)
    aws_secret_access_key: SecretStr | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    # Pacing (unset: none): SES's account send rate, per second (a sandbox account: 1).
    ses_max_rate: float | None = Field(default=None, gt=0)
    ses_burst: int = Field(default=1, ge=1)
    # About half the Trigger's 30 s timeout; a claim waits this long at most (stale after 120 s).
    pacing_max_wait_s: float = Field(default=15.0, ge=0, le=60)

    @model_validator(mode="after")
    def _provider_configured(self) -> Self:
        if self.email_provider == "ses" and not self.ses_region:
            raise ConfigError("SES_REGION", "required when EMAIL_PROVIDER=ses")
        if self.email_provider == "smtp" and not self.smtp_host:
            raise ConfigError("SMTP_HOST", "required when EMAIL_PROVIDER=smtp")
        return self

    def pacing(self) -> tuple[str, Rate | None]:
        """The pacing key and rate: SES is paced per region; an SMTP relay paces itself."""
        if self.email_provider == "ses" and self.ses_max_rate is not None:
            return f"ses:{self.ses_region}", Rate(self.ses_max_rate, self.ses_burst)
        return f"{self.email_provider}:", None


class EmailSender:
    def __init__(self, runtime: Runtime, gateway: EmailGateway, pacer: Pacer, settings: EmailSenderSettings) -> None:
        self._runtime = runtime
        self._gateway = gateway
        self._pacer = pacer
        self._pacing_key, self._rate = settings.pacing()

    async def on_send(self, event: BaseCloudEvent) -> None:
        request = model_from_event(event, EmailSendRequested)
        await deliver(self._runtime.db, request.notification_id, self._send)

    async def _send(self, claimed: Claimed) -> ProviderAccepted:
        if await self._pacer.wait_turn(self._pacing_key, self._rate):  # after the claim, right before the call
            await confirm_still_wanted(self._runtime.db, claimed)  # suppressed or cancelled while it waited?
        email = OutboundEmail(claimed.recipient, claimed.subject, claimed.body)
        return await asyncio.to_thread(self._gateway.send_email, email)


def gateway_for(settings: EmailSenderSettings) -> EmailGateway:
    if settings.email_provider == "smtp":
        assert settings.smtp_host is not None  # checked by the settings validator
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return SmtpEmailGateway(
            host=settings.smtp_host, port=settings.smtp_port, from_address=settings.email_from,
            username=settings.smtp_username, password=password, starttls=settings.smtp_starttls,
        )  # fmt: skip
    assert settings.ses_region is not None
    secret = settings.aws_secret_access_key
    return SesEmailGateway(
        from_address=settings.email_from, region=settings.ses_region,
        endpoint_url=str(settings.ses_endpoint_url) if settings.ses_endpoint_url else None,
        access_key_id=settings.aws_access_key_id,
        secret_access_key=secret.get_secret_value() if secret else None,
        configuration_set=settings.ses_configuration_set,
    )  # fmt: skip


def wire(settings: EmailSenderSettings, runtime: Runtime) -> Mapping[str, Route]:
    pacer = Pacer(runtime.db, max_wait_s=settings.pacing_max_wait_s)
    return {EmailSendRequested.TYPE: EmailSender(runtime, gateway_for(settings), pacer, settings).on_send}


def new() -> EventFunction[EmailSenderSettings]:
    return EventFunction("email-sender", EmailSenderSettings, wire)
