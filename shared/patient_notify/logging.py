"""Structured JSON logs that never carry a name, phone number or email address.

Redaction is by allow-list: only the fields in ``ALLOWED_FIELDS`` are emitted, and every string
(the message included) is scrubbed of anything shaped like a phone number or an email address.
Messages are constant event names ("reminders.planned"); identifiers travel as fields.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from patient_notify.redact import scrub

__all__ = ["ALLOWED_FIELDS", "RedactingJsonFormatter", "configure_logging", "scrub"]

ALLOWED_FIELDS = frozenset({
    "function", "event_type", "event_id", "event_source", "notification_id", "appointment_id",
    "status", "reason", "count", "published", "failed", "duration_ms", "provider", "provider_code",
    "channel", "attempt", "variable", "error_type", "status_code", "kind", "applied",
    "receipt_id",  # a provider_receipts row: where the raw payload is kept, since it is never logged
    "provider_message_id",  # a provider's id for a message (Twilio SM…, SES, SNS): no patient data
})  # fmt: skip

# Third-party loggers that would print request bodies (recipient, message text) at INFO.
_QUIET = ("twilio", "botocore", "boto3", "urllib3", "mail.log", "httpx", "httpcore")


class RedactingJsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        for field in ALLOWED_FIELDS & record.__dict__.keys():
            value = record.__dict__[field]
            payload[field] = scrub(value) if isinstance(value, str) else value
        if record.exc_info and record.exc_info[0] is not None:
            payload["error_type"] = record.exc_info[0].__name__  # never the message: it may quote data
        return json.dumps(payload, default=str, ensure_ascii=False)  # readable, and scannable in tests


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingJsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("hypercorn.error", "hypercorn.access"):  # hypercorn gives these plain-text handlers
        server_logger = logging.getLogger(name)
        server_logger.handlers[:] = [handler]
        server_logger.propagate = False
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
