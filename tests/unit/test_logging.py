"""Logs never carry a name, phone number or email address."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from patient_notify.logging import RedactingJsonFormatter
from patient_notify.redact import scrub


def _format(message: str, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return dict(json.loads(RedactingJsonFormatter().format(record)))


class TestRedaction:
    @pytest.mark.parametrize(
        ("text", "secret"),
        [
            ("to +12025550123 failed", "2025550123"),  # E.164
            ("call (202) 555-0123", "555-0123"),  # national format with punctuation
            ("ada.lovelace+nhs@example.org bounced", "lovelace"),  # email
            ("+44 20 7946 0123", "7946"),  # spaced international
            ("+34612345678", "612345678"),  # Spanish mobile
        ],
    )
    def test_phone_and_email_shapes_are_scrubbed(self, text: str, secret: str) -> None:
        """Anything shaped like a phone number or an email address is replaced by a placeholder."""
        assert secret not in scrub(text)

    @pytest.mark.parametrize("text", ["due 2026-01-05", "notification 12345", "took 1500 ms"])
    def test_dates_and_ids_are_kept(self, text: str) -> None:
        """Dates, ids and durations are not phone numbers: scrubbing leaves them readable."""
        assert scrub(text) == text

    def test_only_allow_listed_fields_are_written(self) -> None:
        """A field outside the allow-list (a name, say) never reaches the log line."""
        line = _format("send.sent", notification_id=7, given_name="Zoëlle", recipient="+12025550123")
        assert line["notification_id"] == 7
        assert "given_name" not in line and "recipient" not in line
        assert "Zoëlle" not in json.dumps(line, ensure_ascii=False) and "2025550123" not in json.dumps(line)

    def test_non_ascii_is_written_as_is(self) -> None:
        """Lines are UTF-8, not escaped to ASCII, so a scan for a leaked 'Zoëlle' can find it."""
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "Zoëlle", None, None)
        assert "Zoëlle" in RedactingJsonFormatter().format(record)

    def test_allowed_fields_are_scrubbed_too(self) -> None:
        """Even an allowed field is scrubbed: a reason quoting a number loses the number."""
        line = _format("send.failed", reason="The 'To' number +12025550123 is not valid")
        assert line["reason"] == "The 'To' number [phone] is not valid"

    def test_exception_text_is_not_written(self) -> None:
        """A logged exception contributes its type only, never its message (it may quote data)."""
        try:
            raise ValueError("patient ada@example.org")
        except ValueError:
            record = logging.LogRecord("t", logging.ERROR, __file__, 1, "event.failed", None, sys.exc_info())
        line = RedactingJsonFormatter().format(record)
        assert "ada@example.org" not in line and json.loads(line)["error_type"] == "ValueError"
