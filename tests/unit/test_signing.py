"""Signed appointment-system events: any content mode, any tampering caught, rotation, replay window."""

from __future__ import annotations

import hashlib
import hmac
import json
import shlex
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import to_structured_event
from cloudevents.core.v1.event import CloudEvent

from patient_notify.codec import decode_http, encode_binary, model_from_event
from patient_notify.errors import EventRejected
from patient_notify.events import AppointmentChanged
from patient_notify.signing import (
    SignatureExpired,
    SignatureInvalid,
    SignatureMissing,
    sign_event,
    string_to_sign,
    verify_event,
)

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
SECRET = b"current-secret-4f1c9a7e2b8d6035"
PREVIOUS = b"previous-secret-0a6e3d9c7b1f2584"
DATA: dict[str, Any] = {
    "appointment_id": "apt-20481",
    "source_version": 7,
    "reason": "relocated",
    "starts_at": "2026-12-03T14:30:00Z",
    "location_id": "loc-clínica-sant-joan",  # non-ASCII: raw UTF-8 in the canonical form
    "status": "booked",
}
ATTRIBUTES: dict[str, Any] = {
    "specversion": "1.0",
    "id": "4d8f2a61-9c3e-4b7d-8a1f-3e6c0b9d2f47",
    "source": "/hospital/appointments",
    "type": AppointmentChanged.TYPE,
    "subject": "apt-20481",
    "time": NOW - timedelta(seconds=2),
    "datacontenttype": "application/json",
}

Transport = Callable[[BaseCloudEvent], BaseCloudEvent]


def make_event(data: dict[str, Any] | None = None, **attributes: Any) -> CloudEvent:
    merged = {**ATTRIBUTES, **attributes}
    return CloudEvent(attributes={k: v for k, v in merged.items() if v is not None}, data=dict(data or DATA))


def signed(event: BaseCloudEvent | None = None, secret: bytes = SECRET, at: datetime = NOW) -> CloudEvent:
    return sign_event(event or make_event(), secret, now=at)


def with_changes(event: BaseCloudEvent, data: dict[str, Any] | None = None, **attributes: Any) -> CloudEvent:
    """The same event, some attributes replaced (None removes one) or other data: what a tamperer sends."""
    merged = {**event.get_attributes(), **attributes}
    payload = event.get_data() if data is None else data
    return CloudEvent(attributes={k: v for k, v in merged.items() if v is not None}, data=payload)


def binary(event: BaseCloudEvent) -> BaseCloudEvent:
    headers, body = encode_binary(event)
    return decode_http(headers, body)


def structured(event: BaseCloudEvent) -> BaseCloudEvent:
    message = to_structured_event(event)
    return decode_http(message.headers, message.body)


class TestContentModes:
    @pytest.mark.parametrize(
        "hops",
        [
            [structured],  # the sender posts structured JSON
            [binary],  # the sender posts ce-* headers
            [structured, binary],  # signed and sent structured, delivered by the broker in binary mode
            [binary, structured],  # and the other way round
            [binary, structured, binary],  # several hops
        ],
    )
    def test_a_signature_survives_any_content_mode(self, hops: list[Transport]) -> None:
        """The signature covers the canonical data, so how the event travelled does not matter."""
        event: BaseCloudEvent = signed()
        for hop in hops:
            event = hop(event)
        verify_event(event, [SECRET], now=NOW)
        assert model_from_event(event, AppointmentChanged).location_id == DATA["location_id"]

    @pytest.mark.parametrize(
        "body",
        [
            json.dumps(DATA, indent=4),  # pretty-printed
            json.dumps(dict(reversed(DATA.items()))),  # other key order
            json.dumps(DATA, ensure_ascii=True),  # non-ASCII as \u escapes
        ],
    )
    def test_any_serialisation_of_the_same_data_verifies(self, body: str) -> None:
        """A binary body re-serialised by a proxy or another JSON library still verifies."""
        headers, _ = encode_binary(signed())
        verify_event(decode_http(headers, body.encode()), [SECRET], now=NOW)

    def test_the_signed_string_is_the_documented_one(self) -> None:
        """An independent implementation of the module docstring's recipe gives the same signature."""
        event = signed()
        canonical = '{"appointment_id":"apt-20481","location_id":"loc-clínica-sant-joan","reason":"relocated","source_version":7,"starts_at":"2026-12-03T14:30:00Z","status":"booked"}'
        lines = [
            "v1", ATTRIBUTES["id"], "/hospital/appointments", AppointmentChanged.TYPE, "apt-20481",
            "2026-11-24T09:00:00Z", hashlib.sha256(canonical.encode()).hexdigest(),
        ]  # fmt: skip
        assert string_to_sign(event, "2026-11-24T09:00:00Z") == "\n".join(lines)
        expected = hmac.new(SECRET, "\n".join(lines).encode(), hashlib.sha256).hexdigest()
        assert event.get_extension("pnsignature") == f"v1={expected}"
        assert event.get_extension("pnsignedat") == "2026-11-24T09:00:00Z"

    def test_an_event_without_subject_signs_an_empty_line(self) -> None:
        """Subject is optional: absent, its line is empty, and the event still verifies."""
        event = signed(make_event(subject=None))
        assert string_to_sign(event, "t").split("\n")[4] == ""
        verify_event(binary(event), [SECRET], now=NOW)


class TestTampering:
    @pytest.mark.parametrize(
        "changes",
        [
            {"id": "4d8f2a61-0000-4b7d-8a1f-3e6c0b9d2f47"},  # another id: would bypass deduplication
            {"source": "/hospital/other-system"},
            {"type": "org.patientnotify.notice.due.v1"},  # replayed as another type
            {"subject": "apt-99999"},
            {"subject": None},  # subject removed
            {"pnsignedat": "2026-11-24T09:00:01Z"},  # signing time moved, e.g. to stretch the window
        ],
    )
    def test_a_changed_signed_attribute_fails(self, changes: dict[str, Any]) -> None:
        """Every attribute in the signed string is protected."""
        with pytest.raises(SignatureInvalid, match="matches no configured secret"):
            verify_event(with_changes(signed(), **changes), [SECRET], now=NOW)

    @pytest.mark.parametrize(
        "changes",
        [
            {"appointment_id": "apt-20482"},
            {"source_version": 8},  # would overtake a newer announcement
            {"reason": "cancelled"},
            {"starts_at": "2026-12-03T15:30:00Z"},
            {"location_id": "loc-clinica-sant-joan"},  # one accent dropped
            {"status": "cancelled"},
            {"note": "added"},  # a field added
        ],
    )
    def test_a_changed_data_field_fails(self, changes: dict[str, Any]) -> None:
        """Any change to data, even one character, breaks the signature."""
        with pytest.raises(SignatureInvalid):
            verify_event(with_changes(signed(), data={**DATA, **changes}), [SECRET], now=NOW)

    def test_a_removed_data_field_fails(self) -> None:
        """Dropping a field is a change too."""
        data = {k: v for k, v in DATA.items() if k != "reason"}
        with pytest.raises(SignatureInvalid):
            verify_event(with_changes(signed(), data=data), [SECRET], now=NOW)

    @pytest.mark.parametrize(
        ("signature", "reason"),
        [
            ("v1=" + "0" * 64, "matches no configured secret"),  # well-formed, wrong
            ("v2=" + "a" * 64, "64 lowercase hex"),  # unknown scheme
            ("v1=" + "A" * 64, "64 lowercase hex"),  # uppercase hex
            ("v1=" + "a" * 63, "64 lowercase hex"),  # truncated
            ("a" * 64, "64 lowercase hex"),  # no scheme prefix
        ],
    )
    def test_a_wrong_or_malformed_signature_fails(self, signature: str, reason: str) -> None:
        """Only ``v1=`` and 64 lowercase hex digits, made with a configured secret, is accepted."""
        with pytest.raises(SignatureInvalid, match=reason):
            verify_event(with_changes(signed(), pnsignature=signature), [SECRET], now=NOW)

    def test_attributes_outside_the_signed_string_may_change(self) -> None:
        """The broker adds extensions such as knativearrivaltime; time is not signed either."""
        event = with_changes(signed(), knativearrivaltime="2026-11-24T09:00:01Z", time=NOW)
        verify_event(binary(event), [SECRET], now=NOW)

    def test_a_line_break_cannot_shift_text_between_signed_lines(self) -> None:
        """``id "a\\nb", source "c"`` and ``id "a", source "b\\nc"`` would sign the same string: refused."""
        event = with_changes(signed(), id="4d8f2a61\n/hospital/appointments")
        with pytest.raises(SignatureInvalid, match="line break"):
            verify_event(event, [SECRET], now=NOW)
        with pytest.raises(ValueError, match="line break"):
            sign_event(make_event(source="/a\n/b"), SECRET, now=NOW)

    @pytest.mark.parametrize(
        "data",
        [
            b"not json",  # body that is not JSON
            '["apt-20481"]',  # JSON, but not an object
            '{"note": "\\ud800"}',  # a lone surrogate: no UTF-8 form to hash
            "[" * 100_000 + "]" * 100_000,  # nested deeper than the interpreter's recursion limit
        ],
    )
    def test_data_must_be_a_json_object(self, data: bytes | str) -> None:
        """The canonical form is defined for JSON objects with a UTF-8 form only; anything else is invalid, never a crash."""
        signature = {"pnsignedat": "2026-11-24T09:00:00Z", "pnsignature": "v1=" + "0" * 64}
        event = CloudEvent(attributes={**ATTRIBUTES, **signature}, data=data)
        with pytest.raises(SignatureInvalid, match="cannot verify"):
            verify_event(event, [SECRET], now=NOW)


class TestRotation:
    @pytest.mark.parametrize(
        ("signed_with", "accepted", "verifies"),
        [
            (PREVIOUS, [SECRET, PREVIOUS], True),  # sender not yet switched, both configured
            (SECRET, [SECRET, PREVIOUS], True),  # sender switched
            (PREVIOUS, [SECRET], False),  # rotation finished: the old secret is dead
            (b"someone-elses-secret-12345678", [SECRET, PREVIOUS], False),  # forged
        ],
    )
    def test_any_configured_secret_verifies(self, signed_with: bytes, accepted: list[bytes], verifies: bool) -> None:
        """During a rotation the current and the previous secret are both accepted, and only they."""
        event = binary(signed(secret=signed_with))
        if verifies:
            verify_event(event, accepted, now=NOW)
        else:
            with pytest.raises(SignatureInvalid):
                verify_event(event, accepted, now=NOW)


class TestTimeWindow:
    @pytest.mark.parametrize(
        ("signed_at", "reason"),
        [
            (NOW - timedelta(minutes=6), "6m00s old: a replay"),  # replayed a minute after the window
            (NOW - timedelta(days=2, minutes=3), "48h03m00s old"),  # replayed days later
            (NOW + timedelta(minutes=7, seconds=30), "7m30s in the future"),  # sender's clock is fast
        ],
    )
    def test_outside_the_window_is_expired(self, signed_at: datetime, reason: str) -> None:
        """An authentic event signed too long ago or in the future is refused, saying which side and by how much."""
        with pytest.raises(SignatureExpired, match=reason) as caught:
            verify_event(binary(signed(at=signed_at)), [SECRET], now=NOW)
        assert caught.value.skew == signed_at - NOW and caught.value.event_type == AppointmentChanged.TYPE

    @pytest.mark.parametrize(
        "signed_at",
        [
            NOW - timedelta(minutes=5),  # oldest accepted
            NOW + timedelta(minutes=5),  # sender's clock 5 minutes fast
            NOW,
        ],
    )
    def test_inside_the_window_verifies(self, signed_at: datetime) -> None:
        """The window is ±5 minutes, bounds included."""
        verify_event(binary(signed(at=signed_at)), [SECRET], now=NOW)

    def test_the_window_is_configurable(self) -> None:
        """A receiver may narrow the window."""
        with pytest.raises(SignatureExpired, match=r"window ±0m30s"):
            verify_event(signed(at=NOW - timedelta(minutes=1)), [SECRET], now=NOW, window=timedelta(seconds=30))

    def test_a_forged_old_event_is_invalid_not_expired(self) -> None:
        """Expired means authentic: the signature is checked before the time."""
        event = with_changes(signed(at=NOW - timedelta(hours=1)), subject="apt-1")
        with pytest.raises(SignatureInvalid):
            verify_event(event, [SECRET], now=NOW)


class TestSignedAtFormat:
    @pytest.mark.parametrize(
        "signed_at",
        [
            "2026-11-24T10:00:00+01:00",  # another offset
            "2026-11-24T09:00:00.250Z",  # fractional seconds
            "2026-11-24t09:00:00z",  # lowercase separators, allowed by RFC 3339
        ],
    )
    def test_any_rfc3339_timestamp_is_accepted(self, signed_at: str) -> None:
        """Senders may use any RFC 3339 form; the exact text sent is what was signed."""
        event = with_changes(make_event(), pnsignedat=signed_at)
        digest = hmac.new(SECRET, string_to_sign(event, signed_at).encode(), hashlib.sha256).hexdigest()
        verify_event(binary(with_changes(event, pnsignature=f"v1={digest}")), [SECRET], now=NOW)

    @pytest.mark.parametrize(
        "signed_at",
        [
            "2026-11-24T09:00:00",  # no offset: which clock?
            "2026-11-24",  # a date
            "1795510800",  # epoch seconds
            "2026-11-24 09:00:00Z",  # space separator
            "2026-02-30T09:00:00Z",  # impossible date
            "yesterday",
        ],
    )
    def test_a_timestamp_that_is_not_rfc3339_is_invalid(self, signed_at: str) -> None:
        """A pnsignedat that cannot be read is SignatureInvalid, not expired."""
        event = with_changes(signed(), pnsignedat=signed_at)
        with pytest.raises(SignatureInvalid, match=r"pnsignedat|cannot verify"):
            verify_event(binary(event), [SECRET], now=NOW)


class TestMissing:
    @pytest.mark.parametrize(
        ("removed", "missing"),
        [
            ({"pnsignature": None}, ("pnsignature",)),
            ({"pnsignedat": None}, ("pnsignedat",)),
            ({"pnsignature": None, "pnsignedat": None}, ("pnsignedat", "pnsignature")),  # an unsigned event
            ({"pnsignature": ""}, ("pnsignature",)),  # an empty header counts as absent
        ],
    )
    def test_missing_extensions_are_named(self, removed: dict[str, Any], missing: tuple[str, ...]) -> None:
        """An event without its signature attributes is SignatureMissing, naming them."""
        with pytest.raises(SignatureMissing) as caught:
            verify_event(binary(with_changes(signed(), **removed)), [SECRET], now=NOW)
        assert caught.value.missing == missing and "unsigned event" in caught.value.reason


class TestReasonsKeepSecrets:
    @pytest.mark.parametrize(
        "event",
        [
            with_changes(sign_event(make_event(), SECRET, now=NOW), subject="apt-1"),  # invalid
            sign_event(make_event(), SECRET, now=NOW - timedelta(hours=1)),  # expired
            with_changes(sign_event(make_event(), SECRET, now=NOW), pnsignedat="soon"),  # malformed time
            with_changes(sign_event(make_event(), SECRET, now=NOW), pnsignature=None),  # missing
        ],
    )
    def test_a_reason_never_contains_a_secret_or_a_signature(self, event: CloudEvent) -> None:
        """Reasons go to logs and alerts: no secret, no signature sent, no signature expected."""
        sent = event.get_extension("pnsignature") or "v1="
        expected = signed().get_extension("pnsignature")
        with pytest.raises(EventRejected) as caught:
            verify_event(event, [SECRET, PREVIOUS], now=NOW)
        text = f"{caught.value} {caught.value.reason}"
        forbidden = [SECRET.decode(), PREVIOUS.decode(), expected[3:], *([sent[3:]] if sent[3:] else [])]
        assert not any(secret in text for secret in forbidden)


class TestCli:
    def run_cli(self, *flags: str, secret: bytes | None = SECRET) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "patient_notify.signing_cli", "sign", "--secret-env", "PN_TEST_SECRET", *flags]
        env = {"PYTHONIOENCODING": "utf-8", **({"PN_TEST_SECRET": secret.decode()} if secret else {})}
        stdin = to_structured_event(make_event()).body.decode()
        return subprocess.run(command, input=stdin, env=env, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603  our own module

    def test_structured_output_verifies(self) -> None:
        """The signed structured event printed by the CLI verifies with the secret from the environment."""
        result = self.run_cli()
        assert result.returncode == 0, result.stderr
        event = decode_http({"content-type": "application/cloudevents+json"}, result.stdout.encode())
        verify_event(event, [SECRET], now=datetime.now(UTC))

    def test_binary_output_is_curl_arguments_that_verify(self) -> None:
        """``--binary`` prints -H and --data-binary arguments; sent as is, they make a verifiable event."""
        result = self.run_cli("--binary")
        assert result.returncode == 0, result.stderr
        words = shlex.split(result.stdout.replace(" \\\n", " "))
        pairs = zip(words[::2], words[1::2], strict=True)
        headers = dict(value.split(": ", 1) for flag, value in pairs if flag == "-H")
        assert words[-2] == "--data-binary"
        verify_event(decode_http(headers, words[-1].encode()), [SECRET], now=datetime.now(UTC))

    def test_a_missing_secret_fails_without_echoing_anything(self) -> None:
        """No secret in the environment: exit non-zero with a message, print nothing on stdout."""
        result = self.run_cli(secret=None)
        assert result.returncode != 0 and result.stdout == "" and "--secret-env" in result.stderr
        assert "Traceback" not in result.stderr
