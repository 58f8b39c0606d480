"""SNS as the failover SMS provider, on moto: what SNS "sent" to phone numbers.

moto's ``ThreadedMotoServer`` serves every AWS service on one port, so the server
``sandbox.ses.SesStandIn`` runs is SNS's endpoint too (``SNS_ENDPOINT_URL`` = its
``endpoint_url``). ``Publish`` with a ``PhoneNumber`` is recorded in moto's backend
(``sns_backends[account][region].sms_messages``: message id → (number, text)), read here.
moto keeps one state per process: tell messages apart by the ``MessageId`` the publish returned.
"""

from __future__ import annotations

from dataclasses import dataclass

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

__all__ = ["SnsSentSms", "sns_sent_sms"]


@dataclass(frozen=True)
class SnsSentSms:
    message_id: str
    phone_number: str
    message: str


def sns_sent_sms(region: str) -> list[SnsSentSms]:
    """Every SMS moto's SNS accepted in ``region``, in order."""
    recorded = dict(sns_backends[DEFAULT_ACCOUNT_ID][region].sms_messages)
    return [SnsSentSms(message_id, number, text) for message_id, (number, text) in recorded.items()]
