"""Change and cancellation notices: texts, channels, versions and the quiet-hours hold."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patient_notify.domain.dispatch import DispatchContext
from patient_notify.domain.gsm7 import SEGMENT_SEPTETS, is_gsm7, septets
from patient_notify.domain.notice_templates import NoticeFacts, render_notice
from patient_notify.domain.notices import QuietHours, hold_until, plan_change_notice
from tests.builders import make_appointment, make_contact, make_location, make_patient

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # 10:00 in New York
START = NOW + timedelta(days=5)
QUIET = QuietHours(time(21, 0), time(8, 0), timedelta(hours=24))


def make_facts(**overrides: object) -> NoticeFacts:
    values: dict[str, object] = {
        "given_name": "Ada", "starts_at_local": datetime(2026, 11, 30, 11, 15), "venue": "Riverside Clinic",
        "address": "1 River St", "phone": "+1 202 555 0100", "previous_starts_at_local": datetime(2026, 11, 27, 10, 30),
        "previous_venue": "Hilltop Clinic",
    }  # fmt: skip
    return NoticeFacts(**{**values, **overrides})  # type: ignore[arg-type]


def context(**appointment: object) -> DispatchContext:
    contacts = [make_contact(), make_contact(channel="email", value="ada@example.org")]
    return DispatchContext(make_appointment(starts_at=START, **appointment), make_patient(), make_location(), contacts)


class TestNoticeTexts:
    @settings(max_examples=200, deadline=None)
    @given(
        reason=st.sampled_from(["rescheduled", "relocated", "cancelled", "rebooked"]),
        language=st.sampled_from(["en", "es", "pt"]),
        name=st.text(max_size=40),
        venue=st.text(min_size=1, max_size=90),
        old_venue=st.text(min_size=1, max_size=90),
    )
    def test_every_notice_fits_one_gsm7_segment(
        self, reason: str, language: str, name: str, venue: str, old_venue: str
    ) -> None:
        """Whatever the names, a notice SMS is GSM-7 and at most 160 septets."""
        body = render_notice(
            reason, "sms", language, make_facts(given_name=name, venue=venue, previous_venue=old_venue)
        ).body
        assert is_gsm7(body) and septets(body) <= SEGMENT_SEPTETS

    @pytest.mark.parametrize(("reason", "expected"), [
        ("rescheduled", ["Fri 27 Nov at 10:30", "Mon 30 Nov at 11:15"]),  # old and new time
        ("relocated", ["Riverside Clinic", "Hilltop Clinic"]),  # new and old venue
        ("cancelled", ["Mon 30 Nov at 11:15", "cancelled"]),
    ])  # fmt: skip
    def test_sms_carries_the_old_and_new_details(self, reason: str, expected: list[str]) -> None:
        """A change notice says what changed from what; a cancellation says what is cancelled."""
        body = render_notice(reason, "sms", "en", make_facts()).body
        assert all(part in body for part in expected), body

    def test_email_has_now_and_before(self) -> None:
        """The email lists the new details and the old ones."""
        rendered = render_notice("rescheduled", "email", "es", make_facts())
        assert "Ahora: lun 30 nov a las 11:15" in rendered.body and "Antes: vie 27 nov a las 10:30" in rendered.body


class TestPlanChangeNotice:
    def test_one_notice_per_channel_keyed_by_version(self) -> None:
        """Both channels get a notice whose natural key names the appointment, version and channel."""
        decision = plan_change_notice(context(version=3), version=3, reason="rescheduled", previous_start=START - timedelta(days=1),
                                      previous_venue="Hilltop", now=NOW, quiet=QuietHours())  # fmt: skip
        assert [n.natural_key for n in decision.notifications] == ["change:appt-1:v3:sms", "change:appt-1:v3:email"]

    def test_a_cancellation_is_its_own_kind(self) -> None:
        """A cancellation notice is kind 'cancellation', so it is never mistaken for a change."""
        decision = plan_change_notice(context(version=2, status="cancelled"), version=2, reason="cancelled",
                                      previous_start=START, previous_venue="x", now=NOW, quiet=QuietHours())  # fmt: skip
        assert {n.kind for n in decision.notifications} == {"cancellation"}

    def test_a_superseded_version_sends_nothing(self) -> None:
        """If a newer version is already stored, the older notice is skipped: its details are stale."""
        decision = plan_change_notice(context(version=4), version=3, reason="rescheduled", previous_start=START,
                                      previous_venue="x", now=NOW, quiet=QuietHours())  # fmt: skip
        assert decision.notifications == () and "superseded" in (decision.skipped or "")

    def test_opted_out_numbers_are_never_used(self) -> None:
        """An opted-out phone is unusable for notices too: the patient gets email only, and an alert is raised."""
        ctx = DispatchContext(make_appointment(starts_at=START), make_patient(), make_location(),
                              [make_contact(opted_out=True), make_contact(channel="email", value="ada@example.org")])  # fmt: skip
        decision = plan_change_notice(ctx, version=1, reason="relocated", previous_start=START, previous_venue="x",
                                      now=NOW, quiet=QuietHours())  # fmt: skip
        assert [n.channel for n in decision.notifications] == ["email"] and decision.alerts


class TestQuietHours:
    @pytest.mark.parametrize(("local_now", "starts_in", "held_until_local"), [
        (time(22, 30), timedelta(days=3), datetime(2026, 11, 25, 8, 0)),  # late evening: next morning
        (time(3, 0), timedelta(days=3), datetime(2026, 11, 24, 8, 0)),  # small hours: this morning
        (time(10, 0), timedelta(days=3), None),  # daytime: at once
        (time(22, 30), timedelta(hours=20), None),  # appointment within 24 h: at once, even at night
    ])  # fmt: skip
    def test_hold_in_the_patients_zone(
        self, local_now: time, starts_in: timedelta, held_until_local: datetime | None
    ) -> None:
        """Notices planned at night wait for 08:00 local, unless the appointment is too close to wait."""
        now = datetime(2026, 11, 24, local_now.hour, local_now.minute, tzinfo=NEW_YORK).astimezone(UTC)
        held = hold_until(now, now + starts_in, NEW_YORK, QUIET)
        expected = held_until_local.replace(tzinfo=NEW_YORK).astimezone(UTC) if held_until_local else None
        assert held == expected

    def test_off_by_default(self) -> None:
        """Without configured quiet hours nothing is ever held."""
        assert hold_until(NOW, NOW + timedelta(days=9), NEW_YORK, QuietHours()) is None
