"""The hospital API stand-in over real HTTP: paging, filters, mutations, injected faults; its pages map cleanly."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import phonenumbers
import pytest

from sandbox.patient_api import PatientApiStandIn, Population
from sandbox.patient_population import Corruption, TickingClock
from tests.support.functions import load_module

fhir = load_module("etl", "fhir")
plain_json = load_module("etl", "plain_json")
mapping = load_module("etl", "mapping")

START = datetime(2025, 3, 3, tzinfo=UTC)
END = START + timedelta(days=14)
MAPPERS = {"fhir": fhir.map_fhir_bundle, "json": plain_json.map_json_page}


def make_population(count: int = 300, **overrides: Any) -> Population:
    return Population.generate(count, **{"seed": 7, "start": START, **overrides})


def first_url(api: PatientApiStandIn, kind: str, *, since: datetime | None = None, page_size: int = 40,
              start: datetime = START, end: datetime = END) -> str:  # fmt: skip
    if kind == "fhir":
        return str(fhir.first_fhir_url(api.fhir_url, start=start, end=end, since=since, page_size=page_size))
    return str(plain_json.first_json_url(api.json_url, start=start, end=end, since=since, page_size=page_size))


def map_page(kind: str, body: bytes) -> Any:
    return MAPPERS[kind](body, default_zone="America/New_York", default_region="US")


def walk(
    client: httpx.Client, kind: str, url: str | None, between_pages: Callable[[], None] = lambda: None
) -> list[Any]:
    """Every mapped page from ``url`` to the last; the stand-in must not fail (failure_rate=0)."""
    pages = []
    while url:
        response = client.get(url)
        response.raise_for_status()
        pages.append(map_page(kind, response.content))
        url = pages[-1].next_url
        between_pages()
    return pages


def loaded_ids(pages: list[Any]) -> list[str]:
    return [a.id for page in pages for a in page.batch.appointments]


@pytest.fixture
def population() -> Population:
    return make_population()


@pytest.fixture
def api(population: Population) -> Iterator[PatientApiStandIn]:
    with PatientApiStandIn(population, failure_rate=0.0) as stand_in:
        yield stand_in


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as http:
        yield http


class TestPopulation:
    def test_generation_is_deterministic_for_a_seed_and_clock(self) -> None:
        """The same seed and clock give the same hospital."""

        def clock() -> TickingClock:
            return TickingClock(lambda: datetime(2025, 3, 1, tzinfo=UTC))

        first, second = make_population(50, clock=clock()), make_population(50, clock=clock())
        assert [first.appointment(i) for i in first.ids()] == [second.appointment(i) for i in second.ids()]
        assert first.patients == second.patients

    def test_the_data_is_plausible(self) -> None:
        """Every start is in the horizon; every phone is a valid number; most appointments are booked."""
        population = make_population(2000)
        records = [population.appointment(i) for i in population.ids()]
        assert all(START <= r.start < END for r in records)
        numbers = [n for p in population.patients.values() for n, _ in p.phones]
        assert all(phonenumbers.is_valid_number(phonenumbers.parse(n, "US")) for n in numbers)
        assert len(
            {
                phonenumbers.format_number(phonenumbers.parse(n, "US"), phonenumbers.PhoneNumberFormat.E164)
                for n in numbers
            }
        ) == len(numbers)
        statuses = Counter(r.status for r in records)
        assert statuses["booked"] > 0.7 * len(records) and statuses["cancelled"] and statuses["fulfilled"]

    def test_a_change_stamps_a_later_update_and_a_new_version(self, population: Population) -> None:
        """Each mutation moves updated_at past every earlier stamp and bumps the version."""
        latest = max(population.appointment(i).updated_at for i in population.ids())
        changed = population.cancel("appt-5")
        assert changed.updated_at > latest
        assert (changed.status, changed.version) == ("cancelled", 2)


class TestPaging:
    @pytest.mark.parametrize("kind", ["fhir", "json"])
    def test_paging_returns_every_appointment_exactly_once(
        self, api: PatientApiStandIn, client: httpx.Client, population: Population, kind: str
    ) -> None:
        """Following next links from the first page yields each appointment in the window once, nothing quarantined."""
        pages = walk(client, kind, first_url(api, kind))
        ids = loaded_ids(pages)
        assert sorted(ids) == sorted(population.ids())
        assert len(pages) == -(-len(ids) // 40)
        assert all(page.quarantined == () and page.dropped_contacts == 0 for page in pages)

    @pytest.mark.parametrize("kind", ["fhir", "json"])
    def test_the_window_bounds_the_start(self, api: PatientApiStandIn, client: httpx.Client,
                                         population: Population, kind: str) -> None:  # fmt: skip
        """Only appointments starting in [start, end) are served."""
        start, end = START + timedelta(days=3), START + timedelta(days=5)
        ids = loaded_ids(walk(client, kind, first_url(api, kind, start=start, end=end)))
        assert sorted(ids) == sorted(population.appointment_ids_between(start, end))
        assert 0 < len(ids) < len(population)

    @pytest.mark.parametrize("kind", ["fhir", "json"])
    def test_records_changed_while_paging_are_served_again_never_skipped(
        self, api: PatientApiStandIn, client: httpx.Client, population: Population, kind: str
    ) -> None:
        """Keyset paging: a record changed after it was served comes again later in its new state; the rest once."""
        response = client.get(first_url(api, kind))
        first = map_page(kind, response.content)
        served = [a.id for a in first.batch.appointments]
        not_yet = next(i for i in population.ids() if i not in served)
        for appt_id in (served[0], served[-1], not_yet):
            population.cancel(appt_id)
        counts = Counter(served + loaded_ids(walk(client, kind, first.next_url)))
        assert set(counts) == set(population.ids())
        assert {i for i, n in counts.items() if n > 1} == {served[0], served[-1]}

    def test_json_pages_follow_the_documented_schema(self, api: PatientApiStandIn, client: httpx.Client) -> None:
        """The stand-in's JSON API serves what docs/json-api.schema.json describes."""
        schema = json.loads((Path(__file__).resolve().parents[2] / "docs" / "json-api.schema.json").read_text())
        jsonschema.Draft202012Validator(schema).validate(client.get(first_url(api, "json")).json())

    def test_the_page_size_is_capped(self, population: Population, client: httpx.Client) -> None:
        """_count above page_size_max is served as page_size_max."""
        with PatientApiStandIn(population, failure_rate=0.0, page_size_max=25) as api:
            response = client.get(first_url(api, "fhir", page_size=1000))
        assert len(map_page("fhir", response.content).batch.appointments) == 25

    def test_a_bad_query_is_answered_400(self, api: PatientApiStandIn, client: httpx.Client) -> None:
        """An unreadable parameter is a 400 OperationOutcome, not a guess."""
        response = client.get(f"{api.fhir_url}/Appointment", params={"date": "ge-someday"})
        assert response.status_code == 400
        assert response.json()["resourceType"] == "OperationOutcome"


class TestIncremental:
    @pytest.mark.parametrize("kind", ["fhir", "json"])
    def test_last_updated_returns_only_records_changed_since(
        self, api: PatientApiStandIn, client: httpx.Client, population: Population, kind: str
    ) -> None:
        """After a reschedule, a relocation and a cancellation, a search since the first change finds exactly those."""
        moved = population.reschedule("appt-10", START + timedelta(days=2, hours=9))
        population.relocate("appt-11", "loc-0")
        population.cancel("appt-12")
        pages = walk(client, kind, first_url(api, kind, since=moved.updated_at))
        appointments = {a.id: a for page in pages for a in page.batch.appointments}
        assert set(appointments) == {"appt-10", "appt-11", "appt-12"}
        assert appointments["appt-10"].starts_at == START + timedelta(days=2, hours=9)
        assert appointments["appt-11"].location_id == "loc-0"
        assert appointments["appt-12"].status == "cancelled"

    def test_a_deleted_appointment_is_no_longer_served(
        self, api: PatientApiStandIn, client: httpx.Client, population: Population
    ) -> None:
        """delete() removes the appointment from every later search."""
        population.delete("appt-3")
        assert "appt-3" not in loaded_ids(walk(client, "json", first_url(api, "json")))

    @pytest.mark.parametrize(("kind", "corruption", "reason"), [
        ("fhir", "bad-status", "Appointment.status: unknown code 'rescheduled'"),
        ("fhir", "wrong-type", "Appointment.start: expected a string, got int"),
        ("fhir", "no-patient", "Appointment.participant: no Patient actor"),
        ("json", "bad-status", "appointment.status: unknown code 'rescheduled'"),
        ("json", "wrong-type", "appointment.start: Input should be a valid string"),  # the strict schema's words
        ("json", "no-patient", "appointment.patient: missing"),
    ])  # fmt: skip
    def test_corrupt_records_are_quarantined_and_the_rest_load(
        self, api: PatientApiStandIn, client: httpx.Client, population: Population, kind: str,
        corruption: Corruption, reason: str,
    ) -> None:  # fmt: skip
        """Each corruption kind quarantines just that appointment, with its source id and a reason."""
        population.corrupt("appt-20", corruption)
        pages = walk(client, kind, first_url(api, kind))
        source_id = "Appointment/appt-20" if kind == "fhir" else "appt-20"
        assert [(q.source_id, q.reason) for page in pages for q in page.quarantined] == [(source_id, reason)]
        assert len(loaded_ids(pages)) == len(population) - 1


class TestFaults:
    def test_failures_occur_at_the_configured_rate_in_every_kind(self, population: Population) -> None:
        """About failure_rate of requests fail, as 500, 503 with Retry-After, a stall past the timeout, or a drop."""
        seen: Counter[str] = Counter()
        with PatientApiStandIn(population, failure_rate=0.25, seed=3, stall_s=5.0) as api, \
                httpx.Client(timeout=httpx.Timeout(5.0, read=1.0)) as client:  # fmt: skip
            # read=1.0: far above a healthy page's time even on a loaded machine, far below the 5 s stall
            url = first_url(api, "json", page_size=5)
            for _ in range(120):
                try:
                    response = client.get(url)
                except httpx.ReadTimeout:
                    seen["stall"] += 1
                except httpx.RemoteProtocolError:
                    seen["drop"] += 1
                else:
                    seen[str(response.status_code)] += 1
                    if response.status_code == 503:
                        assert response.headers["Retry-After"] == "1"
            assert api.requests == 120
            assert 0.15 * 120 <= api.failures_injected <= 0.35 * 120
            assert dict(api.faults) == {kind: seen[kind] for kind in ("500", "503", "stall", "drop")}
        assert all(seen[kind] > 0 for kind in ("500", "503", "stall", "drop"))
        assert seen["200"] == 120 - api.failures_injected

    def test_fail_everything_answers_503_until_switched_off(self, api: PatientApiStandIn, client: httpx.Client) -> None:
        """An outage: every request 503 with Retry-After, and normal service when it ends."""
        api.fail_everything = True
        statuses = [client.get(first_url(api, "fhir")) for _ in range(5)]
        api.fail_everything = False
        assert [r.status_code for r in statuses] == [503] * 5
        assert all(r.headers["Retry-After"] == "1" for r in statuses)
        assert client.get(first_url(api, "fhir")).status_code == 200
        assert (api.failures_injected, api.pages_served) == (5, 1)

    @pytest.mark.parametrize("kind", ["fhir", "json"])
    def test_bad_pages_are_invalid_json(self, api: PatientApiStandIn, client: httpx.Client, kind: str) -> None:
        """bad_page_next=n: the next n pages answer 200 with a body that is not JSON; the mapper says so."""
        api.bad_page_next = 2
        bodies = [client.get(first_url(api, kind)).content for _ in range(3)]
        for body in bodies[:2]:
            with pytest.raises(mapping.PageMalformed, match="not JSON"):
                map_page(kind, body)
        assert map_page(kind, bodies[2]).fetched == 40
        assert api.faults["bad-page"] == 2

    def test_the_fhir_page_is_a_searchset_with_includes(self, api: PatientApiStandIn, client: httpx.Client) -> None:
        """Matches first, then each patient and location once as includes, with fullUrls and a next link."""
        bundle: dict[str, Any] = json.loads(client.get(first_url(api, "fhir", page_size=10)).content)
        modes = Counter((e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"])
        assert modes[("Appointment", "match")] == 10 and modes[("Patient", "include")] == 10
        assert 0 < modes[("Location", "include")] <= 10
        assert [link["relation"] for link in bundle["link"]] == ["self", "next"]
        assert all(e["fullUrl"].startswith(api.fhir_url) for e in bundle["entry"])
