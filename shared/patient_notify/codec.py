"""Pure codecs at the edge: HTTP request ↔ CloudEvent ↔ pydantic model (cloudevents SDK 2.x)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import HTTPMessage, from_http_event, to_binary_event
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.v1.event import CloudEvent
from pydantic import ValidationError

from patient_notify.errors import EventRejected
from patient_notify.events import EventData

__all__ = ["decode_http", "encode_binary", "model_from_event", "new_event"]

M = TypeVar("M", bound=EventData)
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_YEARS = range(2, 9999)  # a year's margin within datetime's: the windows computed around a time stay in range


def decode_http(headers: Mapping[str, str], body: bytes) -> BaseCloudEvent:
    """Binary or structured mode; anything else is an ``EventRejected`` with the reason."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        event = from_http_event(HTTPMessage(headers=lowered, body=body))
    except (BaseCloudEventException, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise EventRejected(f"not a CloudEvent: {exc}") from exc
    if not _carries_an_id(lowered, body):  # the SDK would invent one, and the duplicate check never match it
        raise EventRejected("not a CloudEvent: no id")
    for name, value in event.get_attributes().items():
        # The CloudEvents type system disallows control characters in strings; PostgreSQL cannot store NUL.
        if isinstance(value, str) and _CONTROL.search(value):
            raise EventRejected(f"not a CloudEvent: control character in {name}")
    time = event.get_time()
    if time is not None and time.year not in _YEARS:
        raise EventRejected("not a CloudEvent: time out of range")
    return event


def model_from_event(event: BaseCloudEvent, model: type[M]) -> M:
    if event.get_type() != model.TYPE:
        raise EventRejected(f"expected type {model.TYPE}", event_type=event.get_type())
    data = event.get_data()
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data) if data else {}
        except ValueError as exc:
            raise EventRejected("data is not JSON", event_type=model.TYPE) from exc
    if _holds_nul(data):  # every field ends up in PostgreSQL text, which cannot hold NUL
        raise EventRejected("invalid data: a string holds NUL", event_type=model.TYPE)
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        raise EventRejected(f"invalid data: {_first_error(exc)}", event_type=model.TYPE) from exc


def new_event(
    data: EventData,
    *,
    source: str,
    subject: str | None = None,
    extensions: Mapping[str, str] | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
) -> CloudEvent:
    attributes: dict[str, Any] = {
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": data.TYPE,
        "specversion": "1.0",
        "time": time or datetime.now(UTC),
        "datacontenttype": "application/json",
        **(extensions or {}),
    }
    if subject:
        attributes["subject"] = subject
    return CloudEvent(attributes=attributes, data=data.model_dump(mode="json"))


def encode_binary(event: BaseCloudEvent) -> tuple[dict[str, str], bytes]:
    message = to_binary_event(event)
    return dict(message.headers), message.body


def _carries_an_id(headers: Mapping[str, str], body: bytes) -> bool:
    if not headers.get("content-type", "").startswith("application/cloudevents"):
        return bool(headers.get("ce-id"))
    document = json.loads(body)  # parsed once already: structured mode is JSON
    return isinstance(document, dict) and bool(document.get("id"))


def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    return isinstance(value, list) and any(_holds_nul(v) for v in value)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "data"
    return f"{where}: {error['msg']}"
