"""The patient API stand-in's two wire formats: FHIR R4 searchset Bundles and the plain JSON API.

Queries parse into one ``SearchQuery``; pages render from the population's records. Paging is
keyset paging on ``(updated_at, id)``: the next link carries an opaque token naming the last
record served, so a record that changes while a client pages moves behind the cursor and is
served again later (never skipped), a deleted one just disappears, and the rest come exactly once.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sandbox.patient_population import Cursor, Population, SourceAppointment, SourceLocation, SourcePatient

__all__ = ["QueryInvalid", "SearchQuery", "fhir_bundle", "fhir_query", "json_page", "json_query", "page_url"]

TIMEZONE_URL = "http://hl7.org/fhir/StructureDefinition/timezone"
CHANNEL_PREFERENCE_URL = "https://patientnotify.example.org/fhir/StructureDefinition/channel-preference"
_MICROSECOND = timedelta(microseconds=1)


class QueryInvalid(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SearchQuery:
    start_from: datetime | None = None
    start_to: datetime | None = None  # exclusive
    updated_from: datetime | None = None
    after: Cursor | None = None
    limit: int = 100
    include_patients: bool = True
    include_locations: bool = True


def fhir_query(params: list[tuple[str, str]], page_size_max: int) -> SearchQuery:
    lows: list[datetime] = []
    highs: list[datetime] = []
    updated: list[datetime] = []
    for name, value in params:
        if name in ("date", "_lastUpdated"):
            prefix, when, is_date = value[:2], _instant(value[2:], name), len(value) == 12
            step = timedelta(days=1) if is_date else _MICROSECOND  # "gt2025-03-01" starts the day after
            bound = {"ge": (lows, when), "gt": (lows, when + step), "lt": (highs, when), "le": (highs, when + step)}
            if prefix not in bound or (name == "_lastUpdated" and prefix not in ("ge", "gt")):
                raise QueryInvalid(f"{name}: prefix {prefix!r} is not supported")
            target, moment = bound[prefix]
            (updated if name == "_lastUpdated" else target).append(moment)
        elif name == "_sort" and value != "_lastUpdated":
            raise QueryInvalid("_sort: only _lastUpdated is supported")
    includes = {value for name, value in params if name == "_include"}
    return SearchQuery(
        max(lows, default=None), min(highs, default=None), max(updated, default=None),
        _cursor(params, "_page"), _limit(params, "_count", page_size_max),
        "Appointment:patient" in includes, "Appointment:location" in includes,
    )  # fmt: skip


def json_query(params: list[tuple[str, str]], page_size_max: int) -> SearchQuery:
    given = dict(params)
    start_from, start_to, since = (
        _instant(given[name], name) if name in given else None for name in ("from", "to", "updated_since")
    )
    return SearchQuery(start_from, start_to, since, _cursor(params, "after"), _limit(params, "limit", page_size_max))


def page_url(base: str, params: list[tuple[str, str]], token_name: str, last: SourceAppointment) -> str:
    """The same query, resuming after ``last``."""
    token = json.dumps([last.updated_at.isoformat(), last.id]).encode()
    kept = [(name, value) for name, value in params if name != token_name]
    return f"{base}?{urlencode([*kept, (token_name, base64.urlsafe_b64encode(token).decode())])}"


def fhir_bundle(population: Population, records: list[SourceAppointment], query: SearchQuery, self_url: str,
                next_url: str | None, fhir_base: str) -> dict[str, Any]:  # fmt: skip
    entries = [_entry(fhir_base, _fhir_appointment(a, population), "match") for a in records]
    seen: set[str] = set()
    for a in records:
        if query.include_patients and a.corruption != "no-patient" and a.patient_id not in seen:
            seen.add(a.patient_id)
            entries.append(_entry(fhir_base, _fhir_patient(population.patients[a.patient_id]), "include"))
        if query.include_locations and a.location_id not in seen:
            seen.add(a.location_id)
            entries.append(_entry(fhir_base, _fhir_location(population.locations[a.location_id]), "include"))
    links = [{"relation": "self", "url": self_url}] + ([{"relation": "next", "url": next_url}] if next_url else [])
    timestamp = _utc(datetime.now(UTC))
    return {"resourceType": "Bundle", "type": "searchset", "timestamp": timestamp, "link": links, "entry": entries}


def json_page(population: Population, records: list[SourceAppointment], next_url: str | None) -> dict[str, Any]:
    return {"appointments": [_json_record(a, population) for a in records], "next": next_url}


def _entry(fhir_base: str, resource: dict[str, Any], mode: str) -> dict[str, Any]:
    full_url = f"{fhir_base}/{resource['resourceType']}/{resource['id']}"
    return {"fullUrl": full_url, "resource": resource, "search": {"mode": mode}}


def _fhir_appointment(a: SourceAppointment, population: Population) -> dict[str, Any]:
    zone = population.locations[a.location_id].timezone
    actors = [] if a.corruption == "no-patient" else [f"Patient/{a.patient_id}"]
    return {
        "resourceType": "Appointment", "id": a.id,
        "meta": {"versionId": str(a.version), "lastUpdated": _utc(a.updated_at)},
        "status": _status(a), "start": _start(a, zone), "end": _local(a.start + timedelta(minutes=30), zone),
        "participant": [{"actor": {"reference": ref}, "status": "accepted"}
                        for ref in [*actors, f"Location/{a.location_id}"]],
    }  # fmt: skip


def _fhir_patient(p: SourcePatient) -> dict[str, Any]:
    style = sum(map(ord, p.id))  # how this hospital happened to write the contact points
    phones = [{"system": "sms"} if style % 3 == 0 else {"system": "phone", "use": "mobile"} for _ in p.phones]
    telecom = [{**kind, "value": number, **_rank(rank)} for kind, (number, rank) in zip(phones, p.phones, strict=True)]
    telecom += [{"system": "email", "value": address, **_rank(rank)} for address, rank in p.emails]
    if style % 4 == 0:  # not SMS-capable, and stale: both ignored by a correct client
        telecom += [{"system": "phone", "use": "home", "value": "+1 202 555 0199"},
                    {"system": "email", "use": "old", "value": "old-address@example.org"}]  # fmt: skip
    extension = [{"url": TIMEZONE_URL, "valueCode": p.timezone}] if p.timezone else []
    if p.channel_preference:
        extension.append({"url": CHANNEL_PREFERENCE_URL, "valueCode": p.channel_preference})
    language = {"coding": [{"system": "urn:ietf:bcp:47", "code": p.language}]}
    return {
        "resourceType": "Patient", "id": p.id, "extension": extension,
        "name": [{"use": "official", "family": p.family_name, "given": [p.given_name]}],
        "telecom": telecom, "communication": [{"language": language, "preferred": True}],
    }  # fmt: skip


def _fhir_location(x: SourceLocation) -> dict[str, Any]:
    line, _, city = x.address.partition(", ")
    return {
        "resourceType": "Location", "id": x.id, "status": "active", "name": x.name,
        "address": {"line": [line], "city": city}, "telecom": [{"system": "phone", "value": x.phone}],
        "extension": [{"url": TIMEZONE_URL, "valueCode": x.timezone}] if x.timezone else [],
    }  # fmt: skip


def _json_record(a: SourceAppointment, population: Population) -> dict[str, Any]:
    p, x = population.patients[a.patient_id], population.locations[a.location_id]
    patient = {
        "id": p.id, "given_name": p.given_name, "family_name": p.family_name, "language": p.language,
        "timezone": p.timezone, "channel_preference": p.channel_preference,
        "phones": [{"number": number, **_rank(rank)} for number, rank in p.phones],
        "emails": [{"address": address, **_rank(rank)} for address, rank in p.emails],
    }  # fmt: skip
    location = {"id": x.id, "name": x.name, "address": x.address, "phone": x.phone, "timezone": x.timezone}
    return {
        "id": a.id, "status": _status(a), "start": _start(a, x.timezone), "updated_at": _utc(a.updated_at),
        "version": a.version, "patient": None if a.corruption == "no-patient" else patient, "location": location,
    }  # fmt: skip


def _status(a: SourceAppointment) -> str:
    return "rescheduled" if a.corruption == "bad-status" else a.status  # not an AppointmentStatus code


def _start(a: SourceAppointment, zone: str | None) -> str | int:
    return int(a.start.timestamp()) if a.corruption == "wrong-type" else _local(a.start, zone)


def _local(moment: datetime, zone: str | None) -> str:
    return moment.astimezone(ZoneInfo(zone) if zone else UTC).isoformat()


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rank(rank: int | None) -> dict[str, int]:
    return {} if rank is None else {"rank": rank}


def _instant(value: str, name: str) -> datetime:
    text = value.replace(" ", "+")  # an unencoded "+" in a query string arrives as a space
    try:
        parsed = datetime.combine(date.fromisoformat(text), datetime.min.time()) if len(text) == 10 else None
        parsed = parsed or datetime.fromisoformat(text)
    except ValueError:
        raise QueryInvalid(f"{name}: not an ISO 8601 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _limit(params: list[tuple[str, str]], name: str, page_size_max: int) -> int:
    value = dict(params).get(name, "100")
    if not value.isdigit() or int(value) < 1:
        raise QueryInvalid(f"{name}: a positive integer")
    return min(int(value), page_size_max)


def _cursor(params: list[tuple[str, str]], name: str) -> Cursor | None:
    token = dict(params).get(name)
    if token is None:
        return None
    try:
        updated_at, appt_id = json.loads(base64.urlsafe_b64decode(token))
        return datetime.fromisoformat(updated_at), str(appt_id)
    except (binascii.Error, ValueError, TypeError):
        raise QueryInvalid(f"{name}: not a token this server issued") from None
