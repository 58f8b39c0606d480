"""``HttpxSnsEndpoint``: the ``SnsEndpoint`` port over httpx, with certificates cached in memory.

    certificate          2xx: the PEM (at most 16 KiB; cached) · 3xx, 4xx, larger: SnsRejected (unverifiable)
    confirm_subscription 2xx: done · 3xx, 4xx: ProviderPermanent (an expired or used token)
    either               5xx or no answer: ProviderRetryable (the request answers 503; SNS retries)

Redirects are not followed: a certificate is fetched from the SNS host the message named, or not at all.
``sns.verify`` hands over the validated URL (no query or fragment), so it is the cache key as is.
The cache keeps the least recently used out, so a run of other URLs cannot evict the one SNS signs
with. A refusal is not cached: SNS publishes a certificate before signing with it, and a forger
can name a fresh URL each time anyway.
"""

from __future__ import annotations

from collections import OrderedDict

import httpx

from patient_notify.errors import ProviderPermanent, ProviderRetryable

from .sns import SnsRejected

__all__ = ["MAX_CERTIFICATE_BYTES", "HttpxSnsEndpoint"]

PROVIDER = "sns"
MAX_CERTIFICATE_BYTES = 16 * 1024  # an SNS certificate is about 2 KiB
_CACHE_SIZE = 8  # SNS signs with one certificate per region at a time; rotations are rare


class HttpxSnsEndpoint:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self._certificates: OrderedDict[str, bytes] = OrderedDict()

    async def certificate(self, url: str) -> bytes:
        if url in self._certificates:
            self._certificates.move_to_end(url)
            return self._certificates[url]
        pem = await self._fetch_certificate(url)
        self._certificates[url] = pem
        if len(self._certificates) > _CACHE_SIZE:
            self._certificates.popitem(last=False)
        return pem

    async def confirm_subscription(self, url: str) -> None:
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as exc:
            raise ProviderRetryable(PROVIDER, "confirm", type(exc).__name__) from exc
        _raise_for_server_error(response, "confirm")
        if not response.is_success:
            raise ProviderPermanent(PROVIDER, "confirm", f"HTTP {response.status_code}")

    async def _fetch_certificate(self, url: str) -> bytes:
        """The body, read no further than the cap: the client's timeout bounds each read."""
        try:
            async with self._http.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response:
                _raise_for_server_error(response, "certificate")
                if not response.is_success:
                    raise SnsRejected(f"certificate unavailable (HTTP {response.status_code})")
                return await _read_at_most(response, MAX_CERTIFICATE_BYTES)
        except httpx.HTTPError as exc:
            raise ProviderRetryable(PROVIDER, "certificate", type(exc).__name__) from exc


async def _read_at_most(response: httpx.Response, limit: int) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise SnsRejected(f"certificate larger than {limit // 1024} KiB")
    return bytes(body)


def _raise_for_server_error(response: httpx.Response, what: str) -> None:
    if response.is_server_error:
        raise ProviderRetryable(PROVIDER, what, f"HTTP {response.status_code}")
