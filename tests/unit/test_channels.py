"""Channel choice: the patient's preference × usable contact points."""

from __future__ import annotations

import pytest

from patient_notify.domain.channels import Target, choose_channels, email_fallback_contacts, usable_contacts
from patient_notify.domain.models import ChannelPreference, ContactPoint
from patient_notify.domain.sending import fallback_blocker, number_cannot_take_sms
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
        ("sms", [EMAIL], [], ["sms"]),  # no phone: alert, and no email instead (the source's data is wrong)
        ("sms", [OPTED_OUT_PHONE, EMAIL], ["email"], ["sms"]),  # the patient said STOP: email as fallback, alerted
        ("sms", [OPTED_OUT_PHONE], [], ["sms"]),  # opted out and no address: nothing to send, alert
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


class TestUsableContacts:
    def test_blocked_numbers_and_addresses_are_unusable(self) -> None:
        """A number in sms_opt_outs and an address in email_suppressions are never chosen."""
        contacts = usable_contacts("both", [PHONE, EMAIL], {("sms", PHONE.value), ("email", EMAIL.value)},
                                   email_fallback=True)  # fmt: skip
        choice = choose_channels("both", contacts)
        assert (choice.targets, choice.unreachable) == ((), ("sms", "email"))

    def test_a_both_patient_who_opted_out_of_sms_still_gets_email(self) -> None:
        """Opting out of texts leaves the patient's email untouched."""
        contacts = usable_contacts("both", [PHONE, EMAIL], {("sms", PHONE.value)}, email_fallback=True)
        assert choose_channels("both", contacts).targets == (Target("email", EMAIL.value),)

    @pytest.mark.parametrize(("email_fallback", "targets"), [
        (True, [Target("email", EMAIL.value)]),  # the site allows fallback: the opted-out patient is emailed
        (False, []),  # it does not: the SMS-only patient's address is never used
    ])  # fmt: skip
    def test_the_site_decides_whether_sms_only_means_email_as_fallback(
        self, email_fallback: bool, targets: list[Target]
    ) -> None:
        """EMAIL_FALLBACK=false keeps an SMS-only patient off email entirely."""
        contacts = usable_contacts("sms", [PHONE, EMAIL], {("sms", PHONE.value)}, email_fallback=email_fallback)
        assert list(choose_channels("sms", contacts).targets) == targets


class TestEmailFallback:
    @pytest.mark.parametrize(("preference", "email_fallback", "addresses"), [
        ("both", False, [EMAIL.value]),  # chose email too: always allowed
        ("email", False, [EMAIL.value]),
        ("sms", True, [EMAIL.value]),  # SMS only: allowed by the site's consent rule
        ("sms", False, []),  # ...and only then
    ])  # fmt: skip
    def test_consent_to_email(self, preference: ChannelPreference, email_fallback: bool, addresses: list[str]) -> None:
        """Who may receive an email in place of an SMS that failed."""
        allowed = email_fallback_contacts(preference, [PHONE, EMAIL], email_fallback=email_fallback)
        assert [c.value for c in allowed] == addresses

    @pytest.mark.parametrize(("provider", "code", "falls_back"), [
        ("twilio", "21211", True),  # invalid number
        ("twilio", "21614", True),  # not a mobile
        ("twilio", "21610", True),  # opted out at Twilio
        ("sns", "InvalidParameter", True),  # SNS cannot text it
        ("twilio", "20003", False),  # our credentials: email would not fix it
        ("twilio", "21602", False),  # our request (no body)
    ])  # fmt: skip
    def test_refusals_about_the_number_fall_back(self, provider: str, code: str, falls_back: bool) -> None:
        """Only a refusal about the number itself sends the patient an email instead."""
        assert number_cannot_take_sms(provider, code) is falls_back

    @pytest.mark.parametrize(("channel", "status", "skip_reason", "allowed"), [
        ("sms", "failed", None, True),  # refused for good
        ("sms", "undelivered", None, True),  # the carrier could not deliver it
        ("sms", "skipped", "opted out", True),  # never sent: the number opted out
        ("sms", "skipped", "appointment cancelled", False),  # nothing to say any more
        ("sms", "sent", None, False),  # may still arrive
        ("sms", "unknown", None, False),  # may have arrived
        ("email", "failed", None, False),  # email has no fallback
    ])  # fmt: skip
    def test_only_an_sms_that_surely_did_not_arrive_falls_back(
        self, channel: str, status: str, skip_reason: str | None, allowed: bool
    ) -> None:
        """A message that may yet reach the patient is never doubled by an email."""
        assert (fallback_blocker(channel, status, skip_reason) is None) is allowed
