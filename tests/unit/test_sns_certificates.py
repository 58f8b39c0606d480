"""Fetching SNS signing certificates (the webhooks function's HttpxSnsEndpoint), faked at the HTTP boundary."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from patient_notify.errors import ProviderRetryable
from tests.support.functions import load_module

sns = load_module("webhooks", "sns")
sns_client = load_module("webhooks", "sns_client")

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KIB = 1024


def cert_url(n: int) -> str:
    return f"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-{n:032x}.pem"


class FakeSns:
    """Answers every GET with ``answer(url)``, recording the URLs asked for."""

    def __init__(self, answer: Callable[[str], httpx.Response] | None = None) -> None:
        self.fetched: list[str] = []
        self._answer = answer or (lambda url: httpx.Response(200, content=PEM))

    def endpoint(self) -> Any:
        return sns_client.HttpxSnsEndpoint(httpx.AsyncClient(transport=httpx.MockTransport(self._handle)))

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.fetched.append(str(request.url))
        return self._answer(str(request.url))


class TestCache:
    async def test_a_certificate_is_fetched_once(self) -> None:
        """Messages signed with one certificate fetch it once."""
        fake = FakeSns()
        endpoint = fake.endpoint()
        assert [await endpoint.certificate(cert_url(1)) for _ in range(3)] == [PEM] * 3
        assert fake.fetched == [cert_url(1)]

    async def test_the_certificate_in_use_stays_cached_whatever_else_is_fetched(self) -> None:
        """Least recently used goes first: a flood of other certificate URLs never evicts the one SNS signs with."""
        fake = FakeSns()
        endpoint = fake.endpoint()
        for n in range(2, 100):
            await endpoint.certificate(cert_url(1))
            await endpoint.certificate(cert_url(n))
        assert fake.fetched.count(cert_url(1)) == 1

    async def test_the_cache_is_bounded(self) -> None:
        """However many certificates are fetched, only the last few are kept: the oldest is fetched again."""
        fake = FakeSns()
        endpoint = fake.endpoint()
        for n in range(100):
            await endpoint.certificate(cert_url(n))
        await endpoint.certificate(cert_url(0))
        assert fake.fetched.count(cert_url(0)) == 2

    async def test_a_refused_certificate_is_not_kept(self) -> None:
        """A 404 is asked again next time (SNS publishes a certificate before signing with it)."""
        answers = iter([httpx.Response(404), httpx.Response(200, content=PEM)])
        endpoint = FakeSns(lambda url: next(answers)).endpoint()
        with pytest.raises(sns.SnsRejected, match="HTTP 404"):
            await endpoint.certificate(cert_url(1))
        assert await endpoint.certificate(cert_url(1)) == PEM


async def _endless(sent: list[int]) -> AsyncIterator[bytes]:
    for _ in range(1024):  # 1 MiB, a KiB at a time, counting what was pulled
        sent.append(KIB)
        yield b"A" * KIB


class TestSizeCap:
    # body size -> kept (a PEM certificate is about 2 KiB)
    @pytest.mark.parametrize(("size", "kept"), [(16 * KIB, True), (16 * KIB + 1, False)])
    async def test_a_body_over_16_kib_is_no_certificate(self, size: int, kept: bool) -> None:
        """Up to 16 KiB is read as the certificate; anything larger is refused as unverifiable."""
        endpoint = FakeSns(lambda url: httpx.Response(200, content=b"A" * size)).endpoint()
        if kept:
            assert len(await endpoint.certificate(cert_url(1))) == size
        else:
            with pytest.raises(sns.SnsRejected, match="larger than 16 KiB"):
                await endpoint.certificate(cert_url(1))

    async def test_an_endless_body_is_read_no_further_than_the_cap(self) -> None:
        """A streamed body is abandoned just past 16 KiB, not read to its end."""
        sent: list[int] = []
        endpoint = FakeSns(lambda url: httpx.Response(200, content=_endless(sent))).endpoint()
        with pytest.raises(sns.SnsRejected):
            await endpoint.certificate(cert_url(1))
        assert sum(sent) <= 17 * KIB

    async def test_a_server_error_is_retryable_not_a_forgery(self) -> None:
        """SNS's certificate host failing answers 503 upstream: SNS retries the message."""
        endpoint = FakeSns(lambda url: httpx.Response(503)).endpoint()
        with pytest.raises(ProviderRetryable):
            await endpoint.certificate(cert_url(1))
