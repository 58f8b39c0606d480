"""Channel choice: the patient's preference × usable contact points."""

from __future__ import annotations

import pytest

from patient_notify.domain.channels import Target, choose_channels
from patient_notify.domain.models import ChannelPreference, ContactPoint
from tests.builders import make_contact

PHONE = make_contact(channel="sms", value="+12025550123")
EMAIL = make_contact(channel="email", value="ada@example.org")
OPTED_OUT_PHONE = make_contact(channel="sms", value="+12025550124", opted_out=True)
BAD_PHONE = make_contact(channel="sms", value="+1202555")  # too short to dial


class TestChooseChannels:
    @pytest.mark.parametrize(("preference", "contacts", "targets", "unreachable"), [
        ("both", [PHONE, EMAIL], ["sms", "email"], []),  # both chosen, both usable
        ("sms", [PHONE, EMAIL], ["sms"], []),  # never a channel the patient did not choose
        ("email", [PHONE, EMAIL], ["email"], []),
        ("sms", [EMAIL], [], ["sms"]),  # no phone: alert, and no email instead
        ("both", [EMAIL, OPTED_OUT_PHONE], ["email"], ["sms"]),  # opted out is unusable
        ("sms", [BAD_PHONE], [], ["sms"]),  # an invalid number is unusable
        ("both", [], [], ["sms", "email"]),
    ])  # fmt: skip
    def test_preference_times_usable_contacts(
        self, preference: ChannelPreference, contacts: list[ContactPoint], targets: list[str], unreachable: list[str]
    ) -> None:
        """Each chosen channel with a usable contact gets one target; the rest are reported unreachable."""
        choice = choose_channels(preference, contacts)
        assert [t.channel for t in choice.targets] == targets
        assert list(choice.unreachable) == unreachable

    def test_best_ranked_contact_wins(self) -> None:
        """With two phones, the lower rank is used, whatever the order they come in."""
        second = make_contact(value="+12025550199", rank=2)
        first = make_contact(value="+12025550100", rank=1)
        assert choose_channels("sms", [second, first]).targets == (Target("sms", "+12025550100"),)
