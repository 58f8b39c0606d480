"""A synthetic hospital for the patient API stand-in: clinics, patients, appointments; mutable by tests.

Deterministic for a seed and a clock: ``count`` appointments spread over the horizon, each with
its own patient, across 20 clinics. Names carry accents; phones are fictional but valid
(``+1 202 555 xxxx`` and Ofcom's drama range ``+44 20 7946 0xxx``; unique for the first 11,000
patients); emails are ``@example.org``.

Every change stamps ``updated_at`` from the clock, strictly later than any stamp before it, and
bumps ``version``. Records are kept in one list sorted by ``(updated_at, id)``, so a search is a
bisection to its cursor and a forward scan, never a pass over the whole population.
"""

from __future__ import annotations

import random
import threading
import unicodedata
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

__all__ = ["Corruption", "Population", "SourceAppointment", "SourceLocation", "SourcePatient", "TickingClock"]

Corruption = Literal["bad-status", "wrong-type", "no-patient"]
Cursor = tuple[datetime, str]  # (updated_at, id) of the last record a page served
ZONES = ("America/New_York", "America/Chicago", "America/Los_Angeles", "Europe/London", "Europe/Madrid", "Asia/Kolkata")
GIVEN = ("Zoë", "José", "Łukasz", "Siobhán", "Oluwaseun", "Xiomara", "Thandiwe", "Björn", "Ada", "Émile", "Ana")
FAMILY = ("Martínez", "Nowak", "O'Brien", "Adeyemi", "Müller", "Dubois", "Okafor", "García", "Lovelace", "Ñúñez")
LANGUAGES = ("en", "es", "fr", "de")
PREFERENCES = (None, "sms", "email", "both")
STATUSES, STATUS_WEIGHTS = ("booked", "cancelled", "fulfilled", "pending"), (85, 8, 4, 3)


@dataclass(frozen=True)
class SourceLocation:
    id: str
    name: str
    address: str
    phone: str
    timezone: str | None


@dataclass(frozen=True)
class SourcePatient:
    id: str
    given_name: str
    family_name: str
    language: str
    timezone: str | None
    channel_preference: str | None
    phones: tuple[tuple[str, int | None], ...]  # (number as the hospital wrote it, rank)
    emails: tuple[tuple[str, int | None], ...]


@dataclass(frozen=True)
class SourceAppointment:
    id: str
    status: str
    start: datetime
    patient_id: str
    location_id: str
    updated_at: datetime
    version: int = 1
    corruption: Corruption | None = None  # applied when rendered; the index keeps the true start


class TickingClock:
    """Wall-clock time to the millisecond, but strictly increasing: every stamp is unique."""

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._now, self._last = now, datetime.min.replace(tzinfo=UTC)

    def __call__(self) -> datetime:
        now = self._now().astimezone(UTC)
        to_the_millisecond = now.replace(microsecond=now.microsecond // 1000 * 1000)
        self._last = max(to_the_millisecond, self._last + timedelta(milliseconds=1))
        return self._last


class Population:
    def __init__(
        self, locations: list[SourceLocation], patients: list[SourcePatient],
        appointments: list[SourceAppointment], clock: Callable[[], datetime],
    ) -> None:  # fmt: skip
        self.locations = {x.id: x for x in locations}
        self.patients = {x.id: x for x in patients}
        self._appointments = {x.id: x for x in appointments}
        self._order = sorted((x.updated_at, x.id) for x in appointments)
        self._clock, self._lock = clock, threading.Lock()

    @classmethod
    def generate(
        cls, count: int, *, seed: int = 0, start: datetime, horizon_days: int = 14,
        clock: Callable[[], datetime] | None = None,
    ) -> Population:  # fmt: skip
        rng, clock = random.Random(seed), clock or TickingClock()
        created = clock()  # every generated record was last updated before this moment
        locations = [_location(k) for k in range(20)]
        patients, appointments = [], []
        for i in range(count):
            patients.append(_patient(i))
            slot = timedelta(minutes=15 * rng.randrange(horizon_days * 96))
            updated = created - timedelta(seconds=rng.randrange(1, 30 * 86400))
            appointments.append(SourceAppointment(
                f"appt-{i}", rng.choices(STATUSES, STATUS_WEIGHTS)[0], start + slot, f"pat-{i}",
                locations[rng.randrange(len(locations))].id, updated,
            ))  # fmt: skip
        return cls(locations, patients, appointments, clock)

    def __len__(self) -> int:
        return len(self._appointments)

    def appointment(self, appt_id: str) -> SourceAppointment:
        with self._lock:
            return self._appointments[appt_id]

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._appointments)

    def appointment_ids_between(self, start: datetime, end: datetime) -> list[str]:
        """Every appointment starting in [start, end): what a full pass over that window must load."""
        with self._lock:
            return [x.id for x in self._appointments.values() if start <= x.start < end]

    def search(
        self, *, start_from: datetime | None, start_to: datetime | None, updated_from: datetime | None,
        after: Cursor | None, limit: int,
    ) -> tuple[list[SourceAppointment], bool]:  # fmt: skip
        """Up to ``limit`` appointments in ``(updated_at, id)`` order after ``after``; and whether more follow."""
        with self._lock:
            index = bisect_left(self._order, (updated_from, "")) if updated_from else 0
            index = max(index, bisect_right(self._order, after)) if after else index
            found: list[SourceAppointment] = []
            for position in range(index, len(self._order)):  # a slice would copy the tail
                record = self._appointments[self._order[position][1]]
                if (start_from is None or record.start >= start_from) and (start_to is None or record.start < start_to):
                    if len(found) == limit:
                        return found, True
                    found.append(record)
            return found, False

    def reschedule(self, appt_id: str, new_start: datetime) -> SourceAppointment:
        return self._change(appt_id, start=new_start)

    def relocate(self, appt_id: str, location_id: str) -> SourceAppointment:
        if location_id not in self.locations:
            raise KeyError(location_id)
        return self._change(appt_id, location_id=location_id)

    def cancel(self, appt_id: str) -> SourceAppointment:
        return self._change(appt_id, status="cancelled")

    def corrupt(self, appt_id: str, kind: Corruption) -> SourceAppointment:
        return self._change(appt_id, corruption=kind)

    def delete(self, appt_id: str) -> None:
        with self._lock:
            record = self._appointments.pop(appt_id)
            del self._order[bisect_left(self._order, (record.updated_at, appt_id))]

    def _change(self, appt_id: str, **changes: Any) -> SourceAppointment:
        with self._lock:
            old = self._appointments[appt_id]
            new = replace(old, **changes, updated_at=self._clock(), version=old.version + 1)
            del self._order[bisect_left(self._order, (old.updated_at, appt_id))]
            insort(self._order, (new.updated_at, appt_id))
            self._appointments[appt_id] = new
            return new


def _location(k: int) -> SourceLocation:
    zone = None if k % 5 == 4 else ZONES[k % len(ZONES)]  # every fifth clinic leaves its zone to the site default
    city = zone.split("/")[1].replace("_", " ") if zone else "Springfield"
    return SourceLocation(f"loc-{k}", f"{city} Clinic {k}", f"{k + 1} Main St, {city}", f"+1 202 555 01{k:02d}", zone)


def _patient(i: int) -> SourcePatient:
    given, family = GIVEN[i % len(GIVEN)], FAMILY[i // len(GIVEN) % len(FAMILY)]
    phones = () if i % 17 == 0 else ((_phone(i), 1),)  # some patients gave no mobile number
    email = f"{_ascii(given)}.{_ascii(family)}{i}@example.org"
    emails = () if i % 13 == 0 else ((email, None if i % 2 else 2),)
    return SourcePatient(f"pat-{i}", given, family, LANGUAGES[i % 4], (*ZONES, None)[i % 7],
                         PREFERENCES[i % 4], phones, emails)  # fmt: skip


def _phone(i: int) -> str:
    """Unique for i < 11,000: every eleventh a UK number; a fifth of US numbers written nationally."""
    group, position = divmod(i % 11_000, 11)
    if position == 10:
        return f"+44 20 7946 0{group:03d}"
    digits = f"{group * 10 + position:04d}"
    return f"(202) 555-{digits}" if i % 5 == 0 else f"+1202555{digits}"


def _ascii(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum())
