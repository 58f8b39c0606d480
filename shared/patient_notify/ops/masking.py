"""Recipients shown so an operator can recognise them, never read them back in full.

A phone number keeps its ``+``, at most its first four digits and its last two, and always hides
at least half of its digits; an email address keeps its first character and its domain. The
digest is for matching one number across outputs and tickets: a phone number's hash can be
brute-forced, so it identifies, it does not protect.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["MASK", "digest", "mask_email", "mask_phone", "mask_recipient", "normalise_number"]

MASK = "•"
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SEPARATORS = re.compile(r"[\s().-]")
_TAIL = 2


def normalise_number(text: str) -> str | None:
    """E.164 from how people write numbers (``+1 (202) 555-0112``), or None."""
    number = _SEPARATORS.sub("", text)
    return number if _E164.match(number) else None


def mask_phone(number: str) -> str:
    digits = number.removeprefix("+")
    hidden = max(-(-len(digits) // 2), len(digits) - 4 - _TAIL)
    head = len(digits) - hidden - _TAIL
    return f"+{digits[:head]}{MASK * hidden}{digits[-_TAIL:]}"


def mask_email(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}{MASK * 3}@{domain}"  # a fixed mask: the local part's length is not shown


def mask_recipient(value: str) -> str:
    if "@" in value:
        return mask_email(value)
    if number := normalise_number(value):
        return mask_phone(number)
    return MASK * 3  # a shape we do not know: show nothing of it


def digest(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:12]
