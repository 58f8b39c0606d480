"""SES event publishing through SNS, on this machine: the receipts for what moto's SES accepted.

A site that wants email receipts gives SES a configuration set whose event destination is an SNS
topic, and subscribes its webhooks endpoint to that topic. Here, each message ``SesStandIn``
accepted becomes one SES event, ``Delivery`` or, for a recipient in ``bouncing``, a permanent
``Bounce``, wrapped in an SNS ``Notification`` signed by ``SnsStandIn`` and POSTed to the
endpoint as SNS does (``text/plain`` JSON, ``x-amz-sns-*`` headers). A refusal (5xx or no answer)
is retried at once, three times, as SNS's immediate-retry phase does; what is still refused, or
answered 4xx, is counted, never dropped silently. Nothing here logs an address.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Self

import httpx

from sandbox.ses import SesSentEmail, SesStandIn
from sandbox.sns import SnsStandIn, ses_event

__all__ = ["SesEventPublisher"]

IMMEDIATE_RETRIES = 3


class SesEventPublisher:
    """A context manager; ``endpoint`` is the subscribed URL (``…/ses/events``)."""

    def __init__(self, ses: SesStandIn, sns: SnsStandIn, endpoint: str, bouncing: Iterable[str] = ()) -> None:
        self._ses, self._sns, self._endpoint = ses, sns, endpoint
        self.bouncing = frozenset(address.lower() for address in bouncing)
        self.delivered = self.bounced = self.refused = 0  # events the endpoint took, by kind; and did not take
        self._published = 0  # messages moto accepted that have had their event
        self._done = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ses-events", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def wait_published(self, timeout: float) -> bool:
        """True once every message SES accepted so far has had its event answered (or refused for good)."""
        with self._done:
            return self._done.wait_for(lambda: self._published >= self._ses.sent_count(), timeout)

    def _run(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while not self._stop.wait(0.1):  # SES publishes within moments of a send, not at once
                recorded = self._ses.sent_count()
                for message in self._ses.sent_messages(self._published, recorded):
                    self._publish(client, message)
                with self._done:
                    self._published = recorded
                    self._done.notify_all()

    def _publish(self, client: httpx.Client, message: SesSentEmail) -> None:
        bounced = [to for to in message.to if to.lower() in self.bouncing]
        event = ses_event("Bounce", message.message_id, bounced) if bounced else ses_event(
            "Delivery", message.message_id, message.to
        )  # fmt: skip
        notification = self._sns.notification(json.dumps(event))
        headers = {
            "content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification",
            "x-amz-sns-message-id": notification["MessageId"], "x-amz-sns-topic-arn": self._sns.topic_arn,
        }  # fmt: skip
        for _ in range(1 + IMMEDIATE_RETRIES):
            try:
                status = client.post(self._endpoint, content=json.dumps(notification), headers=headers).status_code
            except httpx.HTTPError:
                continue
            if status < 500:
                break
        else:
            status = 0
        if 200 <= status < 300:
            self.bounced += bool(bounced)
            self.delivered += not bounced
        else:
            self.refused += 1
