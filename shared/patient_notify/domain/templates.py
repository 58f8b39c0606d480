"""Message texts per kind, channel and language: the minimum a patient needs, nothing clinical."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from patient_notify.domain.gsm7 import SEGMENT_SEPTETS, septets, to_gsm7
from patient_notify.domain.models import Channel

__all__ = ["LANGUAGES", "MessageFacts", "Rendered", "language_for", "render_reminder"]

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
    when = facts.starts_at_local
    short_date = f"{_DAYS[lang][when.weekday()]} {when.day} {_MONTHS[lang][when.month - 1]}"
    fields = {"date": short_date, "time": when.strftime("%H:%M"), "phone": facts.phone}
    subject = _SUBJECT[lang].format(**fields)
    if channel == "email":
        address = f", {facts.address}" if facts.address else ""
        name = f" {facts.given_name}" if facts.given_name else ""
        return Rendered(subject, _EMAIL[lang].format(name=name, venue=facts.venue, address=address, **fields))
    return Rendered(subject, _fit_sms(_SMS[lang], fields, to_gsm7(facts.given_name), to_gsm7(facts.venue)))


def _fit_sms(template: str, fields: dict[str, str], name: str, venue: str) -> str:
    """One GSM-7 segment: shorten the venue first, then the name, never the date, time or phone."""
    fields = {key: to_gsm7(value) for key, value in fields.items()}

    def render(name_: str, venue_: str) -> str:
        return template.format(name=f" {name_}" if name_ else "", venue=venue_, **fields)

    excess = septets(render(name, venue)) - SEGMENT_SEPTETS
    if excess > 0:
        venue = venue[: max(_MIN_VENUE, len(venue) - excess)].rstrip()
        excess = septets(render(name, venue)) - SEGMENT_SEPTETS
    if excess > 0:
        name = name[: max(0, len(name) - excess)].rstrip()
        excess = septets(render(name, venue)) - SEGMENT_SEPTETS
    if excess > 0:
        venue = venue[: max(0, len(venue) - excess)].rstrip()
    return render(name, venue)
