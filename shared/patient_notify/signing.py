r"""HMAC signatures on appointment-system events: what every sender must compute, and our check.

Knative's OIDC and EventPolicy do not cover the RabbitMQ broker, so the dispatcher verifies each
event itself. The scheme, for a sender written in any language:

1. Take the event's ``data``: it must be a JSON object. Serialise it canonically: object keys
   sorted by code point at every level, no whitespace (``,`` and ``:`` separators), every
   character other than ``"``, ``\`` and U+0000..U+001F as raw UTF-8 (no ``\u`` escapes, not
   even for ``/`` or non-ASCII); those escaped as ``\"``, ``\\``, ``\b``, ``\f``, ``\n``,
   ``\r``, ``\t`` or ``\u00xx`` (lowercase hex). In Python that is
   ``json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``. Numbers
   are integers in every signed event type (floats print differently across languages).
   Take the lowercase hex SHA-256 of the result's UTF-8 bytes.
2. Choose ``pnsignedat``: the current time, RFC 3339, UTC, e.g. ``2026-11-24T09:00:00Z``.
3. The signed string is these seven lines joined by ``\n`` (no trailing newline), UTF-8::

       v1
       <id>
       <source>
       <type>
       <subject, or an empty line when the event has none>
       <pnsignedat, exactly as sent>
       <the SHA-256 hex digest from step 1>

   ``id``, ``source``, ``type`` and ``subject`` must not contain a line break.
4. ``pnsignature`` is ``v1=`` followed by the lowercase hex HMAC-SHA256 of the signed string,
   keyed with the shared secret's UTF-8 bytes (used as is, not hex- or base64-decoded).
5. Send both as CloudEvent extension attributes: in binary mode the ``ce-pnsignedat`` and
   ``ce-pnsignature`` headers, in structured mode top-level ``pnsignedat`` and ``pnsignature``.

Because the data is canonicalised, binary and structured content modes verify identically, and
so does a body re-serialised by the broker. Everything outside the signed string (``time``,
``datacontenttype``, other extensions such as the broker's ``knativearrivaltime``) may change in
transit and must not be trusted. The receiver accepts ``pnsignedat`` within ±5 minutes of its
clock; a replay inside that window has the same ``source`` and ``id``, so ``processed_events``
drops it. Any of several secrets verifies (rotation: the current one and the previous one).

Failures are ``EventRejected`` (kept, alerted; see ``patient_notify.errors``)::

    EventRejected
    ├── SignatureMissing   pnsignedat or pnsignature absent (an unsigned event)
    ├── SignatureInvalid   malformed, or no secret reproduces the signature (forged or altered)
    └── SignatureExpired   authentic, but pnsignedat is outside the window (replay or wrong clock)

Reasons name what failed and never contain a secret or a signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.v1.event import CloudEvent

from patient_notify.errors import EventRejected

__all__ = [
    "DEFAULT_WINDOW",
    "SIGNATURE",
    "SIGNED_AT",
    "SignatureExpired",
    "SignatureInvalid",
    "SignatureMissing",
    "sign_event",
    "string_to_sign",
    "verify_event",
]

SIGNED_AT = "pnsignedat"
SIGNATURE = "pnsignature"
SCHEME = "v1"
DEFAULT_WINDOW = timedelta(minutes=5)
_SIGNATURE_FORMAT = re.compile(rf"{SCHEME}=[0-9a-f]{{64}}")
# RFC 3339 section 5.6 date-time; fromisoformat alone would also take dates, no offset, week dates.
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", re.ASCII)


class SignatureMissing(EventRejected):
    def __init__(self, missing: Sequence[str], *, event_type: str | None = None) -> None:
        super().__init__(f"unsigned event: missing {' and '.join(missing)}", event_type=event_type)
        self.missing = tuple(missing)


class SignatureInvalid(EventRejected):
    pass


class SignatureExpired(EventRejected):
    def __init__(self, skew: timedelta, window: timedelta, *, event_type: str | None = None) -> None:
        side = "in the future: the sender's clock is fast" if skew > timedelta(0) else "old: a replay or a slow clock"
        reason = f"{SIGNED_AT} is {_duration(skew)} {side} (window ±{_duration(window)})"
        super().__init__(reason, event_type=event_type)
        self.skew = skew
        self.window = window


def string_to_sign(event: BaseCloudEvent, signed_at: str) -> str:
    """The scheme's step 3; ``ValueError`` when the event cannot be signed (data, line breaks)."""
    lines = [SCHEME, event.get_id(), event.get_source(), event.get_type(), event.get_subject() or "", signed_at]
    if any("\n" in line or "\r" in line for line in lines):
        raise ValueError("id, source, type, subject and pnsignedat must not contain a line break")
    return "\n".join([*lines, hashlib.sha256(_canonical_data(event)).hexdigest()])


def sign_event(event: BaseCloudEvent, secret: bytes, *, now: datetime) -> CloudEvent:
    """A copy of ``event`` with ``pnsignedat`` (``now``, to the second) and ``pnsignature``."""
    _require_secrets([secret], now)
    signed_at = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    signature = _signature(string_to_sign(event, signed_at), secret)
    attributes = {**event.get_attributes(), SIGNED_AT: signed_at, SIGNATURE: signature}
    return CloudEvent(attributes=attributes, data=event.get_data())


def verify_event(
    event: BaseCloudEvent, secrets: Sequence[bytes], *, now: datetime, window: timedelta = DEFAULT_WINDOW
) -> None:
    """Return if one of ``secrets`` signed the event within ``window`` of ``now``; raise otherwise."""
    _require_secrets(secrets, now)
    kind = event.get_type()
    signed_at, given = event.get_extension(SIGNED_AT), event.get_extension(SIGNATURE)
    if missing := [name for name, value in ((SIGNED_AT, signed_at), (SIGNATURE, given)) if value in (None, "")]:
        raise SignatureMissing(missing, event_type=kind)
    if not isinstance(given, str) or not _SIGNATURE_FORMAT.fullmatch(given):
        raise SignatureInvalid(f"{SIGNATURE} is not '{SCHEME}=' and 64 lowercase hex digits", event_type=kind)
    if not isinstance(signed_at, str) or not _RFC3339.fullmatch(signed_at):
        raise SignatureInvalid(f"{SIGNED_AT} is not an RFC 3339 timestamp: {str(signed_at)[:40]!r}", event_type=kind)
    try:
        instant = datetime.fromisoformat(signed_at.upper())
        expected = [_signature(string_to_sign(event, signed_at), secret) for secret in secrets]
    except ValueError as exc:  # an impossible date (2026-02-30), data not an object, a line break, a lone surrogate
        raise SignatureInvalid(f"cannot verify: {exc}", event_type=kind) from exc
    if not any(hmac.compare_digest(candidate, given) for candidate in expected):
        raise SignatureInvalid("signature matches no configured secret: forged, altered or wrong key", event_type=kind)
    if abs(skew := instant - now) > window:
        raise SignatureExpired(skew, window, event_type=kind)


def _canonical_data(event: BaseCloudEvent) -> bytes:
    data = event.get_data()
    try:
        if isinstance(data, bytes | str):
            data = json.loads(data)  # a ValueError (UnicodeDecodeError included) for a body that is not JSON
        if not isinstance(data, dict):
            raise ValueError("data must be a JSON object")
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except RecursionError as exc:  # nesting deeper than the interpreter's limit: refuse, do not crash
        raise ValueError("data is nested too deeply") from exc


def _signature(signed: str, secret: bytes) -> str:
    return f"{SCHEME}=" + hmac.new(secret, signed.encode(), hashlib.sha256).hexdigest()


def _require_secrets(secrets: Sequence[bytes], now: datetime) -> None:
    """Programming errors, not rejections: settings guarantee both."""
    if not secrets or not all(secrets):
        raise ValueError("at least one non-empty secret is required")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")


def _duration(delta: timedelta) -> str:
    minutes, seconds = divmod(int(abs(delta.total_seconds())), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"
