"""Scrubbing phone numbers and email addresses out of free text (logs, alert details, errors)."""

from __future__ import annotations

import re

__all__ = ["scrub"]

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
# Runs of digits with the separators people write numbers with; judged by their digit count.
_DIGIT_RUN = re.compile(r"\+?\(?\d[\d ().-]{5,}\d")


def scrub(text: str) -> str:
    return _DIGIT_RUN.sub(_phone_or_keep, _EMAIL.sub("[email]", text))


def _phone_or_keep(match: re.Match[str]) -> str:
    """International (+, 7+ digits) or 9+ digits is a phone number; a date (8 digits) is kept."""
    run = match.group()
    digits = sum(ch.isdigit() for ch in run)
    return "[phone]" if digits >= 9 or (run.startswith("+") and digits >= 7) else run
