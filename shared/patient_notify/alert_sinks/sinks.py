"""HTTP adapters for the ``AlertSink`` port: where alerts reach a person.

A push answers, per notice, ``None`` when the sink accepted it (a 2xx) or why not. Reasons name
the status code or the error's type, never the URL: Slack's and some webhooks' URLs are secrets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx

from patient_notify.alert_sinks.notice import AlertNotice
from patient_notify.alert_sinks.payloads import ContactDataInAlert, alertmanager_body

__all__ = ["AlertSink", "AlertmanagerSink", "MessageSink"]


class AlertSink(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def refresh(self) -> timedelta | None:
        """Re-send open alerts this often (a sink that forgets them), or None: each change once."""

    @property
    def summarises(self) -> bool:
        """True for sinks read by people one message at a time: storms arrive as one summary."""

    async def push(self, notices: Sequence[AlertNotice], now: datetime) -> list[str | None]: ...


@dataclass(frozen=True)
class MessageSink:
    """One POST per notice: the generic webhook, Slack, PagerDuty."""

    name: str
    url: str
    encode: Callable[[AlertNotice], Any]
    client: httpx.AsyncClient
    headers: Mapping[str, str] = field(default_factory=dict)
    concurrency: int = 8
    refresh: timedelta | None = None
    summarises: bool = True

    async def push(self, notices: Sequence[AlertNotice], now: datetime) -> list[str | None]:
        limit = asyncio.Semaphore(self.concurrency)

        async def one(notice: AlertNotice) -> str | None:
            async with limit:
                return await _post(self.client, self.url, lambda: self.encode(notice), self.headers)

        return list(await asyncio.gather(*(one(n) for n in notices)))


@dataclass(frozen=True)
class AlertmanagerSink:
    """Alertmanager's ``POST /api/v2/alerts``: every notice in one request; open ones re-sent."""

    base_url: str
    client: httpx.AsyncClient
    refresh: timedelta = timedelta(hours=1)
    name: str = "alertmanager"
    summarises: bool = False  # Alertmanager groups alerts itself

    async def push(self, notices: Sequence[AlertNotice], now: datetime) -> list[str | None]:
        if not notices:
            return []
        url = self.base_url.rstrip("/") + "/api/v2/alerts"
        outcome = await _post(self.client, url, lambda: alertmanager_body(notices, now, 3 * self.refresh), {})
        return [outcome] * len(notices)


async def _post(
    client: httpx.AsyncClient, url: str, encode: Callable[[], Any], headers: Mapping[str, str]
) -> str | None:
    try:
        body = encode()
    except ContactDataInAlert as exc:
        return f"refused: {exc}"
    try:
        response = await client.post(url, json=body, headers=dict(headers))
    except httpx.HTTPError as exc:
        return f"unreachable: {type(exc).__name__}"
    return None if response.is_success else f"HTTP {response.status_code}"
