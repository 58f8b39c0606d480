"""An SMTP relay stand-in: aiosmtpd on 127.0.0.1 and a free port, recording what it accepts.

Recipients in ``temporary_failures`` get ``451 4.3.0`` at RCPT, those in ``permanent_failures``
``550 5.1.1``; a message to anyone in ``hanging_recipients`` is never answered after DATA, to
exercise a timeout once the message may already have been taken.
"""

from __future__ import annotations

import asyncio
import email
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["ReceivedEmail", "SmtpStandIn"]


@dataclass(frozen=True)
class ReceivedEmail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage


class _RecordingHandler:
    def __init__(self, stand_in: SmtpStandIn) -> None:
        self.stand_in = stand_in

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.stand_in.temporary_failures:
            return "451 4.3.0 try later"
        if address in self.stand_in.permanent_failures:
            return "550 5.1.1 user unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        recipients = tuple(envelope.rcpt_tos)
        if self.stand_in.hanging_recipients.intersection(recipients):
            await asyncio.Event().wait()  # cancelled when the stand-in stops
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=default_policy)
        self.stand_in.record(ReceivedEmail(envelope.mail_from or "", recipients, message))
        return "250 2.0.0 Message accepted for delivery"


class _FreePortController(Controller):
    """aiosmtpd's Controller, bound to port 0: learns its port before its readiness probe."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]  # aiosmtpd leaves it unannotated


class SmtpStandIn:
    """A context manager; ``host`` and ``port`` are where to connect."""

    def __init__(
        self,
        *,
        temporary_failures: Iterable[str] = (),
        permanent_failures: Iterable[str] = (),
        hanging_recipients: Iterable[str] = (),
    ) -> None:
        self.temporary_failures = set(temporary_failures)
        self.permanent_failures = set(permanent_failures)
        self.hanging_recipients = set(hanging_recipients)
        self.host = "127.0.0.1"
        self._messages: list[ReceivedEmail] = []
        self._lock = threading.Lock()
        self._controller = _FreePortController(_RecordingHandler(self), hostname=self.host, port=0)

    @property
    def port(self) -> int:
        return self._controller.port

    @property
    def messages(self) -> list[ReceivedEmail]:
        with self._lock:
            return list(self._messages)

    def record(self, received: ReceivedEmail) -> None:
        with self._lock:
            self._messages.append(received)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
