"""What the dispatcher decides for a changed appointment: a notice per channel, now or after quiet hours."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from patient_notify.domain.channels import choose_channels
from patient_notify.domain.dispatch import DispatchContext, DispatchDecision, NotificationIntent, unreachable_alerts
from patient_notify.domain.localtime import instant_at
from patient_notify.domain.notice_templates import NoticeFacts, render_notice
from patient_notify.domain.templates import language_for

__all__ = ["NOTIFIED_REASONS", "QuietHours", "hold_until", "plan_change_notice"]

NOTIFIED_REASONS = frozenset({"rescheduled", "relocated", "cancelled", "rebooked"})


@dataclass(frozen=True)
class QuietHours:
    """Night-time hold for notices, in the patient's zone; off unless both ends are set."""

    start: time | None = None  # e.g. 21:00
    end: time | None = None  # e.g. 08:00
    urgent_within: timedelta = timedelta(hours=24)  # closer than this to the appointment: send anyway


def hold_until(now: datetime, starts_at: datetime, zone: ZoneInfo, quiet: QuietHours) -> datetime | None:
    """When a notice planned ``now`` may go out, or None for at once."""
    if quiet.start is None or quiet.end is None or starts_at - now <= quiet.urgent_within:
        return None
    local = now.astimezone(zone)
    overnight = quiet.start > quiet.end
    inside = (
        (local.time() >= quiet.start or local.time() < quiet.end)
        if overnight
        else (quiet.start <= local.time() < quiet.end)
    )
    if not inside:
        return None
    end_day = local.date() + timedelta(days=1) if overnight and local.time() >= quiet.start else local.date()
    return instant_at(end_day, quiet.end, zone)


def plan_change_notice(
    ctx: DispatchContext, *, version: int, reason: str, previous_start: datetime, previous_venue: str,
    now: datetime, quiet: QuietHours,
) -> DispatchDecision:  # fmt: skip
    """A notice per chosen channel for this version of the appointment, with the old and new details."""
    appt = ctx.appointment
    if reason not in NOTIFIED_REASONS:
        return DispatchDecision(skipped=f"no notice for {reason}")
    if appt.version != version:
        return DispatchDecision(skipped=f"version {version} superseded by {appt.version}")
    choice = choose_channels(ctx.patient.channel_preference, ctx.contacts)
    kind = "cancellation" if reason == "cancelled" else "change"
    alerts = unreachable_alerts(appt.id, choice, f"v{version}", f"{kind} notice")
    clinic = ZoneInfo(ctx.location.timezone)
    facts = NoticeFacts(
        given_name=ctx.patient.given_name, starts_at_local=appt.starts_at.astimezone(clinic),
        venue=ctx.location.name, address=ctx.location.address, phone=ctx.location.phone,
        previous_starts_at_local=previous_start.astimezone(clinic), previous_venue=previous_venue,
    )  # fmt: skip
    language = language_for(ctx.patient.language)
    held = hold_until(now, appt.starts_at, ctx.patient_zone, quiet)
    intents = tuple(
        NotificationIntent(
            f"{kind}:{appt.id}:v{version}:{t.channel}", appt.id, version, kind, t.channel, t.address, language,
            *_text(reason, t.channel, language, facts), hold_until=held,
        )
        for t in choice.targets
    )  # fmt: skip
    return DispatchDecision(intents, alerts)


def _text(reason: str, channel: str, language: str, facts: NoticeFacts) -> tuple[str, str]:
    rendered = render_notice(reason, "sms" if channel == "sms" else "email", language, facts)
    return rendered.subject, rendered.body
