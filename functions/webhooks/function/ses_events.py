"""``POST /ses/events``: SES delivery events through an SNS topic subscription (DESIGN §7).

Verified first (``sns.verify``), or refused 403 and kept (bounded: ``ledger.reject``). Then by SNS message type:

    SubscriptionConfirmation  GET its SubscribeURL (an SNS host only), keep the receipt
    UnsubscribeConfirmation   keep it and alert: no more bounces would reach us
    Notification              the SES event in Message: Delivery → delivered; Bounce → undelivered
                              (Permanent: the addresses suppressed); Complaint → suppressed, undelivered
                              unless already final; Reject → failed; others kept only

The SES event's ``eventType`` (configuration-set event publishing) or ``notificationType``
(identity notifications) names it; ``mail.messageId`` is the id SendEmail returned. The SNS
subscription must not use raw message delivery: a raw body carries no signature and is refused.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from patient_notify.alerts import raise_alerts
from patient_notify.db import Database
from patient_notify.domain.alerts import Alert
from patient_notify.domain.receipts import ses_outcome
from patient_notify.errors import ProviderPermanent
from patient_notify.http_function import HttpRequest, HttpResponse

from . import ledger
from .ledger import Receipt
from .sns import SnsEndpoint, SnsMessage, SnsRejected, is_sns_url, verify

__all__ = ["SesEvent", "SesEvents"]

log = logging.getLogger(__name__)
ENDPOINT = "ses-events"


class _Camel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", alias_generator=to_camel, populate_by_name=True)


class _Recipient(_Camel):
    email_address: str


class _Bounce(_Camel):
    bounce_type: str
    bounce_sub_type: str | None = None
    bounced_recipients: list[_Recipient] = []


class _Complaint(_Camel):
    complained_recipients: list[_Recipient] = []


class _Mail(_Camel):
    message_id: str


class SesEvent(_Camel):
    event_type: str | None = None
    notification_type: str | None = None
    mail: _Mail
    bounce: _Bounce | None = None
    complaint: _Complaint | None = None

    @property
    def kind(self) -> str:
        return self.event_type or self.notification_type or "unknown"

    @property
    def recipients(self) -> list[str]:
        listed = (self.bounce.bounced_recipients if self.bounce else []) + (
            self.complaint.complained_recipients if self.complaint else []
        )
        return [r.email_address for r in listed]


class SesEvents:
    def __init__(self, db: Database, sns: SnsEndpoint, topic_arn: str | None, clock: Callable[[], datetime]) -> None:
        self._db, self._sns, self._topic_arn, self._clock = db, sns, topic_arn, clock

    async def on_event(self, request: HttpRequest) -> HttpResponse:
        payload = _payload(request.body)
        try:
            message = SnsMessage.parse(request.body)
            await verify(message, self._topic_arn, self._sns)
        except SnsRejected as rejected:
            kind = "ses-event" if payload.get("Type") == "Notification" else "sns-subscription"
            receipt = Receipt("sns", kind, _text(payload.get("MessageId")), _text(payload.get("Type")), payload)
            await ledger.reject(self._db, receipt, request.body, ENDPOINT, rejected.reason, self._clock())
            return HttpResponse(403, b"forbidden")
        if message.Type == "Notification":
            await self._notification(message, payload)
        elif message.Type == "SubscriptionConfirmation":
            await self._subscription(message, payload)
        else:
            receipt = Receipt("sns", "sns-subscription", message.MessageId, message.Type, payload)
            await self._keep(receipt, Alert(f"sns_unsubscribed:{message.TopicArn}", "sns_unsubscribed", "critical",
                                            ENDPOINT, "the SES events topic unsubscribed this endpoint"))  # fmt: skip
        return HttpResponse(200)

    async def _notification(self, message: SnsMessage, payload: dict[str, Any]) -> None:
        try:
            event = SesEvent.model_validate_json(message.Message)
        except ValidationError:
            await self._keep(Receipt("sns", "ses-event", message.MessageId, "not an SES event", payload))
            return
        code = event.bounce.bounce_type if event.bounce else None
        outcome = ses_outcome(event.kind, code, event.recipients)
        receipt = Receipt("ses", "ses-event", event.mail.message_id, event.kind, payload, code)
        async with self._db.transaction() as tx:
            receipt_id, moves = await ledger.apply(tx, receipt, email_fallback=False)  # email has no fallback
            if outcome.suppress_reason is not None:
                detail = f"ses {event.kind}" + (f" {code}" if code else "") + f" on message {event.mail.message_id}"
                await ledger.suppress(tx, outcome.suppress, outcome.suppress_reason, detail)
        ledger.log_applied(receipt_id, receipt, moves, blocked=len(outcome.suppress))

    async def _subscription(self, message: SnsMessage, payload: dict[str, Any]) -> None:
        receipt = Receipt("sns", "sns-subscription", message.MessageId, message.Type, payload)
        if not is_sns_url(message.SubscribeURL):
            await self._keep(receipt, _subscription_alert(message, "its SubscribeURL is not on an SNS host"))
            return
        try:
            await self._sns.confirm_subscription(str(message.SubscribeURL))  # before the record: a retry confirms again
        except ProviderPermanent as exc:
            await self._keep(receipt, _subscription_alert(message, f"confirming failed ({exc.detail})"))
            return
        await self._keep(receipt)

    async def _keep(self, receipt: Receipt, alert: Alert | None = None) -> None:
        async with self._db.transaction() as tx:
            receipt_id = await ledger.record(tx, receipt)
            if alert is not None:
                await raise_alerts(tx, [alert])
        level = logging.WARNING if alert else logging.INFO
        log.log(level, "sns.received", extra={"provider": "sns", "status": receipt.status, "receipt_id": receipt_id})


def _subscription_alert(message: SnsMessage, why: str) -> Alert:
    return Alert(f"sns_subscription:{message.MessageId}", "sns_subscription_failed", "critical", ENDPOINT,
                 f"subscription to the SES events topic not confirmed: {why}")  # fmt: skip


def _payload(body: bytes) -> dict[str, Any]:
    """The body as JSON for the audit row; anything else kept as text."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return {"raw": body.decode("utf-8", errors="replace")}
    return parsed if isinstance(parsed, dict) else {"raw": parsed}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
