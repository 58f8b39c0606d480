"""FHIR R4 search pages → our records, as the R4 spec defines Appointment, Patient, Location, ContactPoint, Bundle."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.support.functions import load_module

fhir = load_module("etl", "fhir")
mapping = load_module("etl", "mapping")

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TZ_URL = "http://hl7.org/fhir/StructureDefinition/timezone"
PREFERENCE_URL = "https://patientnotify.example.org/fhir/StructureDefinition/channel-preference"
STATUSES = ["proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow", "entered-in-error",
            "checked-in", "waitlist"]  # fmt: skip


def fhir_patient(id: str = "9", **overrides: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "Patient", "id": id,
        "name": [{"use": "official", "family": "Martínez", "given": ["Zoë", "Ana"]}],
        "telecom": [{"system": "phone", "use": "mobile", "value": "+12025550143", "rank": 1},
                    {"system": "email", "value": "zoe@example.org", "rank": 2}],
    }  # fmt: skip
    return {**resource, **overrides}


def fhir_location(id: str = "3", **overrides: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "Location", "id": id, "name": "Riverside Clinic", "address": {"text": "1 River St"},
        "telecom": [{"system": "phone", "value": "+1 202 555 0100"}],
        "extension": [{"url": TZ_URL, "valueCode": "America/New_York"}],
    }  # fmt: skip
    return {**resource, **overrides}


def fhir_appointment(id: str = "1", patient: str = "9", location: str = "3", **overrides: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "Appointment", "id": id, "status": "booked", "start": "2025-03-14T09:30:00-04:00",
        "participant": [{"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"},
                        {"actor": {"reference": f"Location/{location}"}, "status": "accepted"}],
    }  # fmt: skip
    return {**resource, **overrides}


def bundle(*resources: dict[str, Any], next_url: str | None = None) -> bytes:
    def entry(resource: dict[str, Any]) -> dict[str, Any]:
        mode = "match" if resource.get("resourceType") == "Appointment" else "include"
        return {"fullUrl": f"https://h.example/fhir/{resource.get('resourceType')}/{resource.get('id')}",
                "resource": resource, "search": {"mode": mode}}  # fmt: skip

    links = [{"relation": "self", "url": "https://h.example/fhir/Appointment?_count=2"}]
    links += [{"relation": "next", "url": next_url}] if next_url else []
    return json.dumps({"resourceType": "Bundle", "type": "searchset", "link": links,
                       "entry": [entry(r) for r in resources]}).encode()  # fmt: skip


def mapped(*resources: dict[str, Any], **options: Any) -> Any:
    return fhir.map_fhir_bundle(bundle(*resources), **{"default_zone": "Europe/London", "default_region": "US",
                                                       "now": NOW, **options})  # fmt: skip


def one_patient(patient: dict[str, Any]) -> Any:
    """The page for one appointment of ``patient``, asserting the patient loaded."""
    page = mapped(fhir_appointment(), patient, fhir_location())
    assert [p.id for p in page.batch.patients] == ["9"], page.quarantined
    return page


def contacts_of(*telecom: dict[str, Any]) -> list[tuple[str, str, int]]:
    page = one_patient(fhir_patient(telecom=list(telecom)))
    return [(c.channel, c.value, c.rank) for c in page.batch.contacts]


class TestFirstUrl:
    def test_searches_the_horizon_with_includes(self) -> None:
        """The first URL asks for the window's appointments with their patients and locations, by lastUpdated."""
        url = fhir.first_fhir_url("https://h.example/fhir/", start=NOW, end=NOW + timedelta(days=14), since=None,
                                  page_size=500)  # fmt: skip
        parts = urlsplit(url)
        assert parts.path == "/fhir/Appointment"
        assert parse_qsl(parts.query) == [
            ("date", "ge2025-03-01T12:00:00+00:00"), ("date", "lt2025-03-15T12:00:00+00:00"),
            ("_include", "Appointment:patient"), ("_include", "Appointment:location"),
            ("_count", "500"), ("_sort", "_lastUpdated"),
        ]  # fmt: skip

    def test_since_adds_last_updated_with_its_offset_encoded(self) -> None:
        """An incremental pass adds _lastUpdated=ge…, the "+" of the offset percent-encoded."""
        since = datetime(2025, 3, 1, 7, 0, tzinfo=timezone(timedelta(hours=-5)))
        url = fhir.first_fhir_url("https://h.example/fhir", start=NOW, end=NOW, since=since, page_size=10)
        assert url.endswith("&_lastUpdated=ge2025-03-01T07%3A00%3A00-05%3A00")
        assert ("_lastUpdated", "ge2025-03-01T07:00:00-05:00") in parse_qsl(urlsplit(url).query)

    def test_naive_bounds_are_refused(self) -> None:
        """A bound without an offset is a programming error, not a guess at a zone."""
        with pytest.raises(ValueError, match="timezone-aware"):
            fhir.first_fhir_url("https://h.example/fhir", start=datetime(2025, 3, 1), end=NOW, since=None, page_size=1)


class TestAppointment:
    @pytest.mark.parametrize("status", STATUSES)
    def test_every_status_code_maps_one_to_one(self, status: str) -> None:
        """Each of the ten AppointmentStatus codes is kept as is."""
        page = mapped(fhir_appointment(status=status), fhir_patient(), fhir_location())
        assert [a.status for a in page.batch.appointments] == [status]

    @pytest.mark.parametrize(("status", "reason"), [
        ("rescheduled", "Appointment.status: unknown code 'rescheduled'"),  # not in the required value set
        ("Booked", "Appointment.status: unknown code 'Booked'"),  # codes are case-sensitive
        (3, "Appointment.status: unknown code '3'"),  # wrong JSON type
        (None, "Appointment.status: missing"),  # status is 1..1
    ])  # fmt: skip
    def test_a_status_outside_the_value_set_is_quarantined(self, status: object, reason: str) -> None:
        """An appointment with another status is quarantined and the rest of the page still loads."""
        bad = {k: v for k, v in fhir_appointment("2", status=status).items() if v is not None}
        page = mapped(fhir_appointment("1"), bad, fhir_patient(), fhir_location())
        assert [a.id for a in page.batch.appointments] == ["1"]
        assert [(q.source_id, q.reason) for q in page.quarantined] == [("Appointment/2", reason)]
        assert json.loads(page.quarantined[0].raw) == bad
        assert page.fetched == 2

    @pytest.mark.parametrize(("start", "reason"), [
        (None, "Appointment.start: missing"),  # proposed and waitlist may lack one; we cannot remind without it
        ("2025-03-14T09:30:00", "Appointment.start: no UTC offset"),  # an instant always has one
        ("2025-03-14", "Appointment.start: no UTC offset"),  # a date is not an instant
        ("next Tuesday", "Appointment.start: not an ISO 8601 date-time"),
        (1741944600, "Appointment.start: expected a string, got int"),  # never read as epoch seconds
    ])  # fmt: skip
    def test_an_unusable_start_is_quarantined(self, start: object, reason: str) -> None:
        """An appointment needs an instant to be reminded of."""
        appointment = {k: v for k, v in fhir_appointment(start=start).items() if v is not None}
        page = mapped(appointment, fhir_patient(), fhir_location())
        assert page.batch.appointments == ()
        assert [q.reason for q in page.quarantined] == [reason]

    def test_ids_are_the_logical_ids(self) -> None:
        """Our ids are the FHIR logical ids; the start keeps its offset."""
        page = mapped(fhir_appointment("a1", "p9", "l3"), fhir_patient("p9"), fhir_location("l3"))
        (appointment,) = page.batch.appointments
        assert (appointment.id, appointment.patient_id, appointment.location_id) == ("a1", "p9", "l3")
        assert appointment.starts_at == datetime(2025, 3, 14, 13, 30, tzinfo=UTC)

    @pytest.mark.parametrize(("reference", "loaded"), [
        ("Patient/9", True),  # relative
        ("https://h.example/fhir/Patient/9", True),  # absolute
        ("Patient/9/_history/4", True),  # version-specific
        ("Patient/10", False),  # not on the page
        ("Group/9", False),  # not a patient
    ])  # fmt: skip
    def test_participant_references_resolve_to_includes(self, reference: str, loaded: bool) -> None:
        """The patient actor is found on the page however its reference is written."""
        appointment = fhir_appointment()
        appointment["participant"][0]["actor"]["reference"] = reference
        page = mapped(appointment, fhir_patient(), fhir_location())
        assert len(page.batch.appointments) == int(loaded)

    def test_a_missing_patient_quarantines_the_appointment(self) -> None:
        """An appointment whose patient is not on the page is quarantined with the reference in the reason."""
        page = mapped(fhir_appointment(patient="10"), fhir_patient("9"), fhir_location())
        assert [(q.source_id, q.reason) for q in page.quarantined] == [
            ("Appointment/1", "patient Patient/10 missing or invalid")
        ]
        assert page.batch.patients == () and page.batch.locations == ()

    def test_an_invalid_patient_quarantines_it_and_its_appointments(self) -> None:
        """A bad patient is quarantined, and so is every appointment that needs it; others still load."""
        nameless = fhir_patient("9", name=[{"family": "Nowak"}])
        page = mapped(fhir_appointment("1", "9"), fhir_appointment("2", "8"), nameless, fhir_patient("8"),
                      fhir_location())  # fmt: skip
        assert [(q.source_id, q.reason) for q in page.quarantined] == [
            ("Patient/9", "Patient.given_name: String should have at least 1 character"),
            ("Appointment/1", "patient Patient/9 missing or invalid"),
        ]
        assert [a.id for a in page.batch.appointments] == ["2"]

    def test_an_appointment_without_a_patient_actor_is_quarantined(self) -> None:
        """Only a patient can be reminded: no Patient participant, no appointment."""
        appointment = fhir_appointment()
        appointment["participant"] = appointment["participant"][1:]
        page = mapped(appointment, fhir_location())
        assert [q.reason for q in page.quarantined] == ["Appointment.participant: no Patient actor"]

    @pytest.mark.parametrize(("meta", "version"), [
        ({"versionId": "7", "lastUpdated": "2025-03-01T10:00:00Z"}, 7),  # the server's version counter
        ({"lastUpdated": "2025-03-01T10:00:00Z"}, None),  # no versionId
        ({"versionId": "W/\"abc\""}, None),  # not a number: no order to keep
        ({"versionId": "99999999999"}, None),  # beyond a PostgreSQL integer
    ])  # fmt: skip
    def test_version_comes_from_meta_version_id(self, meta: dict[str, str], version: int | None) -> None:
        """A numeric versionId becomes the appointment's source version; anything else is none."""
        page = mapped(fhir_appointment(meta=meta), fhir_patient(), fhir_location())
        assert [a.source_version for a in page.batch.appointments] == [version]


class TestPatient:
    def test_the_official_name_is_preferred(self) -> None:
        """use=official wins over the first name listed; given[0] is the given name."""
        names = [{"use": "nickname", "given": ["Zo"]}, {"use": "official", "family": "Nowak", "given": ["Zoë", "A"]}]
        (patient,) = one_patient(fhir_patient(name=names)).batch.patients
        assert (patient.given_name, patient.family_name) == ("Zoë", "Nowak")

    def test_without_an_official_name_the_first_is_used(self) -> None:
        """Any name beats none; a name without family gives an empty family name."""
        (patient,) = one_patient(fhir_patient(name=[{"use": "usual", "given": ["Łukasz"]}])).batch.patients
        assert (patient.given_name, patient.family_name) == ("Łukasz", "")

    @pytest.mark.parametrize(("communication", "language"), [
        (None, "en"),  # absent: our default
        ([{"language": {"coding": [{"code": "fr"}]}}], "fr"),  # only one
        ([{"language": {"coding": [{"code": "de"}]}},
          {"language": {"coding": [{"code": "es"}]}, "preferred": True}], "es"),  # preferred wins
        ([{"language": {"text": "Spanish"}}], "en"),  # text only: no code to use
        ([{"language": {"coding": [{"code": "en-US"}]}}], "en-US"),  # BCP 47 tags as they are
    ])  # fmt: skip
    def test_language_is_the_preferred_communication(self, communication: Any, language: str) -> None:
        """Patient.communication (preferred, else first) gives the language; none gives English."""
        resource = fhir_patient(communication=communication) if communication else fhir_patient()
        (patient,) = one_patient(resource).batch.patients
        assert patient.language == language

    @pytest.mark.parametrize(("extension", "zone"), [
        ([], None),  # the clinic's zone applies later
        ([{"url": TZ_URL, "valueCode": "Europe/Madrid"}], "Europe/Madrid"),
        ([{"url": "http://hl7.org/fhir/StructureDefinition/tz-code", "valueCode": "Asia/Kolkata"}], "Asia/Kolkata"),
        ([{"url": "https://other.example/tz", "valueCode": "Asia/Tokyo"}], None),  # not an extension we know
    ])  # fmt: skip
    def test_timezone_comes_from_the_extension(self, extension: list[dict[str, str]], zone: str | None) -> None:
        """The IANA zone comes from the timezone extension, else none."""
        (patient,) = one_patient(fhir_patient(extension=extension)).batch.patients
        assert patient.timezone == zone

    def test_an_unknown_zone_quarantines_the_patient(self) -> None:
        """A zone that is not IANA cannot plan a reminder: the patient is quarantined."""
        page = mapped(fhir_appointment(), fhir_patient(extension=[{"url": TZ_URL, "valueCode": "Mars/Olympus"}]),
                      fhir_location())  # fmt: skip
        assert [q.source_id for q in page.quarantined] == ["Patient/9", "Appointment/1"]
        assert page.quarantined[0].reason.startswith("Patient.timezone: Value error, unknown IANA time zone")

    @pytest.mark.parametrize(("preference", "telecom", "expected"), [
        ("email", None, "email"),  # stated: kept, whatever the contacts
        (None, None, "both"),  # a mobile and an email
        (None, [{"system": "sms", "value": "+12025550143"}], "sms"),
        (None, [{"system": "email", "value": "zoe@example.org"}], "email"),
        (None, [], "sms"),  # nothing usable: sms, alerted later as unreachable
        (None, [{"system": "sms", "value": "12"}, {"system": "email", "value": "zoe@example.org"}], "email"),  # unusable numbers do not count
    ])  # fmt: skip
    def test_channel_preference_defaults_to_the_contacts_held(
        self, preference: str | None, telecom: list[dict[str, str]] | None, expected: str
    ) -> None:
        """The extension states the preference; without it, both, else the channel the patient has, else sms."""
        overrides: dict[str, Any] = {} if telecom is None else {"telecom": telecom}
        if preference:
            overrides["extension"] = [{"url": PREFERENCE_URL, "valueCode": preference}]
        (patient,) = one_patient(fhir_patient(**overrides)).batch.patients
        assert patient.channel_preference == expected

    def test_an_unknown_preference_quarantines_the_patient(self) -> None:
        """A preference outside sms/email/both is not guessed at."""
        resource = fhir_patient(extension=[{"url": PREFERENCE_URL, "valueCode": "pigeon"}])
        page = mapped(fhir_appointment(), resource, fhir_location())
        assert page.quarantined[0].reason == "Patient.channel_preference: Input should be 'sms', 'email' or 'both'"

    def test_a_patient_with_only_optional_fields_missing_loads(self) -> None:
        """No communication, telecom, extension or family name: the patient loads with defaults and no contacts."""
        resource = {"resourceType": "Patient", "id": "9", "name": [{"given": ["Ada"]}]}
        page = one_patient(resource)
        assert page.batch.patients[0].model_dump() == {
            "id": "9", "given_name": "Ada", "family_name": "", "language": "en", "timezone": None,
            "channel_preference": "sms",
        }  # fmt: skip
        assert page.batch.contacts == ()
        assert page.dropped_contacts == 0


class TestTelecom:
    @pytest.mark.parametrize(("point", "contacts"), [
        ({"system": "sms", "value": "+12025550143"}, [("sms", "+12025550143", 100)]),
        ({"system": "phone", "use": "mobile", "value": "+12025550143"}, [("sms", "+12025550143", 100)]),
        ({"system": "phone", "use": "home", "value": "+12025550143"}, []),  # a landline cannot take SMS
        ({"system": "phone", "use": "work", "value": "+12025550143"}, []),
        ({"system": "phone", "value": "+12025550143"}, []),  # no use: not known to be a mobile
        ({"system": "email", "value": "zoe@example.org"}, [("email", "zoe@example.org", 100)]),
        ({"system": "email", "use": "work", "value": "zoe@example.org"}, [("email", "zoe@example.org", 100)]),
        ({"system": "fax", "value": "+12025550143"}, []),
        ({"system": "pager", "value": "+12025550143"}, []),
        ({"system": "url", "value": "https://zoe.example.org"}, []),
        ({"system": "sms", "use": "old", "value": "+12025550143"}, []),  # use=old: no longer in use
        ({"system": "email", "use": "old", "value": "zoe@example.org"}, []),
        ({"system": "sms", "value": "+12025550143", "rank": 3}, [("sms", "+12025550143", 3)]),
        ({"system": "sms", "value": "+12025550143", "rank": 0}, [("sms", "+12025550143", 100)]),  # rank is a positiveInt
        ({"system": "sms", "value": "(202) 555-0143"}, [("sms", "+12025550143", 100)]),  # national, in default_region
        ({"system": "sms", "value": "+44 20 7946 0123"}, [("sms", "+442079460123", 100)]),  # international, any region
        ({"system": "email", "value": " zoe@example.org "}, [("email", "zoe@example.org", 100)]),
    ])  # fmt: skip
    def test_system_use_and_rank(self, point: dict[str, Any], contacts: list[tuple[str, str, int]]) -> None:
        """sms, and phones with use=mobile, are SMS contacts in E.164; email is email; other points are ignored."""
        assert contacts_of(point) == contacts

    @pytest.mark.parametrize(("end", "kept"), [
        ("2025-02-28T23:59:59Z", False),  # ended before now
        ("2025-03-01T13:00:00+00:00", True),  # ends later today
        ("2025-03-01", True),  # a date: valid through that day
        ("2025-02", False),  # a month that has passed
        ("2026", True),  # a year to come
        ("someday", False),  # unreadable: not trusted
    ])  # fmt: skip
    def test_a_contact_point_whose_period_ended_is_ignored(self, end: str, kept: bool) -> None:
        """period.end in the past (relative to now) means the number or address is no longer valid."""
        point = {"system": "sms", "value": "+12025550143", "period": {"start": "2020-01-01", "end": end}}
        assert bool(contacts_of(point)) is kept

    @pytest.mark.parametrize("value", [
        "12",  # too short to dial
        "+1 202 555",  # incomplete
        "+999 1234567",  # no such country code
        "call the ward",  # not a number
        42,  # wrong JSON type
    ])  # fmt: skip
    def test_an_unusable_number_is_dropped_and_counted(self, value: object) -> None:
        """A number that cannot be made a valid E.164 is dropped, counted, and the patient still loads."""
        page = one_patient(fhir_patient(telecom=[{"system": "sms", "value": value},
                                                 {"system": "email", "value": "zoe@example.org"}]))  # fmt: skip
        assert [c.channel for c in page.batch.contacts] == ["email"]
        assert page.dropped_contacts == 1

    def test_an_address_without_a_domain_is_dropped(self) -> None:
        """An email needs a local part and a domain."""
        page = one_patient(fhir_patient(telecom=[{"system": "email", "value": "zoe@"}]))
        assert (page.batch.contacts, page.dropped_contacts) == ((), 1)

    def test_one_number_written_twice_is_one_contact_with_the_best_rank(self) -> None:
        """Normalised duplicates collapse, so the upsert touches each contact row once."""
        assert contacts_of(
            {"system": "sms", "value": "(202) 555-0143", "rank": 4},
            {"system": "phone", "use": "mobile", "value": "+1 202-555-0143", "rank": 2},
        ) == [("sms", "+12025550143", 2)]

    def test_default_region_reads_national_numbers(self) -> None:
        """The same national digits are another country's number under another default region."""
        page = mapped(fhir_appointment(), fhir_patient(telecom=[{"system": "sms", "value": "020 7946 0123"}]),
                      fhir_location(), default_region="GB")  # fmt: skip
        assert [c.value for c in page.batch.contacts] == ["+442079460123"]


class TestLocation:
    def test_a_location_without_timezone_takes_the_default_zone(self) -> None:
        """No timezone extension: the site's default zone."""
        page = mapped(fhir_appointment(), fhir_patient(), fhir_location(extension=[]), default_zone="Europe/Madrid")
        assert [x.timezone for x in page.batch.locations] == ["Europe/Madrid"]

    @pytest.mark.parametrize(("address", "text"), [
        ({"text": "1 River St, Springfield"}, "1 River St, Springfield"),
        ({"line": ["1 River St", "Floor 2"], "city": "Springfield"}, "1 River St, Floor 2, Springfield"),
        (None, ""),  # absent
    ])  # fmt: skip
    def test_address_is_its_text_else_lines_and_city(self, address: dict[str, Any] | None, text: str) -> None:
        """Address.text when given, else the lines and city joined."""
        resource = fhir_location(address=address) if address else fhir_location()
        resource.pop("address") if address is None else None
        page = mapped(fhir_appointment(), fhir_patient(), resource)
        assert [x.address for x in page.batch.locations] == [text]

    def test_the_first_phone_is_the_clinic_phone(self) -> None:
        """Location.telecom's first phone, as written (it is shown to patients, not dialled by us)."""
        telecom = [{"system": "email", "value": "desk@example.org"}, {"system": "phone", "value": "(202) 555-0100"},
                   {"system": "phone", "value": "+12025550101"}]  # fmt: skip
        page = mapped(fhir_appointment(), fhir_patient(), fhir_location(telecom=telecom))
        assert [x.phone for x in page.batch.locations] == ["(202) 555-0100"]

    def test_a_location_without_a_phone_is_quarantined_with_its_appointments(self) -> None:
        """Reminders give the clinic's phone: a location without one cannot be used."""
        page = mapped(fhir_appointment(), fhir_patient(), fhir_location(telecom=[]))
        assert [(q.source_id, q.reason) for q in page.quarantined] == [
            ("Location/3", "Location.telecom: no phone"),
            ("Appointment/1", "location Location/3 missing or invalid"),
        ]


class TestPage:
    def test_a_malformed_entry_is_quarantined_and_the_rest_loads(self) -> None:
        """An entry with no resource is quarantined without an id; the other appointments load."""
        body = json.loads(bundle(fhir_appointment("1"), fhir_appointment("2"), fhir_patient(), fhir_location()))
        body["entry"].insert(1, {"fullUrl": "urn:uuid:x", "search": {"mode": "match"}})
        page = fhir.map_fhir_bundle(json.dumps(body).encode(), default_zone="UTC", default_region="US", now=NOW)
        assert [a.id for a in page.batch.appointments] == ["1", "2"]
        assert [(q.source_id, q.reason) for q in page.quarantined] == [("", "Bundle.entry[1]: no resource")]

    @pytest.mark.parametrize(("body", "reason"), [
        (b'{"resourceType": "Bundle", "entry": [', "not JSON"),  # truncated
        (b"\xff\xfe\x00", "not JSON"),  # not text
        (b"[]", "not a FHIR Bundle"),
        (b'{"resourceType": "OperationOutcome", "issue": []}', "not a FHIR Bundle"),  # an error answered 200
        (b'{"resourceType": "Bundle", "type": "history"}', "Bundle.type is 'history', not 'searchset'"),
        (b'{"resourceType": "Bundle", "type": "searchset", "entry": {}}', "Bundle.entry or Bundle.link is not a list"),
        (b'{"resourceType": "Bundle", "type": "searchset", "link": [{"relation": "next", "url": "?page=2"}]}',
         "Bundle.link[next]: not an absolute http(s) URL"),  # nothing to resolve it against
    ])  # fmt: skip
    def test_an_unusable_page_raises_page_malformed(self, body: bytes, reason: str) -> None:
        """A page that is not a searchset Bundle raises PageMalformed with a reason; nothing on it loads."""
        with pytest.raises(mapping.PageMalformed) as raised:
            fhir.map_fhir_bundle(body, default_zone="UTC", default_region="US")
        assert raised.value.reason == reason

    def test_the_next_link_is_followed(self) -> None:
        """link[relation=next].url is the next page; without one, this is the last page."""
        next_url = "https://h.example/fhir/Appointment?_page=abc"
        page = fhir.map_fhir_bundle(bundle(next_url=next_url), default_zone="UTC", default_region="US")
        last = fhir.map_fhir_bundle(bundle(), default_zone="UTC", default_region="US")
        assert (page.next_url, last.next_url) == (next_url, None)

    def test_an_empty_page_is_an_empty_batch(self) -> None:
        """A searchset with no entries maps to nothing fetched."""
        page = fhir.map_fhir_bundle(bundle(), default_zone="UTC", default_region="US")
        assert (page.fetched, page.quarantined, page.batch.appointments) == (0, (), ())

    def test_each_record_appears_once_and_only_when_used(self) -> None:
        """A patient with two appointments is in the batch once; an include no loaded appointment needs is not."""
        page = mapped(fhir_appointment("1"), fhir_appointment("2"), fhir_patient("9"), fhir_patient("unused"),
                      fhir_location("3"))  # fmt: skip
        assert [p.id for p in page.batch.patients] == ["9"]
        assert [x.id for x in page.batch.locations] == ["3"]
        assert len(page.batch.contacts) == 2

    def test_without_search_mode_entries_are_classified_by_type(self) -> None:
        """Some servers omit search.mode: Appointments are the matches, the rest includes."""
        body = json.loads(bundle(fhir_appointment(), fhir_patient(), fhir_location()))
        for entry in body["entry"]:
            del entry["search"]
        page = fhir.map_fhir_bundle(json.dumps(body).encode(), default_zone="UTC", default_region="US", now=NOW)
        assert len(page.batch.appointments) == 1

    def test_reasons_and_repr_carry_no_patient_data(self) -> None:
        """A reason names the field; the raw record stays out of repr, so logging a Quarantined leaks nothing."""
        patient = fhir_patient(extension=[{"url": PREFERENCE_URL, "valueCode": "Zoë Martínez"}])
        page = mapped(fhir_appointment(), patient, fhir_location())
        text = repr(page.quarantined)
        assert "Zoë" not in text and "+12025550143" not in text
        assert "Zoë" in page.quarantined[0].raw  # kept for audit
