"""Change and cancellation notices: the new details beside the old, in the patient's language."""

# ruff: noqa: E501 - one template per line reads as the message it sends

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from patient_notify.domain.models import Channel
from patient_notify.domain.templates import Rendered, fit_one_segment, language_for, when_fields

__all__ = ["NoticeFacts", "render_notice"]

# Every template text is GSM-7 (no 'á', 'é' is fine): only the fields are converted.
_SMS = {
    ("en", "rescheduled"): "Hi{name}, your appointment on {old_date} at {old_time} has moved to {date} at {time}, {venue}. Questions? Call {phone}.",
    ("en", "relocated"): "Hi{name}, your appointment on {date} at {time} is now at {venue}, not {old_venue}. Questions? Call {phone}.",
    ("en", "cancelled"): "Hi{name}, your appointment on {date} at {time} at {venue} is cancelled. To rebook call {phone}.",
    ("en", "rebooked"): "Hi{name}, your appointment is booked again: {date} at {time}, {venue}. Questions? Call {phone}.",
    ("es", "rescheduled"): "Hola{name}, su cita del {old_date} a las {old_time} pasa al {date} a las {time}, {venue}. Dudas: llame al {phone}.",
    ("es", "relocated"): "Hola{name}, su cita del {date} a las {time} cambia de lugar: {venue}, no {old_venue}. Dudas: llame al {phone}.",
    ("es", "cancelled"): "Hola{name}, su cita del {date} a las {time} en {venue} ha sido anulada. Para pedir otra llame al {phone}.",
    ("es", "rebooked"): "Hola{name}, su cita vuelve a estar confirmada: {date} a las {time}, {venue}. Dudas: llame al {phone}.",
}  # fmt: skip
_SUBJECT = {
    ("en", "rescheduled"): "Your appointment has moved to {date} at {time}",
    ("en", "relocated"): "Your appointment on {date} at {time} has a new venue",
    ("en", "cancelled"): "Your appointment on {date} at {time} is cancelled",
    ("en", "rebooked"): "Your appointment on {date} at {time} is booked again",
    ("es", "rescheduled"): "Su cita pasa al {date} a las {time}",
    ("es", "relocated"): "Su cita del {date} a las {time} cambia de lugar",
    ("es", "cancelled"): "Su cita del {date} a las {time} ha sido anulada",
    ("es", "rebooked"): "Su cita del {date} a las {time} vuelve a estar confirmada",
}  # fmt: skip
_EMAIL = {
    "en": "Hello{name},\n\n{subject}.\n\nNow: {date} at {time}, {venue}{address}.\nBefore: {old_date} at {old_time}, "
    "{old_venue}.\n\nIf you have questions, please call {phone}.\n",
    "es": "Hola{name}:\n\n{subject}.\n\nAhora: {date} a las {time}, {venue}{address}.\nAntes: {old_date} a las "
    "{old_time}, {old_venue}.\n\nSi tiene preguntas, llame al {phone}.\n",
}


@dataclass(frozen=True)
class NoticeFacts:
    given_name: str
    starts_at_local: datetime  # now, in the clinic's zone
    venue: str
    address: str
    phone: str
    previous_starts_at_local: datetime
    previous_venue: str


def render_notice(reason: str, channel: Channel, language: str, facts: NoticeFacts) -> Rendered:
    """``reason`` is rescheduled, relocated, cancelled or rebooked."""
    lang = language_for(language)
    fields = {
        **when_fields(facts.starts_at_local, lang), **when_fields(facts.previous_starts_at_local, lang, "old_"),
        "phone": facts.phone,
    }  # fmt: skip
    subject = _SUBJECT[(lang, reason)].format(**fields)
    if channel == "email":
        name = f" {facts.given_name}" if facts.given_name else ""
        address = f", {facts.address}" if facts.address else ""
        body = _EMAIL[lang].format(name=name, subject=subject, venue=facts.venue, old_venue=facts.previous_venue,
                                   address=address, **fields)  # fmt: skip
        return Rendered(subject, body)
    venues = {"venue": facts.venue, "old_venue": facts.previous_venue}
    template = _SMS[(lang, reason)]
    used = {key: value for key, value in venues.items() if "{" + key + "}" in template}
    return Rendered(subject, fit_one_segment(template, fields, facts.given_name, used))
