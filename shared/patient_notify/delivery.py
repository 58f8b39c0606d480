"""What a sender hands a provider, and what comes back: the ports every SMS and email adapter fills.

Adapters (``TwilioSmsGateway``, ``SnsSmsGateway``, ``SesEmailGateway``, ``SmtpEmailGateway``) live
with the sender functions; they are synchronous (the SDKs are) and raise only
``patient_notify.errors.Provider*``. Around them, ``patient_notify.sending``'s bracket takes a
sender's ``Send`` (one call for one claimed message) and its ``Recover`` (what to do, in the
recording transaction, with a message that can never reach its recipient).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from patient_notify.errors import ProviderPermanent

if TYPE_CHECKING:
    from patient_notify.db import Transaction

__all__ = [
    "Claimed",
    "EmailGateway",
    "OutboundEmail",
    "OutboundSms",
    "ProviderAccepted",
    "Recover",
    "Recovered",
    "Send",
    "SmsGateway",
    "Unsendable",
]


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


@dataclass(frozen=True)
class Claimed:
    id: int
    kind: str
    channel: str
    recipient: str
    subject: str
    body: str


@dataclass(frozen=True)
class Unsendable:
    """A message that will never reach its recipient this way: skipped (opt-out) or refused for good."""

    notification_id: int
    channel: str
    recipient: str
    error: ProviderPermanent | None = None  # None: skipped because the recipient opted out


@dataclass(frozen=True)
class Recovered:
    outbox_ids: tuple[int, ...] = ()  # staged in the recording transaction; published after commit
    covered: bool = False  # the patient is reached another way for this occasion (an email)
    note: str = ""


class Recover(Protocol):
    """The sender's answer to a message it cannot deliver, in the transaction that records it."""

    async def __call__(self, tx: Transaction, *, unsendable: Unsendable) -> Recovered: ...


# A coroutine function (the senders: routing and pacing before the call), or a plain function,
# which runs in a worker thread (the provider SDKs are synchronous).
Send = Callable[[Claimed], Awaitable[ProviderAccepted]] | Callable[[Claimed], ProviderAccepted]
