"""A synthetic hospital: 1,000 appointments across five time zones, and the messages they must produce."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from patient_notify.catalog import SourceBatch
from patient_notify.domain.models import Appointment, ContactPoint, Location, Patient

ZONES = ("America/New_York", "Europe/London", "Europe/Madrid", "Asia/Kolkata", "Australia/Sydney")
NAMES = ("Zoëlle", "Josémaria", "Łukasz", "Siobhán", "Oluwaseun", "Xiomara", "Thandiwe", "Björnar")
PREFERENCES = ("sms", "email", "both")


@dataclass(frozen=True)
class Population:
    batch: SourceBatch
    expected: frozenset[tuple[str, str]]  # (recipient, channel): exactly one message each
    unreachable: int  # patients whose chosen channel has no contact point: alerted, not messaged
    secrets: tuple[str, ...]  # names, phones, emails: never in any log line


def build_population(count: int, start: datetime) -> Population:
    """Appointments 4 local days after ``start``: every reminder falls due within 48 hours of it."""
    locations = [
        Location(id=f"loc-{i}", name=f"Clinic {zone.split('/')[1]}", address=f"{i} Main St",
                 phone="+12025550100", timezone=zone)
        for i, zone in enumerate(ZONES)
    ]  # fmt: skip
    patients, contacts, appointments, expected, secrets = [], [], [], set(), []
    unreachable = 0
    for i in range(count):
        zone, preference = ZONES[i % len(ZONES)], PREFERENCES[i % 3]
        name, phone, email = f"{NAMES[i % len(NAMES)]}", f"+1202555{i:04d}", f"patient{i}@example.org"
        patients.append(Patient(id=f"pat-{i}", given_name=name, family_name=f"Family{i}",
                                language=("en", "es", "fr")[i % 3], timezone=zone if i % 2 else None,
                                channel_preference=preference))  # fmt: skip
        has_phone = i % 50 != 0  # every 50th patient gave no phone number
        if has_phone:
            contacts.append(ContactPoint(patient_id=f"pat-{i}", channel="sms", value=phone))
        contacts.append(ContactPoint(patient_id=f"pat-{i}", channel="email", value=email))
        if preference in ("sms", "both") and has_phone:
            expected.add((phone, "sms"))
        elif preference in ("sms", "both"):
            unreachable += 1
        if preference in ("email", "both"):
            expected.add((email, "email"))
        local_day = start.astimezone(ZoneInfo(zone)).date() + timedelta(days=4)
        starts = datetime.combine(local_day, time(8 + i % 9, 15 * (i % 4)), ZoneInfo(zone))
        appointments.append(Appointment(id=f"appt-{i}", patient_id=f"pat-{i}", location_id=f"loc-{i % 5}",
                                        starts_at=starts, status="booked"))  # fmt: skip
        secrets += [phone, email, f"Family{i}"]
    return Population(SourceBatch(locations, patients, contacts, appointments), frozenset(expected),
                      unreachable, tuple(secrets) + NAMES)  # fmt: skip
