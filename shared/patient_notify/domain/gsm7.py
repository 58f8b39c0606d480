"""GSM 03.38: which characters keep an SMS in the 7-bit alphabet, and what a message costs."""

from __future__ import annotations

import unicodedata

__all__ = ["SEGMENT_SEPTETS", "is_gsm7", "septets", "to_gsm7"]

SEGMENT_SEPTETS = 160

_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_EXTENDED = frozenset("^{}\\[~]|€\f")  # each costs an escape septet too


def is_gsm7(text: str) -> bool:
    return all(ch in _BASIC or ch in _EXTENDED for ch in text)


def septets(text: str) -> int:
    """Length in GSM-7 septets; raises if any character would force UCS-2."""
    if not is_gsm7(text):
        raise ValueError("text has characters outside GSM-7")
    return sum(2 if ch in _EXTENDED else 1 for ch in text)


def to_gsm7(text: str) -> str:
    """Keep GSM-7 characters, strip accents GSM-7 lacks (á → a), drop what has no equivalent."""
    out = []
    for ch in text:
        if ch in _BASIC:
            out.append(ch)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if c in _BASIC)
        out.append(base)
    return " ".join("".join(out).split())
