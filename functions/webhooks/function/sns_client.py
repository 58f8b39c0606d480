"""``HttpxSnsEndpoint``: the ``SnsEndpoint`` port over httpx, with certificates cached in memory.

    certificate          2xx: the PEM (cached by URL) · 3xx, 4xx: SnsRejected (no such certificate)
    confirm_subscription 2xx: done · 3xx, 4xx: ProviderPermanent (an expired or used token)
    either               5xx or no answer: ProviderRetryable (the request answers 503; SNS retries)

Redirects are not followed: a certificate is fetched from the SNS host the message named, or not at all.
"""

from __future__ import annotations

import httpx

from patient_notify.errors import ProviderPermanent, ProviderRetryable

from .sns import SnsRejected

__all__ = ["HttpxSnsEndpoint"]

PROVIDER = "sns"
_CACHE_SIZE = 32  # SNS signs with one certificate per region at a time; rotations are rare


class HttpxSnsEndpoint:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self._certificates: dict[str, bytes] = {}

    async def certificate(self, url: str) -> bytes:
        if url not in self._certificates:
            response = await self._get(url, "certificate")
            if not response.is_success:
                raise SnsRejected(f"certificate unavailable (HTTP {response.status_code})")
            if len(self._certificates) >= _CACHE_SIZE:
                self._certificates.clear()
            self._certificates[url] = response.content
        return self._certificates[url]

    async def confirm_subscription(self, url: str) -> None:
        response = await self._get(url, "confirm")
        if not response.is_success:
            raise ProviderPermanent(PROVIDER, "confirm", f"HTTP {response.status_code}")

    async def _get(self, url: str, what: str) -> httpx.Response:
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as exc:
            raise ProviderRetryable(PROVIDER, what, type(exc).__name__) from exc
        if response.is_server_error:
            raise ProviderRetryable(PROVIDER, what, f"HTTP {response.status_code}")
        return response
