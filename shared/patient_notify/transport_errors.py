"""Whether a failed provider call can have reached the provider: the chain of wrapped errors.

HTTP clients wrap what went wrong several times over (requests → urllib3 → socket or ssl;
botocore → urllib3 → socket or ssl), and wrap a TLS failure in the handshake and one while
reading the answer in the same ``SSLError``. Only the first proves nothing was sent: no request
byte is written before the handshake completes. The senders' gateways use these two functions
to tell them apart; when in doubt the call counts as maybe sent (unknown), never as not sent.
"""

from __future__ import annotations

import ssl
import traceback

__all__ = ["causes", "failed_in_tls_handshake"]


def causes(exc: BaseException) -> list[BaseException]:
    """``exc`` then what it wraps, down to the root error."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and all(link is not seen for seen in chain):
        chain.append(link)
        kwargs = getattr(link, "kwargs", None)
        wrapped = kwargs.get("error") if isinstance(kwargs, dict) else None  # where botocore keeps urllib3's
        carried = (wrapped, link.__cause__, getattr(link, "reason", None), *link.args, link.__context__)
        link = next((c for c in carried if isinstance(c, BaseException)), None)
    return chain


def failed_in_tls_handshake(root: BaseException) -> bool:
    """A certificate refused, or a socket or TLS error raised from inside ``ssl``'s handshake."""
    if isinstance(root, ssl.SSLCertVerificationError):  # also urllib3's hostname check, right after it
        return True
    frames = traceback.walk_tb(root.__traceback__) if isinstance(root, OSError) else ()
    return any(f.f_code.co_name == "do_handshake" and f.f_globals.get("__name__") == "ssl" for f, _ in frames)
