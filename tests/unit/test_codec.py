"""CloudEvent codecs: binary and structured in, binary out, every failure an EventRejected."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from cloudevents.core.bindings.http import to_structured_event

from patient_notify.codec import decode_http, encode_binary, model_from_event, new_event
from patient_notify.errors import EventRejected
from patient_notify.events import EVENT_MODELS, ReminderDue, SmsSendRequested

DUE = ReminderDue(
    appointment_id="a1",
    appointment_version=2,
    local_date=date(2026, 3, 10),
    due_at=datetime(2026, 3, 7, 15, tzinfo=UTC),
)


class TestRoundTrip:
    def test_binary_mode_round_trips(self) -> None:
        """A model encoded as a binary CloudEvent decodes back to an equal model."""
        headers, body = encode_binary(new_event(DUE, source="/test", subject="a1"))
        event = decode_http(headers, body)
        assert (event.get_type(), event.get_subject()) == (ReminderDue.TYPE, "a1")
        assert model_from_event(event, ReminderDue) == DUE

    def test_structured_mode_is_accepted(self) -> None:
        """The same event in structured mode decodes to the same model."""
        message = to_structured_event(new_event(DUE, source="/test"))
        assert model_from_event(decode_http(message.headers, message.body), ReminderDue) == DUE

    def test_every_type_constant_is_unique_and_registered(self) -> None:
        """Each event model has its own type string, and the registry maps it back."""
        assert all(EVENT_MODELS[model.TYPE] is model for model in EVENT_MODELS.values())


class TestRejections:
    @pytest.mark.parametrize(
        ("headers", "body", "reason"),
        [
            ({"content-type": "text/plain"}, b"hi", "not a CloudEvent"),  # neither mode
            ({"ce-specversion": "1.0", "ce-id": "1", "ce-type": "t"}, b"{}", "not a CloudEvent"),  # no source
            # No id: the SDK would invent one, which no duplicate check could ever match.
            ({"ce-specversion": "1.0", "ce-source": "/s", "ce-type": "t"}, b"{}", "not a CloudEvent: no id"),
            (
                {"content-type": "application/cloudevents+json"},
                b'{"specversion": "1.0", "source": "/s", "type": "t"}',
                "not a CloudEvent: no id",
            ),
        ],
    )
    def test_not_a_cloudevent(self, headers: dict[str, str], body: bytes, reason: str) -> None:
        """Anything that is not a CloudEvent is an EventRejected whose reason says so."""
        with pytest.raises(EventRejected, match=reason):
            decode_http(headers, body)

    def test_wrong_type_for_the_model(self) -> None:
        """Decoding an event as a model of another type is refused, naming the expected type."""
        event = new_event(DUE, source="/test")
        with pytest.raises(EventRejected, match=SmsSendRequested.TYPE):
            model_from_event(event, SmsSendRequested)

    def test_invalid_data_names_the_field(self) -> None:
        """A field that fails validation is named in the reason."""
        headers, _ = encode_binary(new_event(DUE, source="/test"))
        body = json.dumps({**DUE.model_dump(mode="json"), "appointment_version": 0}).encode()
        with pytest.raises(EventRejected, match="appointment_version"):
            model_from_event(decode_http(headers, body), ReminderDue)

    def test_unknown_fields_are_refused(self) -> None:
        """Our own events are strict: an unexpected field is a producer bug, not something to ignore."""
        headers, _ = encode_binary(new_event(DUE, source="/test"))
        body = json.dumps({**DUE.model_dump(mode="json"), "diagnosis": "x"}).encode()
        with pytest.raises(EventRejected, match="diagnosis"):
            model_from_event(decode_http(headers, body), ReminderDue)
