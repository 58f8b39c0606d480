"""The sms-sender's settings and the providers they describe (its composition, beside ``func.new``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

from pydantic import AnyHttpUrl, Field, SecretStr, model_validator

from patient_notify.domain.pacing import Rate
from patient_notify.errors import ConfigError
from patient_notify.settings import AwsRegion, Settings

from .failover import CircuitBreaker, Provider, SmsRoutes
from .twilio_gateway import TwilioSmsGateway

__all__ = ["SmsSenderSettings", "routes_for"]

E164 = r"^\+[1-9][0-9]{6,14}$"


class SmsSenderSettings(Settings):
    twilio_account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    twilio_auth_token: SecretStr
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_base_url: AnyHttpUrl = AnyHttpUrl("https://api.twilio.com")
    # The webhooks function's public origin (as it is configured there): each message asks Twilio for
    # receipts at <WEBHOOKS_PUBLIC_URL>/twilio/status. Unset: no receipts, and the monitor alerts
    # every SMS as receipt_missing, so a site without webhooks must list twilio as receiptless.
    webhooks_public_url: AnyHttpUrl | None = None
    # Twilio drops a queued message after this long: no reminder arrives in the evening.
    twilio_validity_period_s: int = Field(default=14_400, ge=1, le=36_000)
    # Pacing (unset: none, Twilio's own queue absorbs bursts): a US long code takes ~1/s,
    # toll-free ~3, a short code ~100 (DESIGN §7). Per sender number or messaging service.
    twilio_max_mps: float | None = Field(default=None, gt=0)
    twilio_burst: int = Field(default=1, ge=1)
    # Failover to SNS: off unless SNS_REGION is set.
    sns_region: AwsRegion | None = None
    sns_endpoint_url: AnyHttpUrl | None = None
    sns_sender_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]{1,11}$")
    sns_origination_number: str | None = Field(default=None, pattern=E164)
    sns_max_mps: float | None = Field(default=None, gt=0)  # SNS's account default is 20 SMS/s
    aws_access_key_id: str | None = None  # unset: boto3's default chain (IRSA, instance role)
    aws_secret_access_key: SecretStr | None = None
    sms_failover_threshold: int = Field(default=5, ge=1)  # consecutive Twilio failures that open the breaker
    sms_failover_failure_rate: float = Field(default=0.5, gt=0, le=1)  # or this share of the last window calls
    sms_failover_window: int = Field(default=20, ge=2)
    sms_failover_cooldown_s: float = Field(default=30.0, gt=0)  # then one trial message goes to Twilio
    # About half the Trigger's 30 s timeout; a claim waits this long at most (stale after 120 s).
    pacing_max_wait_s: float = Field(default=15.0, ge=0, le=60)
    email_fallback: bool = True  # an SMS-only patient consents to email when SMS cannot reach them

    @property
    def status_callback(self) -> str | None:
        if self.webhooks_public_url is None:
            return None
        return str(self.webhooks_public_url).rstrip("/") + "/twilio/status"

    @model_validator(mode="after")
    def _one_sender(self) -> Self:
        if not (self.twilio_from_number or self.twilio_messaging_service_sid):
            raise ConfigError("TWILIO_FROM_NUMBER", "set it or TWILIO_MESSAGING_SERVICE_SID")
        return self


def routes_for(settings: SmsSenderSettings, clock: Callable[[], float]) -> SmsRoutes:
    s = settings
    sender = s.twilio_messaging_service_sid or s.twilio_from_number
    twilio = TwilioSmsGateway(
        s.twilio_account_sid, s.twilio_auth_token.get_secret_value(), from_number=s.twilio_from_number,
        messaging_service_sid=s.twilio_messaging_service_sid, base_url=str(s.twilio_base_url).rstrip("/"),
    )  # fmt: skip
    primary = Provider("twilio", twilio, f"twilio:{sender}", _rate(s.twilio_max_mps, s.twilio_burst))
    breaker = CircuitBreaker(
        threshold=s.sms_failover_threshold, failure_share=s.sms_failover_failure_rate,
        window=s.sms_failover_window, cooldown_s=s.sms_failover_cooldown_s, clock=clock,
    )  # fmt: skip
    return SmsRoutes(primary, _sns(s), breaker)


def _sns(s: SmsSenderSettings) -> Provider | None:
    if not s.sns_region:
        return None
    from .sns_gateway import SnsSmsGateway  # here: boto3 costs 0.5 s of cold start, and failover is opt-in

    secret = s.aws_secret_access_key
    gateway = SnsSmsGateway(
        region=s.sns_region, endpoint_url=str(s.sns_endpoint_url) if s.sns_endpoint_url else None,
        access_key_id=s.aws_access_key_id, secret_access_key=secret.get_secret_value() if secret else None,
        sender_id=s.sns_sender_id, origination_number=s.sns_origination_number,
    )  # fmt: skip
    return Provider("sns", gateway, f"sns:{s.sns_region}", _rate(s.sns_max_mps, 1))


def _rate(per_second: float | None, burst: int) -> Rate | None:
    return None if per_second is None else Rate(per_second, burst)
