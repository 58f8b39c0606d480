"""The contacts the demo's providers fail on for good, chosen among the patients reminded during the day.

Three kinds, disjoint, each a share of the contacts the day's messages go to (booked
appointments among the first quarter by start: their reminders fall due in the simulated day):
numbers Twilio refuses at once (21211: ``failed`` at send), drawn from patients who chose SMS and
gave an email too, so each shows the email fallback; numbers Twilio accepts that the carrier
cannot reach (an ``undelivered`` receipt, error 30003), from patients texted; and addresses SES
accepts that bounce for good (a permanent ``Bounce`` event: ``undelivered``, the address
suppressed), from patients emailed. Every one is alerted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import phonenumbers

from sandbox.patient_population import Population

__all__ = ["Faults", "choose_faults"]


@dataclass(frozen=True)
class Faults:
    rejected_numbers: frozenset[str] = frozenset()  # E.164, as the ETL stores them and Twilio sees them
    unreachable_numbers: frozenset[str] = frozenset()
    bouncing_addresses: frozenset[str] = frozenset()  # lower case


def choose_faults(population: Population, seed: int, *, rejected: float, unreachable: float, bounce: float) -> Faults:
    earliest = sorted(population.ids(), key=lambda i: population.appointment(i).start)[: len(population) // 4]
    booked = [population.appointment(i) for i in earliest if population.appointment(i).status == "booked"]
    patients = [population.patients[a.patient_id] for a in booked]
    texted = sorted({_e164(n) for p in patients if p.channel_preference in ("sms", "both") for n, _ in p.phones})
    fallback = sorted({_e164(n) for p in patients if p.channel_preference == "sms" and p.emails for n, _ in p.phones})
    emailed = sorted({a.lower() for p in patients if p.channel_preference in ("email", "both") for a, _ in p.emails})
    rng = random.Random(seed)
    refused = _sample(rng, fallback, _share(texted, rejected))
    return Faults(
        rejected_numbers=refused,
        unreachable_numbers=_sample(rng, [n for n in texted if n not in refused], _share(texted, unreachable)),
        bouncing_addresses=_sample(rng, emailed, _share(emailed, bounce)),
    )  # fmt: skip


def _sample(rng: random.Random, values: list[str], size: int) -> frozenset[str]:
    return frozenset(rng.sample(values, min(size, len(values))))


def _share(values: list[str], share: float) -> int:
    """At least one when the share is not zero, so a short day still shows each fault."""
    return max(1, round(len(values) * share)) if values and share > 0 else 0


def _e164(number: str) -> str:
    return phonenumbers.format_number(phonenumbers.parse(number, "US"), phonenumbers.PhoneNumberFormat.E164)
