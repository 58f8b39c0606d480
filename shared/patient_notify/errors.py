"""Patient Notify's one error tree.

    PatientNotifyError
    ├── ConfigError               bad or missing setting; names the variable
    ├── EventRejected             a request that is not an event we accept (kept, alerted, 2xx)
    │   ├── SignatureMissing      (patient_notify.signing) an announcement without pnsignature
    │   ├── SignatureInvalid      … whose signature does not verify
    │   └── SignatureExpired      … signed outside the time window: a replay or a wrong clock
    ├── DatabaseError             a driver error, translated once in ``patient_notify.db``
    │   └── DatabaseUnavailable   connection-level failure: retry later (5xx)
    ├── PublishError              the broker ingress did not answer 2xx
    └── ProviderError             an SMS or email provider refused or failed
        ├── ProviderRetryable     definitely not accepted; safe to try again later (5xx)
        ├── ProviderPermanent     never retry: invalid number, opted out, hard bounce
        └── ProviderOutcomeUnknown  the request may have been accepted (timeout mid-call)

Handlers map these to HTTP status codes in one place (``patient_notify.function``): nothing
that must not be lost is ever answered 4xx, because the RabbitMQ broker acks and drops 4xx.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatabaseError",
    "DatabaseUnavailable",
    "EventRejected",
    "PatientNotifyError",
    "ProviderError",
    "ProviderOutcomeUnknown",
    "ProviderPermanent",
    "ProviderRetryable",
    "PublishError",
]


class PatientNotifyError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(PatientNotifyError):
    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(f"{variable}: {reason}")
        self.variable = variable
        self.reason = reason


class EventRejected(PatientNotifyError):
    def __init__(self, reason: str, *, event_type: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_type = event_type


class DatabaseError(PatientNotifyError):
    pass


class DatabaseUnavailable(DatabaseError):
    pass


class PublishError(PatientNotifyError):
    def __init__(self, event_id: str, reason: str) -> None:
        super().__init__(f"event {event_id}: {reason}")
        self.event_id = event_id
        self.reason = reason


class ProviderError(PatientNotifyError):
    def __init__(self, provider: str, code: str, detail: str = "") -> None:
        super().__init__(f"{provider} error {code}: {detail}" if detail else f"{provider} error {code}")
        self.provider = provider
        self.code = code
        self.detail = detail


class ProviderRetryable(ProviderError):
    pass


class ProviderPermanent(ProviderError):
    pass


class ProviderOutcomeUnknown(ProviderError):
    pass
