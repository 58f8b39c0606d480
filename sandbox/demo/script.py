"""The scripted day: one ETL pass, then a simulated day of PingSource ticks, with changes announced at noon.

Simulated time is tomorrow (UTC) so nothing in it has already happened: the PingSources fire
every instant of their cron schedules from 00:00 to 24:00 into the broker, an hour at a time, and
the demo waits for the system to settle after each hour. The ETL itself works on the wall clock,
as in production. At 12:00 the appointment system moves, relocates and cancels some appointments:
its hospital record changes and it announces each change with a signed CloudEvent. After 24:00
the demo waits until the providers have posted every receipt they owe (``DayLog.receipts_owed``:
some were still owed when it stopped waiting).
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import takewhile

import httpx
from cloudevents.core.bindings.http import to_binary_event
from cloudevents.core.v1.event import CloudEvent

from patient_notify.codec import new_event
from patient_notify.events import AppointmentChanged
from patient_notify.signing import sign_event
from sandbox.demo.system import EVENTS_SECRET, DemoSystem
from sandbox.patient_population import Population, SourceAppointment
from sandbox.pingsources import PingSource, load_pingsources
from sandbox.processes import ROOT

__all__ = ["DayLog", "population_for", "run_day"]

APPOINTMENT_SYSTEM = "/hospital/appointments"
SETTLE_TIMEOUT_S = 300.0
RECEIPTS_TIMEOUT_S = 60.0


@dataclass
class DayLog:
    day: date
    hours_done: int = 0
    ticks: int = 0
    changes: dict[str, int] = field(default_factory=dict)  # reason -> announced
    receipts_owed: bool = False  # still waiting for receipts when RECEIPTS_TIMEOUT_S ran out


def population_for(appointments: int, day: date, seed: int) -> Population:
    """Appointments over the three days from noon (UTC) three days after ``day``: ~a third are reminded on it."""
    start = datetime.combine(day + timedelta(days=3), time(12), UTC)
    return Population.generate(appointments, seed=seed, start=start, horizon_days=3)


def run_day(system: DemoSystem, log: DayLog, changes: int) -> None:
    """Fills ``log`` as the day goes, so a progress display can read it."""
    midnight = datetime.combine(log.day, time(0), UTC)
    due = _instants(midnight - timedelta(seconds=1), midnight + timedelta(days=1))
    with httpx.Client(timeout=30) as client:  # one client: a new one costs ~20 ms of CPU for its TLS context
        for hour in range(24):
            if hour == 12:
                log.changes = _announce_changes(system, client, changes)
            end = midnight + timedelta(hours=hour, minutes=59, seconds=59)
            while due and due[0][0] <= end:
                at, source = due.popleft()
                _post(client, system.broker.ingress_url, source.event(at), f"PingSource {source.name}")
                log.ticks += 1
            _settle(system)
            log.hours_done = hour + 1
    log.receipts_owed = not system.wait_receipts(RECEIPTS_TIMEOUT_S)


def _instants(since: datetime, until: datetime) -> deque[tuple[datetime, PingSource]]:
    """Every instant of every PingSource in ``knative/`` after ``since`` and before ``until``, earliest first
    (as ``PingScheduler.catch_up`` fires them; ties in manifest order)."""
    fired = [(at, s) for s in load_pingsources(ROOT / "knative") for at in takewhile(until.__gt__, s.fire_times(since))]
    return deque(sorted(fired, key=lambda pair: pair[0]))


def _post(client: httpx.Client, url: str, event: CloudEvent, what: str) -> None:
    message = to_binary_event(event)
    response = client.post(url, headers=message.headers, content=message.body)
    if response.status_code != 202:
        raise RuntimeError(f"broker ingress answered {response.status_code} to {what}")


def _settle(system: DemoSystem) -> None:
    if not system.broker.wait_idle(SETTLE_TIMEOUT_S):
        raise TimeoutError(f"the system did not settle within {SETTLE_TIMEOUT_S:.0f} s")


def _announce_changes(system: DemoSystem, client: httpx.Client, count: int) -> dict[str, int]:
    """Change ``count`` booked appointments at the source, a third each way, and announce each change."""
    population, rng = system.population, random.Random(system.options.seed)
    booked = sorted(i for i in population.ids() if population.appointment(i).status == "booked")
    announced: dict[str, int] = {}
    for n, appointment_id in enumerate(rng.sample(booked, min(count, len(booked)))):
        changed, reason = _change(population, population.appointment(appointment_id), n % 3, rng)
        _post(client, system.broker.ingress_url, _announcement(changed, reason), "a change announcement")
        announced[reason] = announced.get(reason, 0) + 1
    return announced


def _change(
    population: Population, old: SourceAppointment, way: int, rng: random.Random
) -> tuple[SourceAppointment, str]:
    if way == 0:
        return population.reschedule(old.id, old.start + timedelta(days=1, minutes=30)), "rescheduled"
    if way == 1:
        others = sorted(set(population.locations) - {old.location_id})
        return population.relocate(old.id, rng.choice(others)), "relocated"
    return population.cancel(old.id), "cancelled"


def _announcement(record: SourceAppointment, reason: str) -> CloudEvent:
    data = AppointmentChanged.model_validate({
        "appointment_id": record.id, "source_version": record.version, "reason": reason,
        "starts_at": record.start, "location_id": record.location_id, "status": record.status,
    })  # fmt: skip
    event = new_event(data, source=APPOINTMENT_SYSTEM, subject=record.id, event_id=str(uuid.uuid4()))
    return sign_event(event, EVENTS_SECRET.encode(), now=datetime.now(UTC))
