"""The scrubber (patient_notify.redact): whole email addresses out of free text, the text around them kept."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patient_notify.redact import scrub

ATEXT_SYMBOLS = "!#$%&'*+/=?^_`{|}~-"  # RFC 5322 atext besides letters and digits


class TestEmailAddresses:
    # address -> why it is here
    @pytest.mark.parametrize(
        "address",
        [
            "ada@example.org",
            "john.o'neil@nhs.net",  # an apostrophe (Irish, Italian, French names)
            "mary&bob@x.org",  # a shared mailbox
            "ada.lovelace+nhs@example.org",  # sub-addressing
            "a!b#c$d%e*f/g=h?i^j`k{l|m}n~o-p_q@example.org",  # every atext symbol
            "first.middle.last@mail.example.co.uk",
            "zoë.brontë@example.org",  # non-ASCII letters
            "o'connor@example.org",
        ],
    )
    def test_an_address_is_replaced_whole(self, address: str) -> None:
        """Every RFC 5322 atext character in the local part goes with the rest of the address."""
        assert scrub(f"bounced for {address} today") == "bounced for [email] today"

    # text -> scrubbed: the punctuation around an address is the text's, and stays
    @pytest.mark.parametrize(
        ("text", "scrubbed"),
        [
            ("to: a@b.com, cc: c@d.org.", "to: [email], cc: [email]."),
            ("<ada@example.org>", "<[email]>"),
            ('"ada@example.org"', '"[email]"'),
            ("'ada@example.org'", "'[email]'"),  # as a Python repr quotes it
            ("['o'neil@nhs.net']", "['[email]']"),
            ("(ada@example.org)", "([email])"),
            ("mailto:ada@example.org", "mailto:[email]"),
            ("postgresql://postgres@127.0.0.1:5432/db", "postgresql://[email]:5432/db"),
            ("ada@example.org\nbob@example.org", "[email]\n[email]"),
        ],
    )
    def test_the_text_around_an_address_is_kept(self, text: str, scrubbed: str) -> None:
        """Spaces, commas, colons, brackets and opening quotes around an address are left in place."""
        assert scrub(text) == scrubbed

    @pytest.mark.parametrize("text", ["@ada", "ada@", "a @ b.com", "ada@localhost", "ratio 3@4", "[email]"])
    def test_what_is_not_an_address_is_kept(self, text: str) -> None:
        """An @ without a local part and a dotted domain is not an address."""
        assert scrub(text) == text

    @settings(max_examples=200)
    @given(
        local=st.text(st.sampled_from("abcXYZ019." + ATEXT_SYMBOLS), min_size=1, max_size=20).filter(
            lambda s: any(c.isalnum() for c in s)
        ),
        before=st.sampled_from(["", " ", ": ", "<", "(", '"', "'"]),
        after=st.sampled_from(["", " ", ",", ">", ")", '"', "'", "."]),
    )
    def test_no_character_of_the_local_part_survives(self, local: str, before: str, after: str) -> None:
        """Property: whatever atext the local part holds, none of its letters or digits is left behind."""
        scrubbed = scrub(f"{before}{local}@example.org{after}")
        assert scrubbed.startswith(before) and scrubbed.endswith("[email]" + after)
        assert not any(c.isalnum() for c in scrubbed.replace("[email]", ""))

    def test_a_long_run_without_an_address_is_scrubbed_in_linear_time(self) -> None:
        """Half a megabyte of address-like characters with no @ is not an address, and costs no quadratic search."""
        text = "a.b-c" * 100_000
        assert scrub(text) == text
