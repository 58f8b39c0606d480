"""The plain JSON appointments API → our records; the documented schema and example agree with the mapper."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema
import pytest

from tests.support.functions import load_module

plain_json = load_module("etl", "plain_json")
mapping = load_module("etl", "mapping")

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA = json.loads((DOCS / "json-api.schema.json").read_text())
EXAMPLE = (DOCS / "json-api.example.json").read_bytes()
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
STATUSES = ["proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow", "entered-in-error",
            "checked-in", "waitlist"]  # fmt: skip


def json_record(id: str = "appt-1", **overrides: Any) -> dict[str, Any]:
    record = {
        "id": id, "status": "booked", "start": "2025-03-14T09:30:00+01:00", "updated_at": "2025-03-01T10:00:00Z",
        "patient": {"id": "pat-9", "given_name": "Zoë", "family_name": "Martínez", "language": "es",
                    "timezone": None, "channel_preference": None,
                    "phones": [{"number": "+12025550143", "rank": 1}], "emails": [{"address": "zoe@example.org"}]},
        "location": {"id": "loc-3", "name": "Clínica Norte", "address": "3 Calle Mayor", "phone": "+34 910 000 000",
                     "timezone": "Europe/Madrid"},
    }  # fmt: skip
    return {**record, **overrides}


def with_patient(**fields: Any) -> dict[str, Any]:
    record = json_record()
    return {**record, "patient": {**record["patient"], **fields}}


def page_of(*records: object, next_url: str | None = None) -> bytes:
    return json.dumps({"appointments": list(records), "next": next_url}).encode()


def mapped(*records: object, **options: Any) -> Any:
    return plain_json.map_json_page(page_of(*records), **{"default_zone": "America/New_York", "default_region": "US",
                                                          **options})  # fmt: skip


class TestDocumentedContract:
    def test_the_example_is_valid_against_the_schema(self) -> None:
        """docs/json-api.example.json is a valid page under docs/json-api.schema.json (draft 2020-12)."""
        jsonschema.Draft202012Validator.check_schema(SCHEMA)
        jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(EXAMPLE))

    def test_the_example_maps_cleanly(self) -> None:
        """Both example appointments load, the national number in E.164, the null zone as the site default."""
        page = plain_json.map_json_page(EXAMPLE, default_zone="America/New_York", default_region="US")
        assert (page.fetched, page.quarantined, page.dropped_contacts) == (2, (), 0)
        assert [(a.id, a.status, a.source_version) for a in page.batch.appointments] == [
            ("appt-1001", "booked", 2), ("appt-1002", "cancelled", None),
        ]  # fmt: skip
        assert [c.value for c in page.batch.contacts if c.patient_id == "pat-1002"] == ["+12025550187"]
        assert [x.timezone for x in page.batch.locations] == ["Europe/Madrid", "America/New_York"]
        assert page.next_url is not None and page.next_url.startswith("https://hospital.example.org/")

    def test_the_builder_record_is_valid_against_the_schema(self) -> None:
        """The records these tests build are themselves valid pages."""
        jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(page_of(json_record())))


class TestFirstUrl:
    def test_asks_for_the_window_and_the_changes_since(self) -> None:
        """from/to bound the start; updated_since only on incremental passes; limit is the page size."""
        url = plain_json.first_json_url("https://h.example/api/", start=NOW, end=NOW + timedelta(days=14),
                                        since=NOW - timedelta(hours=1), page_size=500)  # fmt: skip
        parts = urlsplit(url)
        assert parts.path == "/api/appointments"
        assert parse_qsl(parts.query) == [
            ("from", "2025-03-01T12:00:00+00:00"), ("to", "2025-03-15T12:00:00+00:00"),
            ("updated_since", "2025-03-01T11:00:00+00:00"), ("limit", "500"),
        ]  # fmt: skip

    def test_without_since_there_is_no_updated_since(self) -> None:
        """A full pass asks for the whole window."""
        url = plain_json.first_json_url("https://h.example/api", start=NOW, end=NOW, since=None, page_size=5)
        assert "updated_since" not in url


class TestRecord:
    @pytest.mark.parametrize("status", STATUSES)
    def test_every_fhir_status_code_is_accepted(self, status: str) -> None:
        """The JSON API uses FHIR's AppointmentStatus codes, kept as they are."""
        page = mapped(json_record(status=status))
        assert [a.status for a in page.batch.appointments] == [status]

    @pytest.mark.parametrize(("overrides", "reason"), [
        ({"status": "rescheduled"}, "appointment.status: unknown code 'rescheduled'"),  # outside the value set
        ({"start": 1741944600}, "appointment.start: Input should be a valid string"),  # wrong type, never epoch seconds
        ({"start": "2025-03-14T09:30:00"}, "appointment.start: no UTC offset"),
        ({"start": "tomorrow"}, "appointment.start: not an ISO 8601 date-time"),
        ({"patient": None}, "appointment.patient: missing"),
        ({"location": None}, "appointment.location: missing"),
        ({"version": "2"}, "appointment.version: Input should be a valid integer"),  # strict: no numeric strings
        ({"version": 0}, "appointment.version: Input should be greater than or equal to 1"),
    ])  # fmt: skip
    def test_a_bad_record_is_quarantined_and_the_rest_loads(self, overrides: dict[str, Any], reason: str) -> None:
        """The record is the unit of quarantine: a bad one is kept for audit, the others on the page load."""
        bad = json_record("appt-2", **overrides)
        page = mapped(json_record("appt-1"), bad)
        assert [a.id for a in page.batch.appointments] == ["appt-1"]
        assert [q.reason for q in page.quarantined] == [reason]
        assert json.loads(page.quarantined[0].raw) == bad
        assert page.fetched == 2

    @pytest.mark.parametrize(("id", "reason"), [
        ("", "appointment.id: String should have at least 1 character"),
        (7, "appointment.id: Input should be a valid string"),
    ])  # fmt: skip
    def test_a_record_without_a_usable_id_is_quarantined_without_one(self, id: object, reason: str) -> None:
        """The source id of a record whose id is unusable is empty."""
        page = mapped({**json_record(), "id": id})
        assert [(q.source_id, q.reason) for q in page.quarantined] == [("", reason)]

    def test_a_record_that_is_not_an_object_is_quarantined_without_an_id(self) -> None:
        """Even a bare string in the list is quarantined, not a crash."""
        page = mapped("appt-1", json_record("appt-2"))
        assert [(q.source_id, q.reason) for q in page.quarantined] == [
            ("", "appointment: Input should be a valid dictionary or instance of _Record")
        ]

    @pytest.mark.parametrize(("fields", "reason"), [
        ({"given_name": ""}, "patient.given_name: String should have at least 1 character"),
        ({"timezone": "Mars/Olympus"}, "patient.timezone: Value error, unknown IANA time zone 'Mars/Olympus'"),
        ({"timezone": "Europe"}, "patient.timezone: Value error, unknown IANA time zone 'Europe'"),  # a folder
        ({"channel_preference": "pigeon"}, "patient.channel_preference: Input should be 'sms', 'email' or 'both'"),
        ({"phones": [{"number": 2025550143}]}, "appointment.patient.phones.0.number: Input should be a valid string"),
    ])  # fmt: skip
    def test_an_invalid_patient_quarantines_the_appointment(self, fields: dict[str, Any], reason: str) -> None:
        """An appointment whose patient is invalid is quarantined, with the patient's field in the reason."""
        page = mapped(with_patient(**fields))
        assert page.batch.appointments == ()
        assert [(q.source_id, q.reason) for q in page.quarantined] == [("appt-1", reason)]

    def test_an_invalid_location_quarantines_the_appointment(self) -> None:
        """A clinic without a phone cannot be named in a reminder."""
        record = json_record()
        del record["location"]["phone"]
        page = mapped(record)
        assert [q.reason for q in page.quarantined] == ["appointment.location.phone: Field required"]

    def test_optional_fields_take_their_defaults(self) -> None:
        """Only id and given_name are required of a patient; the location's zone falls back to the default."""
        record = json_record(patient={"id": "pat-9", "given_name": "Ada"},
                             location={"id": "loc-3", "name": "Riverside", "phone": "+1 202 555 0100"})  # fmt: skip
        page = mapped(record, default_zone="Europe/London")
        assert page.batch.patients[0].model_dump() == {
            "id": "pat-9", "given_name": "Ada", "family_name": "", "language": "en", "timezone": None,
            "channel_preference": "sms",
        }  # fmt: skip
        assert (page.batch.locations[0].timezone, page.batch.contacts) == ("Europe/London", ())

    def test_unknown_fields_are_ignored(self) -> None:
        """The API may grow: fields we do not know do not quarantine a record."""
        page = mapped(json_record(room="B12", patient={**json_record()["patient"], "nhs_number": "x"}))
        assert len(page.batch.appointments) == 1


class TestContacts:
    @pytest.mark.parametrize(("phones", "emails", "contacts", "dropped"), [
        ([{"number": "(202) 555-0143", "rank": 2}], [], [("sms", "+12025550143", 2)], 0),  # national → E.164
        ([{"number": "+44 20 7946 0123"}], [], [("sms", "+442079460123", 100)], 0),  # unranked: last
        ([{"number": "555"}], [{"address": "zoe@example.org"}], [("email", "zoe@example.org", 100)], 1),  # dropped, counted
        ([{"number": "+12025550143"}, {"number": "202-555-0143", "rank": 1}], [], [("sms", "+12025550143", 1)], 0),  # one number, best rank
        ([], [{"address": "no-at-sign"}], [], 1),
    ])  # fmt: skip
    def test_numbers_are_normalised_and_unusable_ones_dropped(
        self, phones: list[dict[str, Any]], emails: list[dict[str, Any]], contacts: list[tuple[str, str, int]],
        dropped: int,
    ) -> None:  # fmt: skip
        """Phones become E.164 in the default region; what cannot be used is dropped and the patient still loads."""
        page = mapped(with_patient(phones=phones, emails=emails))
        assert [(c.channel, c.value, c.rank) for c in page.batch.contacts] == contacts
        assert (page.dropped_contacts, len(page.batch.patients)) == (dropped, 1)

    @pytest.mark.parametrize(("phones", "emails", "preference"), [
        ([{"number": "+12025550143"}], [{"address": "zoe@example.org"}], "both"),
        ([{"number": "+12025550143"}], [], "sms"),
        ([], [{"address": "zoe@example.org"}], "email"),
        ([], [], "sms"),  # nothing: alerted later as unreachable
    ])  # fmt: skip
    def test_a_missing_preference_follows_the_contacts(
        self, phones: list[dict[str, Any]], emails: list[dict[str, Any]], preference: str
    ) -> None:
        """No channel_preference: both if the patient has a phone and an email, else the one they have, else sms."""
        page = mapped(with_patient(phones=phones, emails=emails, channel_preference=None))
        assert page.batch.patients[0].channel_preference == preference


class TestPage:
    @pytest.mark.parametrize(("body", "reason"), [
        (b'{"appointments": [', "not JSON"),  # truncated
        (b"[]", "not an appointments page (no 'appointments' list)"),
        (b'{"error": "upstream timeout"}', "not an appointments page (no 'appointments' list)"),
        (b'{"appointments": [], "next": "/appointments?after=x"}', "next: not an absolute http(s) URL"),
    ])  # fmt: skip
    def test_an_unusable_page_raises_page_malformed(self, body: bytes, reason: str) -> None:
        """A page without the envelope raises PageMalformed; nothing on it loads."""
        with pytest.raises(mapping.PageMalformed) as raised:
            plain_json.map_json_page(body, default_zone="UTC", default_region="US")
        assert raised.value.reason == reason

    def test_next_is_followed_and_null_ends(self) -> None:
        """``next`` is the next page's absolute URL; null (or absent) means the last page."""
        next_url = "https://h.example/api/appointments?after=abc"
        page = plain_json.map_json_page(page_of(next_url=next_url), default_zone="UTC", default_region="US")
        last = plain_json.map_json_page(b'{"appointments": []}', default_zone="UTC", default_region="US")
        assert (page.next_url, last.next_url) == (next_url, None)

    def test_a_patient_on_two_appointments_is_in_the_batch_once(self) -> None:
        """Each id once per batch: the upsert may touch a row only once."""
        page = mapped(json_record("appt-1"), json_record("appt-2"))
        assert ([p.id for p in page.batch.patients], [x.id for x in page.batch.locations]) == (["pat-9"], ["loc-3"])
        assert len(page.batch.appointments) == 2
