"""Which channels a notification goes out on: the patient's preference × usable contact points.

A contact point is unusable when it is malformed, or its owner opted out (a STOP to our number,
Twilio's 21610) or its address is suppressed (a hard bounce, a complaint): ``usable_contacts``
marks those before any choice is made, so no planner ever picks one.

Email fallback, the consent rule: a patient who chose ``both`` or ``email`` consented to email.
A patient who chose ``sms`` is treated as consenting to email *only as a fallback*, when the site
allows it (``EMAIL_FALLBACK``, default on: the message carries the minimum, DESIGN §8, and a
missed appointment costs more than an email the patient did not ask for). Fallback answers a "no"
about a number we have: the patient's own STOP, or a provider refusing the number
(``patient_notify.fallback``). A patient whose only number opted out is planned on email (with
the ``no_usable_contact`` alert, as a warning); a patient who gave no number at all is not — the
source's data is what is wrong, and the alert says so.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from patient_notify.domain.models import Channel, ChannelPreference, ContactPoint

__all__ = ["ChannelChoice", "Target", "choose_channels", "email_fallback_contacts", "usable_contacts"]

_WANTED: dict[ChannelPreference, tuple[Channel, ...]] = {
    "sms": ("sms",),
    "email": ("email",),
    "both": ("sms", "email"),
}


@dataclass(frozen=True)
class Target:
    channel: Channel
    address: str


@dataclass(frozen=True)
class ChannelChoice:
    targets: tuple[Target, ...]
    unreachable: tuple[Channel, ...]  # wanted, but no usable contact point: alert


def choose_channels(preference: ChannelPreference, contacts: Iterable[ContactPoint]) -> ChannelChoice:
    """The best-ranked usable contact per wanted channel; email only as an opted-out number's fallback."""
    contacts = list(contacts)
    targets, unreachable = [], []
    for channel in _WANTED[preference]:
        best = _best(contacts, channel)
        if best is None:
            unreachable.append(channel)
        else:
            targets.append(Target(channel, best.value))
    if preference == "sms" and not targets and any(c.channel == "sms" and c.opted_out for c in contacts):
        email = _best(contacts, "email")  # present only if the site allows the fallback (usable_contacts)
        targets += [Target("email", email.value)] if email else []
    return ChannelChoice(tuple(targets), tuple(unreachable))


def usable_contacts(
    preference: ChannelPreference, contacts: Iterable[ContactPoint], blocked: Collection[tuple[str, str]],
    *, email_fallback: bool,
) -> tuple[ContactPoint, ...]:  # fmt: skip
    """The contacts as planning must see them: ``blocked`` (channel, value) pairs marked opted out;
    an SMS-only patient's addresses left out unless the site allows the email fallback."""
    return tuple(
        c.model_copy(update={"opted_out": True}) if (c.channel, c.value) in blocked else c
        for c in contacts
        if email_fallback or preference != "sms" or c.channel != "email"
    )


def email_fallback_contacts(preference: ChannelPreference, contacts: Iterable[ContactPoint], *,
                            email_fallback: bool) -> tuple[ContactPoint, ...]:  # fmt: skip
    """The usable addresses an email replacing a failed SMS may go to (none without consent)."""
    if preference == "sms" and not email_fallback:
        return ()
    return tuple(c for c in contacts if c.channel == "email" and c.usable())


def _best(contacts: Iterable[ContactPoint], channel: Channel) -> ContactPoint | None:
    usable = sorted((c for c in contacts if c.channel == channel and c.usable()), key=lambda c: (c.rank, c.value))
    return usable[0] if usable else None
