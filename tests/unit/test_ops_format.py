"""The ops CLI's pure parts: masking and hashing, tables, the delivery rate, redrive decisions."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from patient_notify.events import PING, AppointmentChanged, ReminderDue, SmsSendRequested
from patient_notify.ops.alerts import state
from patient_notify.ops.arguments import parse_since
from patient_notify.ops.delivery_rate import DayChannel, format_json, format_table, total
from patient_notify.ops.errors import BadArgument
from patient_notify.ops.history import format_history
from patient_notify.ops.masking import MASK, digest, mask_email, mask_phone, mask_recipient, normalise_number
from patient_notify.ops.opt_out import describe
from patient_notify.ops.redrive_plan import (
    DeadLetter,
    FailedCandidate,
    Redrive,
    Refusal,
    plan_dead_letter,
    plan_redrive,
    redrive_key,
)
from patient_notify.ops.table import render_table, when

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


class TestMaskPhone:
    @pytest.mark.parametrize(("number", "masked"), [
        ("+12025550112", "+120••••••12"),  # NANP, 11 digits: 3 shown in front
        ("+447700900123", "+4477••••••23"),  # UK mobile, 12 digits: 4 in front, never more
        ("+861381234567890", "+8613•••••••••90"),  # 15 digits, the E.164 maximum
        ("+1234567", "+1••••67"),  # 7 digits, the minimum: still half hidden
    ])  # fmt: skip
    def test_keeps_the_country_end_and_the_last_two_digits(self, number: str, masked: str) -> None:
        """The leading digits and the last two show; the middle is one bullet per digit."""
        assert mask_phone(number) == masked

    @pytest.mark.parametrize("length", range(7, 16))
    def test_at_least_half_the_digits_are_hidden(self, length: int) -> None:
        """Whatever the length, at most six digits show and at least half are hidden."""
        number = "+1" + "2" * (length - 1)
        shown = sum(ch.isdigit() for ch in mask_phone(number))
        assert shown <= 6 and mask_phone(number).count(MASK) >= length / 2


class TestMaskEmail:
    @pytest.mark.parametrize(("address", "masked"), [
        ("zoe@example.org", "z•••@example.org"),  # the brief's example
        ("zoe.hart+clinic@example.org", "z•••@example.org"),  # a longer local part looks the same
        ("a@b.co", "a•••@b.co"),  # one character: nothing more to hide, the mask still shows
    ])  # fmt: skip
    def test_keeps_the_first_character_and_the_domain(self, address: str, masked: str) -> None:
        """The local part's length is not revealed."""
        assert mask_email(address) == masked


class TestMaskRecipient:
    @pytest.mark.parametrize(("value", "masked"), [
        ("+12025550112", "+120••••••12"),  # a phone number
        ("zoe@example.org", "z•••@example.org"),  # an email address
        ("not a contact", "•••"),  # an unknown shape shows nothing
        ("2025550112", "•••"),  # a national number is not E.164: nothing of it shows
    ])  # fmt: skip
    def test_masks_by_shape(self, value: str, masked: str) -> None:
        """Phone numbers and addresses by their rules; anything else entirely."""
        assert mask_recipient(value) == masked


class TestNumbers:
    @pytest.mark.parametrize(("text", "number"), [
        ("+12025550112", "+12025550112"),  # already E.164
        ("+1 (202) 555-0112", "+12025550112"),  # as people write it
        ("+44 7700.900.123", "+447700900123"),  # dots and spaces
        ("202-555-0112", None),  # no country code
        ("+0123456789", None),  # no country code starts with 0
        ("+1202555011299999", None),  # longer than 15 digits
    ])  # fmt: skip
    def test_normalise_number(self, text: str, number: str | None) -> None:
        """Separators go; what is not E.164 afterwards is refused."""
        assert normalise_number(text) == number

    def test_digest_is_a_stable_prefix(self) -> None:
        """The same number gives the same short sha256 prefix, another number another."""
        assert digest("+12025550112") == "sha256:" + "f5ef84481624"
        assert digest("+12025550113") != digest("+12025550112")


class TestRenderTable:
    def test_columns_line_up_numbers_right_text_left(self) -> None:
        """Each column is as wide as its widest cell; integer columns are right-aligned."""
        table = render_table(["name", "count"], [["alpha", 5], ["b", 120]])
        assert table == "name   count\nalpha      5\nb        120\n"

    def test_none_is_a_dash_and_right_columns_are_honoured(self) -> None:
        """A missing value shows as a dash; a column named in ``right`` is right-aligned even as text."""
        table = render_table(["day", "rate"], [["mon", "50.00%"], ["tue", None]], right=["rate"])
        assert table.splitlines()[1:] == ["mon  50.00%", "tue       —"]

    def test_a_column_of_dashes_stays_left_aligned(self) -> None:
        """A text column with no values is not mistaken for a number column."""
        assert render_table(["status", "detail"], [["queued", None]]).splitlines()[1] == "queued  —"

    def test_an_empty_table_is_its_header(self) -> None:
        """No rows: the header line only."""
        assert render_table(["a", "b"], []) == "a  b\n"

    def test_times_are_utc_to_the_second(self) -> None:
        """Any zone is shown in UTC with a Z; no time is a dash."""
        moment = datetime(2026, 11, 25, 6, 0, 1, 999, tzinfo=timezone(timedelta(hours=1)))
        assert (when(moment), when(None)) == ("2026-11-25 05:00:01Z", "—")


def _day(channel: str = "sms", /, **counts: int) -> DayChannel:
    return DayChannel(date(2026, 11, 25), channel, **counts)


class TestDeliveryRate:
    @pytest.mark.parametrize(("counts", "rate"), [
        ({"delivered": 3, "undelivered": 1}, 0.75),  # undelivered counts against
        ({"delivered": 1, "failed": 1, "awaiting_receipt": 5, "skipped": 9}, 0.5),  # awaiting and skipped do not
        ({"awaiting_receipt": 2, "unknown": 1}, None),  # nothing settled: no rate, not 0%
    ])  # fmt: skip
    def test_rate_is_delivered_over_settled(self, counts: dict[str, int], rate: float | None) -> None:
        """delivered / (delivered + undelivered + failed)."""
        assert _day(**counts).rate == rate

    def test_total_sums_every_count(self) -> None:
        """The total is the sum of the rows, its rate recomputed from the sums."""
        summed = total([_day(delivered=3, failed=1), _day("email", delivered=1, skipped=2)], "all")
        assert (summed.day, summed.delivered, summed.failed, summed.skipped, summed.rate) == (None, 4, 1, 2, 0.8)

    def test_table_shows_rate_as_a_percentage_and_a_total(self) -> None:
        """One line per day and channel, then the total."""
        out = format_table([_day(delivered=2, failed=1)], date(2026, 11, 19), "all")
        assert out.splitlines()[2].split()[:6] == ["2026-11-25", "sms", "2", "0", "1", "66.67%"]
        assert out.splitlines()[3].split()[:2] == ["total", "all"]

    def test_json_carries_the_same_figures(self) -> None:
        """--json: rows and total with their rates, null where nothing settled."""
        report = json.loads(format_json([_day(skipped=1)], date(2026, 11, 19), "sms"))
        assert report["rows"][0] == {"day": "2026-11-25", "channel": "sms", "delivered": 0, "undelivered": 0,
                                     "failed": 0, "awaiting_receipt": 0, "skipped": 1, "unknown": 0,
                                     "in_flight": 0, "rate": None}  # fmt: skip
        assert (report["since"], report["total"]["channel"]) == ("2026-11-19", "sms")


class TestParseSince:
    @pytest.mark.parametrize(("text", "moment"), [
        ("90m", NOW - timedelta(minutes=90)),  # an age in minutes
        ("6h", NOW - timedelta(hours=6)),  # hours
        ("2d", NOW - timedelta(days=2)),  # days
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),  # a date is midnight UTC
        ("2026-11-20T08:00:00+01:00", datetime(2026, 11, 20, 7, tzinfo=UTC)),  # an offset is honoured
    ])  # fmt: skip
    def test_an_age_or_an_iso_instant(self, text: str, moment: datetime) -> None:
        """Ages count back from now; dates and times without a zone are UTC."""
        assert parse_since(text, NOW) == moment

    def test_anything_else_is_a_bad_argument(self) -> None:
        """An unreadable --since names the option."""
        with pytest.raises(BadArgument, match="--since"):
            parse_since("yesterday", NOW)


def _failed(**overrides: Any) -> FailedCandidate:
    values: dict[str, Any] = {
        "id": 41, "natural_key": "reminder:apt-1:sms:2026-12-03", "status": "failed", "kind": "reminder",
        "channel": "sms", "recipient": "+12025550112", "appointment_id": "apt-1", "appointment_version": 1,
        "current_version": 1, "appointment_status": "booked", "starts_at": NOW + timedelta(days=3),
        "missing_from_source": False, "redriven_as": None, "fallback_id": None, "fallback_status": None,
        "usable_contact": "+12025550112",
    }  # fmt: skip
    return FailedCandidate(**{**values, **overrides})


class TestPlanRedrive:
    def test_a_failed_notification_is_retried_under_a_new_key(self) -> None:
        """The retry keeps the text and goes to the usable contact point, keyed ':redrive:1'."""
        plan = plan_redrive(_failed(usable_contact="+12025550199"), NOW)
        assert plan == Redrive(41, "reminder:apt-1:sms:2026-12-03:redrive:1", "+12025550199")

    @pytest.mark.parametrize(("overrides", "reason"), [
        ({"status": "sent"}, "status is sent: only failed notifications are redriven"),  # not failed
        ({"redriven_as": 57}, "already redriven as #57"),  # once per notification
        ({"fallback_id": 42, "fallback_status": "sent"}, "its fallback #42 (sent) tells the patient on another channel"),  # told another way
        ({"missing_from_source": True}, "the appointment is no longer listed by the source"),  # gone from the source
        ({"starts_at": NOW}, "the appointment has passed"),  # too late
        ({"current_version": 2}, "the appointment changed (v1 → v2): the notice for v2 tells the patient"),  # stale text
        ({"appointment_status": "cancelled"}, "the appointment is cancelled"),  # a reminder for nothing
        ({"usable_contact": None}, "no usable sms contact point now (none, opted out or suppressed)"),  # nowhere to send
    ])  # fmt: skip
    def test_a_retry_that_would_be_wrong_is_refused(self, overrides: dict[str, Any], reason: str) -> None:
        """Each refusal says why."""
        assert plan_redrive(_failed(**overrides), NOW) == Refusal(41, reason)

    @pytest.mark.parametrize("status", ["failed", "undelivered", "skipped"])
    def test_a_fallback_that_did_not_get_through_does_not_block_a_retry(self, status: str) -> None:
        """The patient was not told on the other channel either."""
        assert isinstance(plan_redrive(_failed(fallback_id=42, fallback_status=status), NOW), Redrive)

    def test_a_cancellation_notice_for_a_cancelled_appointment_is_retried(self) -> None:
        """Only reminders need a booked appointment."""
        assert isinstance(plan_redrive(_failed(kind="cancellation", appointment_status="cancelled"), NOW), Redrive)

    @pytest.mark.parametrize(("key", "retry"), [
        ("reminder:apt-1:sms:2026-12-03", "reminder:apt-1:sms:2026-12-03:redrive:1"),  # the first retry
        ("reminder:apt-1:sms:2026-12-03:redrive:1", "reminder:apt-1:sms:2026-12-03:redrive:2"),  # a retry of a retry
        ("change:apt-1:v2:email:redrive:9", "change:apt-1:v2:email:redrive:10"),  # numbers, not digits
    ])  # fmt: skip
    def test_redrive_key_counts_the_retries(self, key: str, retry: str) -> None:
        """The suffix is ':redrive:<n>', n one more than the key retried."""
        assert redrive_key(key) == retry


def _letter(event_type: str, has_data: bool, redriven_at: datetime | None) -> DeadLetter:
    return DeadLetter(1, "/patient-notify/dispatcher", "ev-1", event_type, has_data, NOW, redriven_at)


class TestPlanDeadLetter:
    @pytest.mark.parametrize(("letter", "reason"), [
        (_letter(SmsSendRequested.TYPE, True, None), None),  # a send event: re-staged
        (_letter(ReminderDue.TYPE, True, None), None),  # a reminder: the dispatcher deduplicates it
        (_letter(SmsSendRequested.TYPE, True, NOW), "already redriven"),  # once, until it dies again
        (_letter(PING, True, None), "a tick: the next tick does its work"),  # ticks catch up by themselves
        (_letter(AppointmentChanged.TYPE, True, None),
         "signed by the appointment system and the signature was not kept: ask it to resend"),  # would be rejected
        (_letter(SmsSendRequested.TYPE, False, None), "its data was not JSON and was not kept"),  # nothing to send
    ])  # fmt: skip
    def test_what_may_be_sent_again(self, letter: DeadLetter, reason: str | None) -> None:
        """None means re-stage it; otherwise the refusal says why."""
        assert plan_dead_letter(letter) == (None if reason is None else Refusal(1, reason))


def _notification(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": 41, "natural_key": "k", "appointment_id": "apt-1", "appointment_version": 1, "kind": "reminder",
        "channel": "email", "recipient": "zoe.hart@example.org", "status": "failed", "provider": "ses",
        "provider_message_id": "m-1", "attempts": 1, "created_at": NOW, "sent_at": None, "receipt_at": None,
        "fallback_of": None, "redrive_of": 40, "fallbacks": [42], "redriven_as": None,
    }  # fmt: skip
    return {**values, **overrides}


class TestFormatHistory:
    def test_recipient_masked_and_details_scrubbed(self) -> None:
        """Neither the address nor a number quoted in a detail or a reject reason is printed."""
        history = [{"notification_id": 41, "status": "failed", "detail": "bounce for zoe.hart@example.org", "at": NOW}]
        receipts = [{"provider_message_id": "m-1", "provider": "ses", "kind": "ses-event", "status": "Bounce",
                     "verified": False, "reject_reason": "signature from +12025550112", "received_at": NOW}]  # fmt: skip
        out = format_history([_notification()], history, receipts)
        assert "zoe.hart" not in out and "2025550112" not in out
        assert "z•••@example.org" in out and "bounce for [email]" in out and "no: signature from [phone]" in out

    def test_links_both_ways(self) -> None:
        """Redrive-of and fallbacks are listed; a notification with none says so."""
        assert "links         fallback #42 · redrive of #40" in format_history([_notification()], [], [])
        alone = _notification(redrive_of=None, fallbacks=None)
        assert "links         none" in format_history([alone], [], [])


STOPPED = {"number": "+12025550112", "source": "keyword:STOP", "since": NOW}
BY_HAND = {**STOPPED, "source": "manual:ops"}


class TestDescribeOptOut:
    @pytest.mark.parametrize(("action", "before", "after", "what"), [
        ("lookup", None, None, "not opted out"),  # a plain lookup
        ("lookup", STOPPED, STOPPED, "opted out since 2026-11-25 10:00:00Z (source keyword:STOP)"),  # replied STOP
        ("add", None, BY_HAND, "opted out now (source manual:ops)"),  # added by hand
        ("add", STOPPED, STOPPED, "already opted out since 2026-11-25 10:00:00Z (source keyword:STOP)"),  # kept as it was
        ("remove", STOPPED, None, "opted back in (was opted out since 2026-11-25 10:00:00Z, source keyword:STOP)"),  # removed
        ("remove", None, None, "not opted out: nothing to remove"),  # idempotent
    ])  # fmt: skip
    def test_says_what_is_and_what_changed(
        self, action: Any, before: dict[str, Any] | None, after: dict[str, Any] | None, what: str
    ) -> None:
        """One line, the number masked and hashed first."""
        assert describe("+12025550112", action, before, after) == f"+120••••••12 (sha256:f5ef84481624): {what}\n"


class TestAlertState:
    @pytest.mark.parametrize(("acknowledged", "resolved", "expected"), [
        (None, None, "open"),  # nobody has looked yet
        (NOW, None, "acknowledged"),  # someone is on it
        (NOW, NOW, "resolved"),  # the condition cleared
    ])  # fmt: skip
    def test_state(self, acknowledged: datetime | None, resolved: datetime | None, expected: str) -> None:
        """Resolved wins over acknowledged."""
        assert state({"acknowledged_at": acknowledged, "resolved_at": resolved}) == expected
