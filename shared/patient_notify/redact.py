"""Scrubbing phone numbers and email addresses out of free text (logs, alert details, errors)."""

from __future__ import annotations

import re

__all__ = ["scrub"]

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_PHONE = re.compile(r"\+?\d[\d ().-]{5,}\d")


def scrub(text: str) -> str:
    return _PHONE.sub("[phone]", _EMAIL.sub("[email]", text))
