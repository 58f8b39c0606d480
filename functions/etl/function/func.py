"""etl: on each PingSource tick, one pass over the hospital's appointments into PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Literal

import httpx
from cloudevents.core.base import BaseCloudEvent
from pydantic import AnyHttpUrl, Field, SecretStr

from patient_notify.codec import model_from_event
from patient_notify.db import Database
from patient_notify.events import PING, PingTick
from patient_notify.function import EventFunction, Route, Runtime
from patient_notify.outbox import Publisher
from patient_notify.settings import Settings, ZoneName

from .etl_pass import EtlPass, PassSettings
from .resilience import CircuitBreaker, SourceClient
from .sources import source_spec

log = logging.getLogger(__name__)


class EtlSettings(Settings):
    etl_source: Literal["fhir", "json"] = "fhir"
    etl_source_url: AnyHttpUrl
    etl_source_token: SecretStr | None = None  # sent as a bearer token when set
    etl_default_zone: ZoneName  # the clinic's IANA zone, for locations and patients without one
    etl_default_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")  # for national phone numbers
    etl_horizon_days: int = Field(default=14, ge=1, le=90)
    etl_lookback_minutes: int = Field(default=10, ge=0)
    etl_full_reconcile_hours: float = Field(default=24.0, gt=0)
    etl_page_size: int = Field(default=500, ge=1, le=5000)
    etl_timeout_s: float = Field(default=5.0, gt=0)
    etl_attempts: int = Field(default=6, ge=1)
    etl_max_backoff_s: float = Field(default=5.0, ge=0)

    def pass_settings(self) -> PassSettings:
        return PassSettings(
            horizon=timedelta(days=self.etl_horizon_days), lookback=timedelta(minutes=self.etl_lookback_minutes),
            full_every=timedelta(hours=self.etl_full_reconcile_hours), page_size=self.etl_page_size,
        )  # fmt: skip

    def source_headers(self) -> dict[str, str]:
        headers = {"accept": "application/fhir+json" if self.etl_source == "fhir" else "application/json"}
        if self.etl_source_token:
            headers["authorization"] = f"Bearer {self.etl_source_token.get_secret_value()}"
        return headers


def source_http(settings: EtlSettings) -> httpx.AsyncClient:
    """The source's HTTP client: a timeout on every call; the caller closes it after the pass."""
    return httpx.AsyncClient(timeout=settings.etl_timeout_s, headers=settings.source_headers())


def build_pass(
    settings: EtlSettings, db: Database, publisher: Publisher | None, breaker: CircuitBreaker, http: httpx.AsyncClient
) -> EtlPass:
    client = SourceClient(http, breaker, attempts=settings.etl_attempts, max_backoff_s=settings.etl_max_backoff_s)
    spec = source_spec(
        settings.etl_source, str(settings.etl_source_url), settings.etl_default_zone, settings.etl_default_region
    )
    return EtlPass(db, client, spec, settings.pass_settings(), publisher)


class Etl:
    def __init__(self, runtime: Runtime, settings: EtlSettings) -> None:
        self._runtime = runtime
        self._settings = settings
        self._breaker = CircuitBreaker()  # outlives passes: a failing source stays open across ticks

    async def on_tick(self, event: BaseCloudEvent) -> None:
        model_from_event(event, PingTick)
        async with source_http(self._settings) as http:
            etl_pass = build_pass(self._settings, self._runtime.db, self._runtime.publisher, self._breaker, http)
            report = await etl_pass.run()
        log.info("etl.pass", extra={"status": report.status, "count": report.counts.get("upserted", 0)})


def wire(settings: EtlSettings, runtime: Runtime) -> Mapping[str, Route]:
    return {PING: Etl(runtime, settings).on_tick}


def new() -> EventFunction[EtlSettings]:
    return EventFunction("etl", EtlSettings, wire)
