"""FHIR R4 Appointment search pages → ``MappedPage``. Pure: bytes in, frozen values out.

A page is a ``searchset`` Bundle: ``search.mode`` "match" entries are Appointments, "include"
entries their Patients and Locations; the next page is ``link[relation=next].url``. Our ids are
the FHIR logical ids ("Patient/9" → "9"); quarantined records keep the typed id ("Patient/9").

| FHIR R4                                             | ours                 | absent or bad                 |
|-----------------------------------------------------|----------------------|-------------------------------|
| Appointment.status (all 10 codes, 1:1)              | status               | quarantined                   |
| Appointment.start (instant, with offset)            | starts_at            | quarantined ("missing")       |
| Appointment.participant.actor Patient/x, Location/x | patient_id, location_id | quarantined, also if x is bad |
| Appointment.meta.versionId (digits)                 | source_version       | none; meta.lastUpdated unused |
| Patient.name (use=official, else first) given[0], family | given_name, family_name | no given: quarantined |
| Patient.communication (preferred, else first)       | language ← .language.coding[0].code | "en"           |
| Patient extension timezone (or tz-code) valueCode   | timezone (IANA)      | None: the clinic's zone applies |
| Patient extension channel-preference valueCode      | channel_preference   | see ``mapping``: both/email/sms |
| Patient.telecom system=sms, or phone + use=mobile   | sms contact (E.164)  | unusable number: dropped      |
| Patient.telecom system=email                        | email contact        | no local part/domain: dropped |
| telecom use=old, ended period, home/work phones, fax, pager, url | —       | ignored: not SMS-capable or stale |
| ContactPoint.rank (positiveInt, lower preferred)    | rank                 | 100, after every ranked one   |
| Location.name; address.text (else line + city)      | name; address        | no name: quarantined          |
| Location.telecom, first with system=phone           | phone (as written)   | quarantined ("no phone")      |
| Location extension timezone (or tz-code)            | timezone             | ``default_zone``              |

Extensions: ``http://hl7.org/fhir/StructureDefinition/timezone`` (FHIR extensions pack; R4's own
``.../tz-code`` is read too) and ``https://patientnotify.example.org/fhir/StructureDefinition/
channel-preference`` (valueCode sms | email | both).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from patient_notify.domain.models import Appointment, Channel, Location

from .mapping import (
    ContactCandidate,
    InvalidRecord,
    MappedPage,
    PageMalformed,
    PageParts,
    PatientRecord,
    appointment_status,
    aware_iso,
    instant,
    next_link,
    patient_record,
    validated,
)

__all__ = ["CHANNEL_PREFERENCE_URL", "TIMEZONE_URLS", "first_fhir_url", "map_fhir_bundle"]

TIMEZONE_URLS = ("http://hl7.org/fhir/StructureDefinition/timezone", "http://hl7.org/fhir/StructureDefinition/tz-code")
CHANNEL_PREFERENCE_URL = "https://patientnotify.example.org/fhir/StructureDefinition/channel-preference"
_PARTIAL_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")
_Includes = dict[str, PatientRecord | Location | None]  # "Patient/9" → mapped, or None if quarantined


def first_fhir_url(base_url: str, *, start: datetime, end: datetime, since: datetime | None, page_size: int) -> str:
    params = [
        ("date", f"ge{aware_iso(start)}"), ("date", f"lt{aware_iso(end)}"),
        ("_include", "Appointment:patient"), ("_include", "Appointment:location"),
        ("_count", str(page_size)), ("_sort", "_lastUpdated"),
    ]  # fmt: skip
    if since is not None:
        params.append(("_lastUpdated", f"ge{aware_iso(since)}"))
    return f"{base_url.rstrip('/')}/Appointment?{urlencode(params)}"


def map_fhir_bundle(body: bytes, *, default_zone: str, default_region: str, now: datetime | None = None) -> MappedPage:
    bundle, now = _searchset(body), now or datetime.now(UTC)
    parts, matches, includes = PageParts(), list[dict[str, Any]](), _Includes()
    for index, entry in enumerate(bundle.get("entry") or []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            parts.quarantine("", f"Bundle.entry[{index}]: no resource", entry, appointment=False)
        elif _mode(entry, resource) == "match":
            matches.append(resource)
        elif resource.get("resourceType") in ("Patient", "Location"):
            includes[_typed_id(resource)] = _include(resource, parts, default_zone, default_region, now)
    for resource in matches:
        try:
            parts.keep(*_appointment(resource, includes))
        except InvalidRecord as bad:
            parts.quarantine(_typed_id(resource), bad.reason, resource, appointment=True)
    links = [link for link in bundle.get("link") or [] if isinstance(link, dict) and link.get("relation") == "next"]
    return parts.page(next_link(links[0].get("url"), "Bundle.link[next]") if links else None)


def _searchset(body: bytes) -> dict[str, Any]:
    try:
        bundle = json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        raise PageMalformed("not JSON") from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise PageMalformed("not a FHIR Bundle")
    if bundle.get("type") != "searchset":
        raise PageMalformed(f"Bundle.type is {str(bundle.get('type'))[:40]!r}, not 'searchset'")
    if not isinstance(bundle.get("entry", []), list) or not isinstance(bundle.get("link", []), list):
        raise PageMalformed("Bundle.entry or Bundle.link is not a list")
    return bundle


def _mode(entry: dict[str, Any], resource: dict[str, Any]) -> str:
    search = entry.get("search")
    mode = search.get("mode") if isinstance(search, dict) else None
    return mode if isinstance(mode, str) else "match" if resource.get("resourceType") == "Appointment" else "include"


def _typed_id(resource: dict[str, Any]) -> str:
    kind, id_ = resource.get("resourceType"), resource.get("id")
    return f"{kind}/{id_}" if isinstance(kind, str) and isinstance(id_, str) and id_ else ""


def _include(
    resource: dict[str, Any], parts: PageParts, zone: str, region: str, now: datetime
) -> PatientRecord | Location | None:
    try:
        if resource["resourceType"] == "Location":
            return _location(resource, zone)
        return _patient(resource, region, now)
    except InvalidRecord as bad:
        parts.quarantine(_typed_id(resource), bad.reason, resource, appointment=False)
        return None


def _appointment(resource: dict[str, Any], includes: _Includes) -> tuple[Appointment, PatientRecord, Location]:
    if resource.get("resourceType") != "Appointment":
        raise InvalidRecord(f"match entry is {str(resource.get('resourceType'))[:40]!r}, not an Appointment")
    status = appointment_status(resource.get("status"), "Appointment.status")
    starts_at = instant(resource.get("start"), "Appointment.start")
    patient, location = _actor(resource, "Patient", includes), _actor(resource, "Location", includes)
    assert isinstance(patient, PatientRecord)  # includes are keyed by their resourceType
    assert isinstance(location, Location)
    values = {"id": resource.get("id"), "patient_id": patient.patient.id, "location_id": location.id,
              "starts_at": starts_at, "status": status, "source_version": _version(resource)}  # fmt: skip
    return validated(Appointment, "Appointment", values), patient, location


def _actor(resource: dict[str, Any], kind: str, includes: _Includes) -> PatientRecord | Location:
    references = [_get(p, "actor", "reference") for p in _dicts(resource.get("participant"))]
    typed = next((ref for ref in map(_reference, references) if ref and ref.startswith(f"{kind}/")), None)
    if typed is None:
        raise InvalidRecord(f"Appointment.participant: no {kind} actor")
    if (found := includes.get(typed)) is None:
        raise InvalidRecord(f"{kind.lower()} {typed} missing or invalid")
    return found


def _reference(reference: object) -> str | None:
    """The typed id of "Patient/9", also written absolute or versioned (".../Patient/9/_history/2")."""
    if not isinstance(reference, str):
        return None
    segments = reference.split("/")
    if "_history" in segments:
        segments = segments[: segments.index("_history")]
    return "/".join(segments[-2:]) if len(segments) >= 2 and segments[-1] else None


def _version(resource: dict[str, Any]) -> int | None:
    """The appointment system's own version (compared with announced changes); None if not a number."""
    version_id = _get(resource, "meta", "versionId")
    if not (isinstance(version_id, str) and version_id.isascii() and version_id.isdigit()):
        return None
    return int(version_id) if 1 <= int(version_id) < 2**31 else None  # the column is a PostgreSQL integer


def _patient(resource: dict[str, Any], region: str, now: datetime) -> PatientRecord:
    names = _dicts(resource.get("name"))
    name = next((n for n in names if n.get("use") == "official"), next(iter(names), {}))
    given = name.get("given")
    communications = _dicts(resource.get("communication"))
    spoken = next((c for c in communications if c.get("preferred") is True), next(iter(communications), {}))
    codings = _dicts(_get(spoken, "language", "coding"))
    values = {
        "id": resource.get("id"), "given_name": given[0] if isinstance(given, list) and given else "",
        "family_name": name.get("family", ""), "language": codings[0].get("code", "en") if codings else "en",
        "timezone": _extension(resource, *TIMEZONE_URLS),
        "channel_preference": _extension(resource, CHANNEL_PREFERENCE_URL),
    }  # fmt: skip
    return patient_record("Patient", values, _contact_candidates(resource.get("telecom"), now), region)


def _contact_candidates(telecom: object, now: datetime) -> Iterator[ContactCandidate]:
    for point in _dicts(telecom):
        channel = _channel(point)
        if channel is not None and point.get("use") != "old" and not _ended(point.get("period"), now):
            yield ContactCandidate(channel, point.get("value"), point.get("rank"))


def _channel(point: dict[str, Any]) -> Channel | None:
    system = point.get("system")
    if system == "sms" or (system == "phone" and point.get("use") == "mobile"):
        return "sms"
    return "email" if system == "email" else None


def _ended(period: object, now: datetime) -> bool:
    """``period.end`` has passed; a partial date ("2024-03") lasts to its end. Unreadable: ended."""
    end = period.get("end") if isinstance(period, dict) else None
    if end is None:
        return False
    if isinstance(end, str) and _PARTIAL_DATE.fullmatch(end):
        return now.astimezone(UTC).date().isoformat()[: len(end)] > end  # ISO dates sort as text
    try:
        when = datetime.fromisoformat(end) if isinstance(end, str) else None
    except ValueError:
        return True
    return when is None or (when if when.tzinfo else when.replace(tzinfo=UTC)) < now


def _location(resource: dict[str, Any], default_zone: str) -> Location:
    phone = next((t.get("value") for t in _dicts(resource.get("telecom")) if t.get("system") == "phone"), None)
    if phone is None:
        raise InvalidRecord("Location.telecom: no phone")
    values = {"id": resource.get("id"), "name": resource.get("name"), "address": _address(resource.get("address")),
              "phone": phone, "timezone": _extension(resource, *TIMEZONE_URLS) or default_zone}  # fmt: skip
    return validated(Location, "Location", values)


def _address(address: object) -> object:
    if not isinstance(address, dict):
        return ""
    if "text" in address:
        return address["text"]
    lines = [*(address.get("line") or []), address.get("city")]
    return ", ".join(line for line in lines if isinstance(line, str) and line)


def _extension(resource: dict[str, Any], *urls: str) -> object:
    return next((e.get("valueCode") for e in _dicts(resource.get("extension")) if e.get("url") in urls), None)


def _get(value: object, *keys: str) -> object:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
