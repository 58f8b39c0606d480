"""webhooks: provider receipts and inbound SMS, over plain HTTP (DESIGN §3, §5, §7, §8).

Public routes, each verified against its provider's signature before anything is believed:

    POST /twilio/status    Twilio StatusCallback: the notification moves forward, never back
    POST /twilio/inbound   replies to our number: STOP/START keep sms_opt_outs, HELP answers
    POST /ses/events       SES events through SNS: delivered, bounced (suppressed), complained

A request that does not verify is answered 403 and kept bounded, with why (``ledger.reject``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Self

import httpx
from pydantic import AnyHttpUrl, Field, SecretStr, model_validator

from patient_notify.errors import ConfigError
from patient_notify.http_function import Handler, HttpFunction, HttpRuntime, HttpSettings

from .ses_events import SesEvents
from .sns_client import HttpxSnsEndpoint
from .twilio_webhooks import TwilioSignature, TwilioWebhooks

__all__ = ["WebhooksSettings", "new", "wire"]

_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_TOPIC_ARN = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$"


class WebhooksSettings(HttpSettings):
    twilio_auth_token: SecretStr
    # The origin providers call (and sign), e.g. https://notify.hospital.org; may end in a path prefix.
    webhooks_public_url: AnyHttpUrl
    # Unset on a site without SES: every /ses/events request is then refused, kept and alerted.
    ses_events_topic_arn: str | None = Field(default=None, pattern=_TOPIC_ARN)
    # The HELP reply; when unset, a default that names HELP_PHONE_NUMBER if that is set.
    help_reply_text: str | None = Field(default=None, max_length=320)
    help_phone_number: str | None = Field(default=None, max_length=32)
    email_fallback: bool = True  # an SMS-only patient is emailed once when a receipt says the SMS did not arrive

    @model_validator(mode="after")
    def _https_unless_local(self) -> Self:
        url = self.webhooks_public_url
        if url.scheme != "https" and url.host not in _LOCAL_HOSTS:
            raise ConfigError("WEBHOOKS_PUBLIC_URL", "must be https (http only on this machine)")
        return self

    @property
    def help_text(self) -> str:
        if self.help_reply_text:
            return self.help_reply_text
        call = f"call {self.help_phone_number}" if self.help_phone_number else "call the number in your reminder"
        return f"Appointment messages from your clinic. For help, {call}. Reply STOP to opt out, START to opt back in."


def wire(settings: WebhooksSettings, runtime: HttpRuntime) -> Mapping[str, Handler]:
    def clock() -> datetime:
        return datetime.now(UTC)

    signature = TwilioSignature(settings.twilio_auth_token.get_secret_value(), str(settings.webhooks_public_url))
    twilio = TwilioWebhooks(runtime.db, signature, settings.help_text, clock, email_fallback=settings.email_fallback)
    ses = SesEvents(runtime.db, HttpxSnsEndpoint(runtime.http), settings.ses_events_topic_arn, clock)
    return {"/twilio/status": twilio.on_status, "/twilio/inbound": twilio.on_inbound, "/ses/events": ses.on_event}


def new(transport: httpx.AsyncBaseTransport | None = None) -> HttpFunction[WebhooksSettings]:
    """func-python calls ``new()``; tests pass a transport that fakes SNS at the HTTP boundary."""
    return HttpFunction("webhooks", WebhooksSettings, wire, transport=transport)
