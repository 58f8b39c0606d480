"""Which channels a notification goes out on: the patient's preference × usable contact points."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from patient_notify.domain.models import Channel, ChannelPreference, ContactPoint

__all__ = ["ChannelChoice", "Target", "choose_channels"]

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
    """The best-ranked usable contact per wanted channel; never a channel the patient did not choose."""
    usable = sorted((c for c in contacts if c.usable()), key=lambda c: (c.rank, c.value))
    targets, unreachable = [], []
    for channel in _WANTED[preference]:
        best = next((c for c in usable if c.channel == channel), None)
        if best is None:
            unreachable.append(channel)
        else:
            targets.append(Target(channel, best.value))
    return ChannelChoice(tuple(targets), tuple(unreachable))
