"""An AWS call's failure (SES, SNS through botocore) as ours, translated once for both senders.

botocore makes exactly one attempt per call (the broker owns retries), so what failed is that
attempt alone:

    ProviderRetryable       throttled, or refused for our credentials, permissions, account or
                            configuration (the provider's ``retryable_codes``; HTTP 401, 403, 429,
                            503); or the request never left: refused, DNS, connect timeout, a
                            failed TLS handshake, no credentials found
    ProviderPermanent       any other 4xx (about this message), a request botocore refuses to build
    ProviderOutcomeUnknown  any other 5xx, whatever its code (it can come after the message was
                            accepted); anything that broke once the request may have been sent:
                            read timeout, dropped connection, a TLS error past the handshake

Only the senders import this module: both depend on boto3, which brings botocore; the shared
library does not, and no other function imports it.
"""

from __future__ import annotations

from collections.abc import Collection

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    SSLError,
)
from botocore.exceptions import ConnectionError as NeverConnected

from patient_notify.errors import ProviderError, ProviderOutcomeUnknown, ProviderPermanent, ProviderRetryable
from patient_notify.transport_errors import causes, failed_in_tls_handshake

__all__ = ["translate"]

RETRYABLE_STATUSES = frozenset({401, 403, 429, 503})  # credentials or permissions; throttled; down
_BEFORE_SENDING = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)


def translate(exc: ClientError | BotoCoreError, provider: str, retryable_codes: Collection[str]) -> ProviderError:
    name = type(exc).__name__
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code") or "Unknown"
        return _refusal(provider, code, exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0),
                        retryable_codes)  # fmt: skip
    if _never_sent(exc):
        return ProviderRetryable(provider, "connect", name)
    if isinstance(exc, ParamValidationError):
        return ProviderPermanent(provider, "invalid-request", name)
    if isinstance(exc, _BEFORE_SENDING):
        return ProviderRetryable(provider, "client", name)
    return ProviderOutcomeUnknown(provider, "no-response", name)  # ReadTimeoutError, ConnectionClosedError, …


def _refusal(provider: str, code: str, status: int, retryable_codes: Collection[str]) -> ProviderError:
    detail = f"HTTP {status}"  # not AWS's message: it can echo the number or the addresses
    if status >= 500 and status != 503:  # may follow the message's acceptance, whatever the code says
        return ProviderOutcomeUnknown(provider, code, detail)
    if code in retryable_codes or status in RETRYABLE_STATUSES:
        return ProviderRetryable(provider, code, detail)
    return ProviderPermanent(provider, code, detail)


def _never_sent(exc: BotoCoreError) -> bool:
    """True when the request provably never left: no connection, or a TLS handshake that failed.

    botocore's ``SSLError`` is a ``ConnectionError``, but urllib3 raises it for a TLS failure while
    reading the answer too; no request byte is written before the handshake completes.
    """
    if isinstance(exc, NeverConnected) and not isinstance(exc, SSLError):  # refused, DNS, connect timeout
        return True
    return failed_in_tls_handshake(causes(exc)[-1])
