"""What a sender hands a provider, and what comes back: the ports every SMS and email adapter fills.

Adapters (``TwilioSmsGateway``, ``SesEmailGateway``, ``SmtpEmailGateway``) live with the sender
functions; they are synchronous (the SDKs are) and raise only ``patient_notify.errors.Provider*``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["EmailGateway", "OutboundEmail", "OutboundSms", "ProviderAccepted", "SmsGateway"]


@dataclass(frozen=True)
class OutboundSms:
    to: str
    body: str
    validity_period_s: int | None = None
    status_callback: str | None = None


@dataclass(frozen=True)
class OutboundEmail:
    to: str
    subject: str
    text: str


@dataclass(frozen=True)
class ProviderAccepted:
    provider: str
    message_id: str


class SmsGateway(Protocol):
    def send_sms(self, message: OutboundSms) -> ProviderAccepted: ...


class EmailGateway(Protocol):
    def send_email(self, message: OutboundEmail) -> ProviderAccepted: ...
