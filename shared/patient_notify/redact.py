"""Scrubbing phone numbers and email addresses out of free text (logs, alert details, errors)."""

from __future__ import annotations

import re

__all__ = ["redact_emails", "scrub"]

# RFC 5322 atext (letters, digits and !#$%&'*+/=?^_`{|}~-) and dots: all of a local part, so
# "john.o'neil@nhs.net" goes whole. Only from the start of such a run: a scan stays linear.
_LOCAL_CHAR = r"[\w.!#$%&'*+/=?^`{|}~-]"
_EMAIL = re.compile(rf"(?<!{_LOCAL_CHAR}){_LOCAL_CHAR}+@[\w-]+(?:\.[\w-]+)+")
_LEADING_SYMBOLS = ".!#$%&'*+/=?^`{|}~-"  # before an address's first letter or digit: the text's quotes, kept
# Runs of digits with the separators people write numbers with; judged by their digit count.
_DIGIT_RUN = re.compile(r"\+?\(?\d[\d ().-]{5,}\d")


def scrub(text: str) -> str:
    return _DIGIT_RUN.sub(_phone_or_keep, redact_emails(text))


def redact_emails(text: str) -> str:
    """Every email address in ``text`` replaced by ``[email]`` (the rest kept)."""
    return _EMAIL.sub(_email, text)


def _email(match: re.Match[str]) -> str:
    """``[email]``, after any opening quote or slash of the text ("'a@b.org'" → "'[email]'")."""
    address = match.group()
    return address[: len(address) - len(address.lstrip(_LEADING_SYMBOLS))] + "[email]"


def _phone_or_keep(match: re.Match[str]) -> str:
    """International (+, 7+ digits) or 9+ digits is a phone number; a date (8 digits) is kept."""
    run = match.group()
    digits = sum(ch.isdigit() for ch in run)
    return "[phone]" if digits >= 9 or (run.startswith("+") and digits >= 7) else run
