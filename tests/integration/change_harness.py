"""The change path in one process: dispatcher, sms-sender and email-sender built by their own
``new()`` and ``start(cfg)``, fed CloudEvents in any order, their emitted events caught by a real
HTTP ingress, the providers the Twilio and SMTP stand-ins."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from cloudevents.core.bindings.http import to_binary_event
from cloudevents.core.v1.event import CloudEvent

from patient_notify.codec import new_event
from patient_notify.events import AppointmentChanged, ReminderDue
from patient_notify.signing import sign_event
from sandbox.smtp import SmtpStandIn
from sandbox.twilio import TwilioStandIn
from tests.support.functions import load_module
from tests.support.receiver import Receiver

SECRET = "change-harness-secret-0123456789abcdef"
ACCOUNT_SID = "AC" + "1" * 32
SYSTEM = "/hospital/appointments"


@dataclass
class Sent:
    kind: str
    channel: str
    version: int
    current_version: int  # the appointment's version when the provider was called
    current_status: str


@dataclass
class ChangeHarness:
    database_url: str
    ingress: Receiver
    twilio: TwilioStandIn
    smtp: SmtpStandIn
    functions: dict[str, Any]
    responses: list[int] = field(default_factory=list)
    taken: int = 0  # emitted events already moved into the pool

    async def deliver(self, event: CloudEvent) -> int:
        message = to_binary_event(event)
        target = _target(event.get_type())
        status, _ = await self.functions[target].process(dict(message.headers), message.body)
        self.responses.append(status)
        return int(status)

    def emitted(self) -> list[tuple[dict[str, str], bytes]]:
        """Events the functions published since the last call."""
        new, self.taken = self.ingress.requests[self.taken :], len(self.ingress.requests)
        return new

    def sent(self, appointment_id: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(
                "SELECT n.kind, n.channel, n.appointment_version, n.status FROM notifications n "
                "WHERE n.appointment_id = %s AND n.status = 'sent' ORDER BY n.id",
                (appointment_id,),
            ).fetchall()

    def appointment(self, appointment_id: str) -> tuple[int, str]:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute("SELECT version, status FROM appointments WHERE id = %s", (appointment_id,)).fetchone()
        assert row is not None
        return int(row[0]), str(row[1])


def _target(event_type: str) -> str:
    if event_type.endswith(".sms.send.v1"):
        return "sms-sender"
    if event_type.endswith(".email.send.v1"):
        return "email-sender"
    return "dispatcher"


@asynccontextmanager
async def change_harness(database_url: str) -> AsyncIterator[ChangeHarness]:
    with ExitStack() as stack:
        ingress = stack.enter_context(Receiver())
        twilio = stack.enter_context(TwilioStandIn(ACCOUNT_SID, "token"))
        smtp = stack.enter_context(SmtpStandIn())
        common = {"DATABASE_URL": database_url, "BROKER_URL": ingress.url, "LOG_LEVEL": "WARNING"}
        cfgs = {
            "dispatcher": {**common, "APPOINTMENT_EVENTS_SECRET": SECRET},
            "sms-sender": {**common, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "token",
                           "TWILIO_FROM_NUMBER": "+12025550100", "TWILIO_BASE_URL": twilio.base_url},
            "email-sender": {**common, "EMAIL_PROVIDER": "smtp", "EMAIL_FROM": "clinic@example.org",
                             "SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "SMTP_STARTTLS": "false"},
        }  # fmt: skip
        functions = {}
        for name, cfg in cfgs.items():
            function = load_module(name, "func").new()
            function.start(cfg)
            functions[name] = function
        try:
            yield ChangeHarness(database_url, ingress, twilio, smtp, functions)
        finally:
            for function in functions.values():
                await function.aclose()


def announced(appointment_id: str, source_version: int, reason: str, starts_at: datetime, location_id: str,
              status: str = "booked", *, signed_at: datetime | None = None, secret: str = SECRET) -> CloudEvent:  # fmt: skip
    data = AppointmentChanged.model_validate({
        "appointment_id": appointment_id, "source_version": source_version, "reason": reason,
        "starts_at": starts_at, "location_id": location_id, "status": status,
    })  # fmt: skip
    event = new_event(data, source=SYSTEM, subject=appointment_id, event_id=str(uuid.uuid4()))
    return sign_event(event, secret.encode(), now=signed_at or datetime.now(UTC))


def reminder_due(appointment_id: str, starts_at: datetime, zone: str, version: int = 1) -> CloudEvent:
    local_date = starts_at.astimezone(ZoneInfo(zone)).date()
    data = ReminderDue(appointment_id=appointment_id, appointment_version=version, local_date=local_date,
                       due_at=starts_at - timedelta(days=3))  # fmt: skip
    return new_event(data, source="/patient-notify/scheduler", subject=appointment_id)
