"""email-sender: one email per send event, through SES v2 or an SMTP relay, exactly once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Self

from cloudevents.core.base import BaseCloudEvent
from pydantic import AnyHttpUrl, Field, SecretStr, model_validator

from patient_notify.codec import model_from_event
from patient_notify.delivery import EmailGateway, OutboundEmail, ProviderAccepted
from patient_notify.errors import ConfigError
from patient_notify.events import EmailSendRequested
from patient_notify.function import EventFunction, Route, Runtime
from patient_notify.sending import Claimed, deliver
from patient_notify.settings import Settings

from .ses_gateway import SesEmailGateway
from .smtp_gateway import SmtpEmailGateway


class EmailSenderSettings(Settings):
    email_provider: Literal["ses", "smtp"] = "ses"
    email_from: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    ses_region: str | None = None
    ses_endpoint_url: AnyHttpUrl | None = None
    ses_configuration_set: str | None = None
    aws_access_key_id: str | None = None  # unset: boto3's default chain (IRSA, instance role)
    aws_secret_access_key: SecretStr | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True

    @model_validator(mode="after")
    def _provider_configured(self) -> Self:
        if self.email_provider == "ses" and not self.ses_region:
            raise ConfigError("SES_REGION", "required when EMAIL_PROVIDER=ses")
        if self.email_provider == "smtp" and not self.smtp_host:
            raise ConfigError("SMTP_HOST", "required when EMAIL_PROVIDER=smtp")
        return self


class EmailSender:
    def __init__(self, runtime: Runtime, gateway: EmailGateway) -> None:
        self._runtime = runtime
        self._gateway = gateway

    async def on_send(self, event: BaseCloudEvent) -> None:
        request = model_from_event(event, EmailSendRequested)
        await deliver(self._runtime.db, request.notification_id, self._send)

    def _send(self, claimed: Claimed) -> ProviderAccepted:
        return self._gateway.send_email(OutboundEmail(claimed.recipient, claimed.subject, claimed.body))


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
    return {EmailSendRequested.TYPE: EmailSender(runtime, gateway_for(settings)).on_send}


def new() -> EventFunction[EmailSenderSettings]:
    return EventFunction("email-sender", EmailSenderSettings, wire)
