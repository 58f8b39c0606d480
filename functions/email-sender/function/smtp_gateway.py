"""``SmtpEmailGateway``: the ``EmailGateway`` port over an SMTP relay (smtplib).

Until DATA begins, the relay holds nothing; after that, silence is ambiguous. Translated once:

    ProviderRetryable       a 4xx reply; a 5xx before RCPT (greeting, EHLO, STARTTLS, AUTH, MAIL
                            FROM: 535 bad credentials, 530 authentication required, a sender the
                            relay refuses: our configuration, not this email); refused,
                            unreachable, dropped, timed out or a TLS failure before DATA
    ProviderPermanent       a 5xx reply about this email (550 user unknown at RCPT, 554 content
                            rejected after DATA); a message that cannot be written (a newline in a
                            header, a non-ASCII address the relay cannot take)
    ProviderOutcomeUnknown  a timeout, dropped connection or TLS error once DATA began

A retryable refusal never loops silently: the broker retries (the Trigger's ``delivery.retry``,
with backoff), then dead-letters the event, which is recorded and alerted.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid

from patient_notify.delivery import OutboundEmail, ProviderAccepted
from patient_notify.errors import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderPermanent,
    ProviderRetryable,
)

__all__ = ["SmtpEmailGateway"]

PROVIDER = "smtp"


class SmtpEmailGateway:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        from_address: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout_s: float = 10.0,
    ) -> None:
        self._host, self._port, self._timeout_s = host, port, timeout_s
        self._from_address = from_address
        self._username, self._password, self._starttls = username, password, starttls

    def send_email(self, message: OutboundEmail) -> ProviderAccepted:
        composed = self._compose(message)
        try:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout_s)
        except (OSError, smtplib.SMTPException) as exc:  # a 554 greeting refuses us, not this email
            raise _before_data(exc, ours=True) from exc
        try:
            self._deliver(smtp, composed, message.to)
        except ProviderError:
            smtp.close()  # not QUIT: after a timeout it would wait a second time
            raise
        _quit(smtp)
        return ProviderAccepted(PROVIDER, str(composed["Message-ID"]))

    def _compose(self, message: OutboundEmail) -> EmailMessage:
        composed = EmailMessage()
        try:
            composed["From"] = self._from_address
            composed["To"] = message.to
            composed["Subject"] = message.subject
        except ValueError as exc:  # a CR or LF in a header: never send it
            raise ProviderPermanent(PROVIDER, "invalid-message", type(exc).__name__) from exc
        composed["Date"] = formatdate(usegmt=True)
        composed["Message-ID"] = make_msgid(domain=self._from_address.rpartition("@")[2] or None)
        composed.set_content(message.text, charset="utf-8", cte="quoted-printable")
        return composed

    def _deliver(self, smtp: smtplib.SMTP, composed: EmailMessage, to: str) -> None:
        try:
            self._open_session(smtp)
        except (OSError, smtplib.SMTPException, UnicodeEncodeError) as exc:
            raise _before_data(exc, ours=True) from exc
        try:
            _expect(smtp.rcpt(to), 250, 251)
        except (OSError, smtplib.SMTPException, UnicodeEncodeError) as exc:
            raise _before_data(exc, ours=False) from exc
        try:
            code, _ = smtp.data(composed.as_bytes(policy=SMTP_POLICY))
        except smtplib.SMTPDataError as exc:  # DATA refused before any content was sent
            raise _reply_error(exc.smtp_code) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise ProviderOutcomeUnknown(PROVIDER, "no-response", type(exc).__name__) from exc
        if code != 250:
            raise _reply_error(code)

    def _open_session(self, smtp: smtplib.SMTP) -> None:
        """EHLO, STARTTLS, AUTH and MAIL FROM: every refusal here is about us, not the recipient."""
        smtp.ehlo_or_helo_if_needed()
        if self._starttls:
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if self._username:
            smtp.login(self._username, self._password or "")
        _expect(smtp.mail(self._from_address), 250)


def _expect(reply: tuple[int, bytes], *accepted: int) -> None:
    code, text = reply
    if code not in accepted:
        raise smtplib.SMTPResponseException(code, text)


def _before_data(exc: Exception, *, ours: bool) -> ProviderError:
    """``ours``: before RCPT, where even a 5xx is our credentials or configuration, not this email."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply_error(exc.smtp_code, ours=ours)
    if isinstance(exc, UnicodeEncodeError):
        return ProviderPermanent(PROVIDER, "non-ascii-address", type(exc).__name__)
    return ProviderRetryable(PROVIDER, "connect", type(exc).__name__)


def _reply_error(code: int, *, ours: bool = False) -> ProviderError:
    detail = f"SMTP {code}"  # not the relay's text: it can echo the address
    if code >= 500 and not ours:
        return ProviderPermanent(PROVIDER, str(code), detail)
    return ProviderRetryable(PROVIDER, str(code), detail)


def _quit(smtp: smtplib.SMTP) -> None:
    """Say goodbye; the message is already accepted, so a failure here changes nothing."""
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()
