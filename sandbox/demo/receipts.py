"""Email receipts for the demo: SES's events through a signed SNS topic to the webhooks function.

SMS receipts need no help: the sms-sender asks Twilio for them (``WEBHOOKS_PUBLIC_URL``) and the
Twilio stand-in posts signed status callbacks. For email, ``SesEventPublisher`` turns what moto's
SES accepted into SNS notifications; the webhooks process fetches the signing certificate from
``sns.<region>.amazonaws.com`` through ``SnsHttpsProxy``, trusting the demo CA only. SMTP has no
receipts: an email handed to the server stays ``sent``, and the report says so.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from sandbox.ses import SesStandIn
from sandbox.ses_events import SesEventPublisher
from sandbox.sns import SnsStandIn
from sandbox.sns_https import SnsHttpsProxy

__all__ = ["EmailReceipts", "start_email_receipts"]


@dataclass(frozen=True)
class EmailReceipts:
    sns: SnsStandIn
    publisher: SesEventPublisher
    webhooks_env: dict[str, str]  # for the webhooks process alone: the topic, the proxy, the demo CA


def start_email_receipts(
    stack: ExitStack, ses: SesStandIn, webhooks_url: str, folder: Path, bouncing: frozenset[str]
) -> EmailReceipts:
    sns = stack.enter_context(SnsStandIn())
    proxy = stack.enter_context(SnsHttpsProxy(sns, folder))
    publisher = stack.enter_context(SesEventPublisher(ses, sns, f"{webhooks_url}/ses/events", bouncing))
    return EmailReceipts(sns, publisher, {"SES_EVENTS_TOPIC_ARN": sns.topic_arn, **proxy.env()})
