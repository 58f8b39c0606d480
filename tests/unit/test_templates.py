"""Message templates: the facts a patient needs, in their language, SMS in one GSM-7 segment."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patient_notify.domain.gsm7 import SEGMENT_SEPTETS, is_gsm7, septets, to_gsm7
from patient_notify.domain.templates import LANGUAGES, MessageFacts, language_for, render_reminder


def make_facts(**overrides: object) -> MessageFacts:
    values: dict[str, object] = {
        "given_name": "Ada", "starts_at_local": datetime(2026, 11, 27, 10, 30), "venue": "Riverside Clinic",
        "address": "1 River St", "phone": "+1 202 555 0100",
    }  # fmt: skip
    return MessageFacts(**{**values, **overrides})  # type: ignore[arg-type]


class TestSmsSegment:
    @settings(max_examples=300, deadline=None)
    @given(
        language=st.sampled_from([*LANGUAGES, "fr", "es-MX"]),
        name=st.text(max_size=60),
        venue=st.text(min_size=1, max_size=120),
    )
    def test_any_name_and_venue_fit_one_gsm7_segment(self, language: str, name: str, venue: str) -> None:
        """Whatever the name and venue, a reminder SMS is GSM-7 and at most 160 septets."""
        body = render_reminder("sms", language, make_facts(given_name=name, venue=venue)).body
        assert is_gsm7(body) and septets(body) <= SEGMENT_SEPTETS

    @pytest.mark.parametrize("language", LANGUAGES)
    def test_date_time_and_phone_are_never_cut(self, language: str) -> None:
        """Shortening eats the venue and name, never the time, date or number to call."""
        body = render_reminder("sms", language, make_facts(given_name="Maximiliana" * 5, venue="Clinic " * 30)).body
        assert "10:30" in body and "27" in body and "+1 202 555 0100" in body

    def test_accents_gsm7_lacks_are_stripped_not_turned_into_ucs2(self) -> None:
        """'Ángela' and 'Cádiz' become GSM-7 ('Angela', 'Cadiz'); 'ñ' and 'é' exist in GSM-7 and stay."""
        assert to_gsm7("Ángela Núñez, Cádiz, José") == "Angela Nuñez, Cadiz, José"


class TestLanguage:
    @pytest.mark.parametrize(("preferred", "expected"), [
        ("es", "es"),
        ("es-MX", "es"),  # region variants use the base language
        ("EN_gb", "en"),
        ("fr", "en"),  # no French templates yet: English
        (None, "en"),
    ])  # fmt: skip
    def test_patient_language_with_fallback(self, preferred: str | None, expected: str) -> None:
        """The patient's language when we have templates for it, else English."""
        assert language_for(preferred) == expected

    def test_spanish_reminder_is_in_spanish(self) -> None:
        """A Spanish speaker's reminder uses Spanish words and date names."""
        rendered = render_reminder("sms", "es", make_facts())
        assert rendered.body.startswith("Hola Ada") and "vie 27 nov" in rendered.body


class TestEmail:
    def test_email_has_all_facts_and_no_clinical_detail(self) -> None:
        """The email names the date, time, venue, address and phone, and nothing else about the visit."""
        rendered = render_reminder("email", "en", make_facts())
        assert rendered.subject == "Appointment reminder: Fri 27 Nov at 10:30"
        for fact in ("Ada", "Fri 27 Nov", "10:30", "Riverside Clinic", "1 River St", "+1 202 555 0100"):
            assert fact in rendered.body
