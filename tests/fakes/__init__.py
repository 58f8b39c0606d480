"""Fakes of our own ports that record state (not mocks): assert on what they hold afterwards."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from patient_notify.delivery import OutboundEmail, OutboundSms, ProviderAccepted
from patient_notify.errors import ProviderError

__all__ = ["FakeEmailGateway", "FakeSmsGateway"]


@dataclass
class FakeSmsGateway:
    """Accepts every SMS, unless an error is queued for the next call."""

    sent: list[OutboundSms] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def send_sms(self, message: OutboundSms) -> ProviderAccepted:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(message)
        return ProviderAccepted("fake-sms", f"SM{next(self._ids):032d}")


@dataclass
class FakeEmailGateway:
    sent: list[OutboundEmail] = field(default_factory=list)
    errors: list[ProviderError] = field(default_factory=list)

    def send_email(self, message: OutboundEmail) -> ProviderAccepted:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(message)
        return ProviderAccepted("fake-email", f"<{len(self.sent)}@test>")
