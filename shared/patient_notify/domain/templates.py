"""Message texts per kind, channel and language: the minimum a patient needs, nothing clinical."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from patient_notify.domain.gsm7 import SEGMENT_SEPTETS, septets, to_gsm7
from patient_notify.domain.models import Channel

__all__ = ["LANGUAGES", "MessageFacts", "Rendered", "fit_one_segment", "language_for", "render_reminder", "when_fields"]

LANGUAGES = ("en", "es")
_DAYS = {
    "en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    "es": ["lun", "mar", "mie", "jue", "vie", "sab", "dom"],  # no accents: GSM-7 has no 'é' in 'mié'
}
_MONTHS = {
    "en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    "es": ["ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic"],
}
_SMS = {
    "en": "Hi{name}, reminder: appointment {date} at {time}, {venue}. To change it call {phone}.",
    "es": "Hola{name}, le recordamos su cita el {date} a las {time}, {venue}. Para cambiarla llame al {phone}.",
}
_SUBJECT = {"en": "Appointment reminder: {date} at {time}", "es": "Recordatorio de cita: {date} a las {time}"}
_EMAIL = {
    "en": "Hello{name},\n\nThis is a reminder of your appointment on {date} at {time} at {venue}"
    "{address}.\n\nIf you need to change or cancel it, please call {phone}.\n",
    "es": "Hola{name}:\n\nLe recordamos su cita el {date} a las {time} en {venue}{address}.\n\n"
    "Si necesita cambiarla o anularla, llame al {phone}.\n",
}
_MIN_VENUE = 12


@dataclass(frozen=True)
class MessageFacts:
    given_name: str
    starts_at_local: datetime  # in the clinic's zone: where the patient must be, when
    venue: str
    address: str
    phone: str


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


def language_for(preferred: str | None) -> str:
    """``es-MX`` → ``es``; anything we have no template for → English."""
    primary = (preferred or "").split("-")[0].split("_")[0].lower()
    return primary if primary in LANGUAGES else "en"


def render_reminder(channel: Channel, language: str, facts: MessageFacts) -> Rendered:
    lang = language_for(language)
    fields = {**when_fields(facts.starts_at_local, lang), "phone": facts.phone}
    subject = _SUBJECT[lang].format(**fields)
    if channel == "email":
        address = f", {facts.address}" if facts.address else ""
        name = f" {facts.given_name}" if facts.given_name else ""
        return Rendered(subject, _EMAIL[lang].format(name=name, venue=facts.venue, address=address, **fields))
    return Rendered(subject, fit_one_segment(_SMS[lang], fields, facts.given_name, {"venue": facts.venue}))


def when_fields(when: datetime, lang: str, prefix: str = "") -> dict[str, str]:
    """``date`` ("Fri 27 Nov") and ``time`` ("10:30") in the language, GSM-7 safe."""
    day = f"{_DAYS[lang][when.weekday()]} {when.day} {_MONTHS[lang][when.month - 1]}"
    return {f"{prefix}date": day, f"{prefix}time": when.strftime("%H:%M")}


def fit_one_segment(template: str, fixed: dict[str, str], name: str, venues: dict[str, str]) -> str:
    """One GSM-7 segment: shorten the venues first, then the name, never the date, time or phone."""
    fixed = {key: to_gsm7(value) for key, value in fixed.items()}
    name, venues = to_gsm7(name), {key: to_gsm7(value) for key, value in venues.items()}

    def render() -> str:
        return template.format(name=f" {name}" if name else "", **venues, **fixed)

    for floor in (_MIN_VENUE, None, 0):  # venues down to a readable stub; then the name; then venues
        for key, value in venues.items():
            excess = septets(render()) - SEGMENT_SEPTETS
            if excess > 0 and floor is not None:
                venues[key] = value[: max(floor, len(value) - excess)].rstrip()
        excess = septets(render()) - SEGMENT_SEPTETS
        if excess > 0 and floor is None:
            name = name[: max(0, len(name) - excess)].rstrip()
    return render()
