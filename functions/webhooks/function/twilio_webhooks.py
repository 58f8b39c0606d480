"""``POST /twilio/status`` (delivery receipts) and ``POST /twilio/inbound`` (replies: STOP, START, HELP).

Twilio signs the URL it called (scheme, host, port, path, query) followed by the sorted form
fields, with the account's auth token (``X-Twilio-Signature``, HMAC-SHA1). Behind Knative's
ingress the function sees ``http://webhooks.patient-notify.svc…``, never that URL, so it is
rebuilt from WEBHOOKS_PUBLIC_URL plus the request's path and query. Twilio documents that it
signs an https URL sometimes with and sometimes without the default port (``:443``):
``RequestValidator.validate`` accepts either, and nothing else.

A body over 64 KiB is no Twilio form (they are a few hundred bytes): it is answered 413 unparsed,
and kept, bounded, like any refused request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from patient_notify.db import Database, Transaction
from patient_notify.domain.receipts import InboundAction, inbound_action, is_dialable, twilio_outcome
from patient_notify.http_function import HttpRequest, HttpResponse

from . import ledger
from .ledger import Receipt

__all__ = ["Form", "TwilioSignature", "TwilioWebhooks", "parse_form"]

log = logging.getLogger(__name__)
FORBIDDEN = HttpResponse(403, b"forbidden")
TOO_LARGE = HttpResponse(413, b"body too large")
MAX_FORM_BYTES = 64 * 1024
OPTED_OUT_BY_PROVIDER = "provider:21610"


class Form(dict[str, list[str]]):
    """Form fields with every value kept; ``getlist`` is how RequestValidator reads repeated fields."""

    def getlist(self, name: str) -> list[str]:
        return self[name]

    def first(self, *names: str) -> str | None:
        return next((self[name][0] for name in names if self.get(name)), None)

    def payload(self) -> dict[str, Any]:
        return {name: values[0] if len(values) == 1 else values for name, values in self.items()}


def parse_form(body: bytes) -> Form:
    return Form(parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True))


class TwilioSignature:
    def __init__(self, auth_token: str, public_url: str) -> None:
        self._validator = RequestValidator(auth_token)
        self._base = public_url.rstrip("/")

    def problem(self, request: HttpRequest, form: Form) -> str | None:
        """Why the request is not Twilio's, or None when its signature verifies."""
        signature = request.headers.get("x-twilio-signature")
        if not signature:
            return "signature missing"
        url = self._base + request.path + (f"?{request.query}" if request.query else "")
        return None if self._validator.validate(url, form, signature) else "signature invalid"


class TwilioWebhooks:
    def __init__(
        self, db: Database, signature: TwilioSignature, help_text: str, clock: Callable[[], datetime],
        *, email_fallback: bool,
    ) -> None:  # fmt: skip
        self._db, self._signature, self._help_text, self._clock = db, signature, help_text, clock
        self._email_fallback = email_fallback  # EMAIL_FALLBACK: an undelivered SMS may be replaced by an email

    async def on_status(self, request: HttpRequest) -> HttpResponse:
        if len(request.body) > MAX_FORM_BYTES:
            return await self._refuse_oversized(request, "status")
        form = parse_form(request.body)
        status, code = form.first("MessageStatus", "SmsStatus"), form.first("ErrorCode")
        receipt = Receipt("twilio", "status", form.first("MessageSid", "SmsSid"), status, form.payload(), code)
        if problem := self._signature.problem(request, form):
            await ledger.reject(self._db, receipt, request.body, "twilio-status", problem, self._clock())
            return FORBIDDEN
        to = form.first("To") or ""
        outcome = twilio_outcome(status or "", code)
        async with self._db.transaction() as tx:
            receipt_id, moves = await ledger.apply(tx, receipt, email_fallback=self._email_fallback)
            if outcome.opt_out and is_dialable(to):
                await ledger.opt_out(tx, to, OPTED_OUT_BY_PROVIDER)
        ledger.log_applied(receipt_id, receipt, moves, blocked=int(outcome.opt_out and is_dialable(to)))
        return HttpResponse(200)  # an unknown sid too: Twilio would otherwise retry it for nothing

    async def on_inbound(self, request: HttpRequest) -> HttpResponse:
        if len(request.body) > MAX_FORM_BYTES:
            return await self._refuse_oversized(request, "inbound")
        form = parse_form(request.body)
        receipt = Receipt("twilio", "inbound", form.first("MessageSid", "SmsSid"), form.first("SmsStatus"),
                          form.payload())  # fmt: skip
        if problem := self._signature.problem(request, form):
            await ledger.reject(self._db, receipt, request.body, "twilio-inbound", problem, self._clock())
            return FORBIDDEN
        action = inbound_action(form.first("Body") or "", form.first("OptOutType"))
        number = form.first("From") or ""
        async with self._db.transaction() as tx:
            receipt_id = await ledger.record(tx, receipt)
            await _apply_keyword(tx, action, number)
        kind = action.action if action else "message"
        log.info("inbound.received", extra={"provider": "twilio", "kind": kind, "receipt_id": receipt_id})
        reply = action is not None and action.action == "help" and not action.answered_by_provider
        return twiml(self._help_text if reply else None)

    async def _refuse_oversized(self, request: HttpRequest, kind: str) -> HttpResponse:
        """413 unparsed (nothing is read from it), kept bounded with why, counted by the hourly alert."""
        receipt = Receipt("twilio", kind, None, None, {})
        await ledger.reject(self._db, receipt, request.body, f"twilio-{kind}", "body over 64 KiB", self._clock())
        return TOO_LARGE


async def _apply_keyword(tx: Transaction, action: InboundAction | None, number: str) -> None:
    if action is None or action.action == "help" or not is_dialable(number):
        return
    if action.action == "opt_out":
        await ledger.opt_out(tx, number, f"keyword:{action.keyword}")
    else:
        await ledger.opt_in(tx, number)


def twiml(reply: str | None) -> HttpResponse:
    """A TwiML answer: one reply message, or none (an empty ``<Response/>``)."""
    response = MessagingResponse()
    if reply is not None:
        response.message(reply)
    return HttpResponse(200, str(response.to_xml()).encode(), "application/xml")
