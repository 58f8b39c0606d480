"""sms-sender: one SMS per send event, exactly once (DESIGN §5, §7).

Through Twilio, failing over to SNS while Twilio is down or throttling (``failover.py``), each
provider paced to its configured rate across pods (``patient_notify.pacing``). A number that
opted out is never written to; one that cannot take the message (invalid, not mobile, opted out
at Twilio: 21610 is recorded as an opt-out) falls back to email (``patient_notify.fallback``).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Mapping

from cloudevents.core.base import BaseCloudEvent

from patient_notify.codec import model_from_event
from patient_notify.db import Transaction
from patient_notify.delivery import OutboundSms, ProviderAccepted
from patient_notify.domain.models import is_e164
from patient_notify.domain.sending import PROVIDER_OPT_OUT, number_cannot_take_sms
from patient_notify.events import SmsSendRequested
from patient_notify.fallback import fallback_to_email
from patient_notify.function import EventFunction, Route, Runtime
from patient_notify.pacing import Pacer
from patient_notify.sending import Claimed, Recovered, Unsendable, confirm_still_wanted, deliver

from . import failover
from .settings import SmsSenderSettings, routes_for

__all__ = ["SmsSender", "SmsSenderSettings", "new", "wire"]

OPTED_OUT_BY_PROVIDER = "provider:21610"


class SmsSender:
    def __init__(self, runtime: Runtime, routes: failover.SmsRoutes, pacer: Pacer, settings: SmsSenderSettings) -> None:
        self._runtime, self._routes, self._pacer = runtime, routes, pacer
        self._validity = settings.twilio_validity_period_s
        self._callback = settings.status_callback
        self._email_fallback = settings.email_fallback

    async def on_send(self, event: BaseCloudEvent) -> None:
        request = model_from_event(event, SmsSendRequested)
        await deliver(self._runtime.db, request.notification_id, self._send, recover=self._recover,
                      publisher=self._runtime.publisher)  # fmt: skip

    async def _send(self, claimed: Claimed) -> ProviderAccepted:
        """The chosen provider, at its pacing turn; if Twilio failed over while this waited, SNS instead."""
        for second_choice in (False, True):
            with self._routes.route() as route:
                if await self._pacer.wait_turn(route.pacing_key, route.rate):
                    await confirm_still_wanted(self._runtime.db, claimed)  # STOP or cancelled while it waited?
                if second_choice or self._routes.still_chosen(route):
                    return await asyncio.to_thread(route.send, self._message(route, claimed))
        raise AssertionError("unreachable: the second choice always sends")

    def _message(self, route: failover.Route, claimed: Claimed) -> OutboundSms:
        validity = self._validity if claimed.kind == "reminder" else None
        callback = self._callback if route.provider == "twilio" else None  # SNS has no receipts
        return OutboundSms(claimed.recipient, claimed.body, validity, callback)

    async def _recover(self, tx: Transaction, *, unsendable: Unsendable) -> Recovered:
        """A number that cannot take the SMS: record a provider's opt-out, then try email."""
        error = unsendable.error
        if error is not None and (error.provider, error.code) == PROVIDER_OPT_OUT and is_e164(unsendable.recipient):
            await tx.run("sender_record_opt_out", {"number": unsendable.recipient, "source": OPTED_OUT_BY_PROVIDER})
        if error is not None and not number_cannot_take_sms(error.provider, error.code):
            return Recovered()  # our request was wrong (credentials, body): email would not fix it
        fallback = await fallback_to_email(tx, unsendable.notification_id, email_fallback=self._email_fallback)
        return Recovered(fallback.outbox_ids, fallback.covered, fallback.reason)


def wire(
    settings: SmsSenderSettings, runtime: Runtime, *, clock: Callable[[], float] = time.monotonic
) -> Mapping[str, Route]:
    pacer = Pacer(runtime.db, max_wait_s=settings.pacing_max_wait_s)
    return {SmsSendRequested.TYPE: SmsSender(runtime, routes_for(settings, clock), pacer, settings).on_send}


def new(*, clock: Callable[[], float] = time.monotonic) -> EventFunction[SmsSenderSettings]:
    """The function; ``clock`` times the failover's cooldown (tests pass their own)."""
    return EventFunction("sms-sender", SmsSenderSettings, functools.partial(wire, clock=clock))
